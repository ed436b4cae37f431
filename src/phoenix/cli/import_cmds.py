"""`phoenix import`: write the inventory of a lab that already exists.

Reads the host through the driver and its VM backend (the same reads `phoenix plan`
makes), converts what it saw with `phoenix.plan.imported`, validates the result, and only
then writes `phoenix_lxc_configs.json`, `phoenix_vm_configs.json` (when the host has VMs)
and the hypervisor config into the config dir, each atomically.
Existing files are replaced only with --force. The report (notes) is data from the
converter; this module prints it.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phoenix.cli.context import console, err_console, fail, print_problems, state

if TYPE_CHECKING:
    from phoenix.inventory.problems import Problem
    from phoenix.plan.imported import FoundHost, Imported

HYPERVISOR_FILE = "phoenix_hypervisor_config.json"
LXC_FILE = "phoenix_lxc_configs.json"
VM_FILE = "phoenix_vm_configs.json"
NEEDS_TEMPLATE = "needs either 'template'"


def register(app: typer.Typer) -> None:
    app.command("import")(import_lab)


def import_lab(
    ctx: typer.Context,
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--ids",
            help="Only these guests (containers or VMs): comma-separated or repeated "
            "(--ids 101,9000). Default: every guest on the host.",
            show_default=False,
        ),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(help="Proxmox node to read (default: the config's phoenix.node)."),
    ] = None,
    ssh_host: Annotated[
        str | None,
        typer.Option(help="Reach the node over SSH as HOST or USER@HOST (Proxmox)."),
    ] = None,
    lxc_path: Annotated[
        str | None,
        typer.Option(help="LXC path of the guests (lxc driver; default: the config's)."),
    ] = None,
    state_dir: Annotated[
        str | None,
        typer.Option(help="Phoenix's state dir on this machine (default: the config's)."),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help="Write this 'template' into every guest not cloned from another: a host does "
            "not record what a guest was made from, and Phoenix needs it only to create the "
            "guest again.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace inventory files that already exist.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of text.")
    ] = False,
) -> None:
    """Write the inventory of the guests a host already has, so that `phoenix plan` right
    after shows no changes.

    Reads every container and VM of the host (a Proxmox VE node or cluster: `--driver
    proxmox`; or the LXC host's Phoenix guests and local QEMU VMs) and writes
    `phoenix_lxc_configs.json` and `phoenix_vm_configs.json` in the original tool's format,
    plus `phoenix_hypervisor_config.json` (how to reach the host), into the config dir (`-c
    DIR`). Nothing on the host changes.

    The report at the end says what the inventory does not hold: settings the host keeps
    that Phoenix leaves alone (a VLAN tag, firewall rules, raw lines and VM options it did
    not write, devices, disks), what cannot be read back (features, application scripts,
    docker stacks: add them by hand), secrets (never written: the cloud-init password,
    secret environment lines), and anything a plan would still change.

    Examples: `phoenix -c ./etc --driver proxmox import --node pve1 --template
    local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`; `phoenix -c ./etc import --ids
    101,102 --force`.
    """
    from phoenix.errors import PhoenixError

    config_dir = state(ctx).config_dir
    wanted = _parse_ids(ids)
    hv_path, lxc_out = config_dir / HYPERVISOR_FILE, config_dir / LXC_FILE
    vm_out = config_dir / VM_FILE
    existing = _read_json(hv_path)
    given = {"node": node, "ssh_host": ssh_host, "lxc_path": lxc_path, "state_dir": state_dir}
    block: dict[str, str] = {k: v for k, v in given.items() if v is not None}
    chosen = state(ctx).driver
    if chosen is not None:
        block["driver"] = chosen
    settings = _settings(existing, block)
    if not force and (lxc_out.exists() or vm_out.exists()):
        _refuse_overwrite([lxc_out, vm_out], None, existing, {})
    try:
        imported, found = _read_host(settings, wanted, template, as_json)
    except PhoenixError as exc:
        fail(str(exc))
    hv_document = _hypervisor_document(existing, settings, found, imported)
    hv_changes = existing != hv_document
    if not force and hv_changes and existing is not None:
        _refuse_overwrite([lxc_out, vm_out], hv_path, existing, hv_document)
    if not imported.ids and not imported.vm_ids:
        where = imported.notes and " (see the notes above)"
        _print_report(imported, [], as_json)
        fail(f"no guests to import on this host{where or ''}; nothing written")
    warnings = _check(imported, hv_document, settings.driver)
    documents = {lxc_out: imported.document}
    if imported.vm_document is not None or vm_out.exists():
        # A VM file there before describes this host's VMs too: replaced, never left stale.
        documents[vm_out] = imported.vm_document or {"vms": []}
    if hv_changes:
        documents[hv_path] = hv_document
    _write(config_dir, documents)
    if not as_json and warnings:
        err_console.print("`phoenix validate` warns:", style="bold", markup=False)
        print_problems(warnings)
    _print_report(imported, list(documents), as_json)


def _refuse_overwrite(
    outputs: list[Path], hv_path: Path | None, existing: dict[str, Any] | None, hv: dict[str, Any]
) -> None:
    """Without --force, no file that exists is replaced: say which, and what would change."""
    why = [f"{path} already exists" for path in outputs if path.exists()]
    if hv_path is not None:
        old = (existing or {}).get("phoenix") or {}
        new = hv["phoenix"]
        changed = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
        changed += [f"{k}: removed" for k in old if k not in new]
        why.append(f"{hv_path} would change (phoenix block: {'; '.join(changed)})")
    if why:
        fail(f"{' and '.join(why)}: pass --force to write (other keys of an existing file stay)")


def _parse_ids(ids: list[str] | None) -> list[int] | None:
    if not ids:
        return None
    from phoenix.inventory.models import CTID_TEXT

    out: list[int] = []
    for item in ids:
        for part in item.split(","):
            text = part.strip()
            if not CTID_TEXT.fullmatch(text):
                fail(f"--ids: {part!r} is not a guest id (expected numbers such as 101,102)")
            out.append(int(text))
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    from phoenix.files import parse_json

    data = parse_json(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, dict):
        fail(f"{path}: not a JSON object")
    return data


def _settings(existing: dict[str, Any] | None, block: dict[str, Any]) -> Any:
    """The `phoenix` block the import uses: the config's own, updated by the options."""
    from pydantic import ValidationError

    from phoenix.inventory.models import DriverSettings

    current = (existing or {}).get("phoenix") or {}
    if not isinstance(current, dict):
        fail(f"{HYPERVISOR_FILE}: phoenix: not a JSON object")
    try:
        return DriverSettings.model_validate({**current, **block})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{HYPERVISOR_FILE}: phoenix.{where}: {first['msg']}")


def _hypervisor_document(
    existing: dict[str, Any] | None, settings: Any, found: FoundHost, imported: Imported
) -> dict[str, Any]:
    """The hypervisor config: the existing one's keys, its `phoenix` block saying how to
    reach what was read (a cluster: every node; the notes say what was inferred)."""
    from phoenix.plan.imported_hv import cluster_block, merged_hypervisor

    block: dict[str, Any] = {"driver": settings.driver}
    if settings.driver == "proxmox":
        block.update({"node": settings.node, "ssh_host": settings.ssh_host})
    else:
        block["lxc_path"] = settings.lxc_path
    block["state_dir"] = settings.state_dir
    if found.nodes:
        known = {name: n.model_dump(exclude_none=True) for name, n in settings.nodes.items()}
        cluster, notes = cluster_block(found, known, settings.ssh_host)
        block.update(cluster)
        imported.notes += notes
    return merged_hypervisor(existing, block)


def _read_host(
    settings: Any, wanted: list[int] | None, template: str | None, quiet: bool
) -> tuple[Imported, FoundHost]:
    from phoenix.drivers.factory import make_driver, vm_backend
    from phoenix.plan.imported import convert
    from phoenix.plan.survey import survey

    driver = make_driver(settings)
    vms = vm_backend(settings)
    waiting = nullcontext() if quiet else err_console.status("reading the host…")
    with waiting:
        found = survey(driver, wanted, vms=vms)
    return convert(found, template), found


def _check(imported: Imported, hv_document: dict[str, Any], driver: str) -> list[Problem]:
    """Validate the documents as `phoenix validate` would, before anything is written: an
    import that does not load is a bug, and nothing is written."""
    from phoenix.inventory import validate_config_dir
    from phoenix.inventory.problems import errors
    from phoenix.recipes import registry

    with tempfile.TemporaryDirectory(prefix="phoenix-import-") as tmp:
        root = Path(tmp)
        (root / LXC_FILE).write_text(json.dumps(imported.document))
        if imported.vm_document is not None:
            (root / VM_FILE).write_text(json.dumps(imported.vm_document))
        (root / HYPERVISOR_FILE).write_text(json.dumps(hv_document))
        inventory, problems = validate_config_dir(root, registry, driver)
    if inventory is None or errors(problems):
        print_problems(problems)
        fail("the imported inventory does not validate (a bug in phoenix import); nothing written")
    # The report says once what no guest's entry can: where it was created from.
    return [p for p in problems if not p.message.startswith(NEEDS_TEMPLATE)]


def _write(config_dir: Path, documents: dict[Path, dict[str, Any]]) -> None:
    from phoenix.files import write_atomic

    config_dir.mkdir(parents=True, exist_ok=True)
    for path, document in documents.items():
        write_atomic(path, json.dumps(document, indent=4) + "\n")


def _print_report(imported: Imported, written: list[Path], as_json: bool) -> None:
    from phoenix.plan.imported import NOTE_TITLES, notes_by_kind

    if as_json:
        typer.echo(
            json.dumps(
                {
                    "written": [str(p) for p in written],
                    "guests": imported.ids,
                    "vms": imported.vm_ids,
                    "notes": [n.as_dict() for n in imported.notes],
                },
                indent=2,
            )
        )
        return
    for kind, notes in notes_by_kind(imported.notes):
        err_console.print(f"{NOTE_TITLES[kind]}:", style="bold", markup=False, highlight=False)
        for note in notes:
            who = f"guest {note.ctid}: " if note.ctid is not None else ""
            err_console.print(f"  {who}{note.text}", markup=False, highlight=False)
    if written:
        counted = [
            f"{len(ids)} {kind}{'s' if len(ids) != 1 else ''} ({' '.join(map(str, ids))})"
            for kind, ids in (("container", imported.ids), ("VM", imported.vm_ids))
            if ids
        ]
        console.print(
            f"imported {' and '.join(counted)} into {', '.join(str(p) for p in written)}",
            markup=False,
            highlight=False,
        )
        console.print("next: `phoenix plan` (it should show no changes)", markup=False)

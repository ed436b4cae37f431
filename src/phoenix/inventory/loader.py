"""Load a config dir into an `Inventory`, reporting every problem at once.

Files are found in the config dir itself (never through the absolute `core_paths` of the
original tool), so a copied dir loads anywhere. Every user mistake becomes a `Problem`
(`FILE: JSON.PATH: message`), never a traceback. Reading a file is `reading`'s job,
checking its data against the models `typecheck`'s, the cross-guest rules `checks`'.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phoenix.errors import InventoryError
from phoenix.inventory.checks import semantic_problems
from phoenix.inventory.core import HYPERVISOR_FILE, LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import (
    CTID_TEXT,
    MAX_CTID,
    MIN_CTID,
    HypervisorConfig,
    LxcFile,
    LxcGuest,
    VmDefaults,
    VmFile,
    VmGuest,
    with_defaults,
)
from phoenix.inventory.problems import Problem, errors, json_path
from phoenix.inventory.reading import control_characters, read_document, read_json
from phoenix.inventory.scripts import RecipeCatalog
from phoenix.inventory.typecheck import describe, unknown_key_warnings, validate_model

# Inventory and the file names live in core (what the checks read too); named here as well,
# since the loader is where callers have always found them.
__all__ = [
    "HYPERVISOR_FILE",
    "LXC_FILE",
    "SYSTEM_CONFIG_DIR",
    "VM_FILE",
    "Inventory",
    "RecipeCatalog",
    "load_files",
    "load_inventory",
    "read_json",
    "resolve_config_dir",
    "validate_config_dir",
]

SYSTEM_CONFIG_DIR = Path("/usr/local/phoenix_hypervisor/etc")


def resolve_config_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config-dir, else $PHOENIX_CONFIG_DIR, else the original tool's etc/, else ./etc."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PHOENIX_CONFIG_DIR")
    if env:
        return Path(env)
    if SYSTEM_CONFIG_DIR.is_dir():
        return SYSTEM_CONFIG_DIR
    return Path("etc")


def _ctid_key(key: str) -> int | None:
    if CTID_TEXT.fullmatch(key) and MIN_CTID <= int(key) <= MAX_CTID:
        return int(key)
    return None


def load_files(config_dir: Path) -> tuple[Inventory | None, list[Problem]]:
    """Parse and type-check the config dir's files; no cross-guest checks yet."""
    problems: list[Problem] = []
    if not config_dir.exists():
        return None, [
            Problem(
                str(config_dir),
                "$",
                f"config dir not found: {config_dir.absolute()} (looked at --config-dir/-c, "
                f"then $PHOENIX_CONFIG_DIR, then {SYSTEM_CONFIG_DIR}, then ./etc); pass "
                "-c DIR or set PHOENIX_CONFIG_DIR",
            )
        ]
    if not config_dir.is_dir():
        return None, [Problem(str(config_dir), "$", f"not a directory: {config_dir}")]

    hyp_data, found, text = read_document(config_dir / HYPERVISOR_FILE, HYPERVISOR_FILE)
    problems += found + control_characters(hyp_data, HYPERVISOR_FILE, text)
    hypervisor: HypervisorConfig | None = None
    if hyp_data is not None:
        hypervisor, found = validate_model(HypervisorConfig, hyp_data, HYPERVISOR_FILE)
        problems += found
        if hypervisor is not None:
            problems += unknown_key_warnings(hypervisor, HYPERVISOR_FILE, [])

    guests: dict[int, LxcGuest] = {}
    invalid_ids: set[int] = set()
    shell: LxcFile | None = None
    lxc_data, found, text = read_document(config_dir / LXC_FILE, LXC_FILE)
    problems += found + control_characters(lxc_data, LXC_FILE, text)
    if lxc_data is not None:
        configs = lxc_data.get("lxc_configs")
        top = {k: v for k, v in lxc_data.items() if k != "lxc_configs"}
        top["lxc_configs"] = {}
        shell, found = validate_model(LxcFile, top, LXC_FILE)
        problems += found
        if shell is not None:
            problems += unknown_key_warnings(shell, LXC_FILE, [])
        if configs is None:
            problems.append(Problem(LXC_FILE, "lxc_configs", "required field is missing"))
        elif not isinstance(configs, dict):
            problems.append(
                Problem(
                    LXC_FILE,
                    "lxc_configs",
                    f"expected an object keyed by CTID, got {describe(configs)}",
                )
            )
        else:
            for key, entry in configs.items():
                ctid = _ctid_key(key)
                if ctid is None:
                    problems.append(
                        Problem(
                            LXC_FILE,
                            json_path(["lxc_configs", key]),
                            f"{key!r} is not a container id: "
                            f"use a number in {MIN_CTID}..{MAX_CTID}",
                        )
                    )
                    continue
                guest, found = validate_model(LxcGuest, entry, LXC_FILE, ["lxc_configs", key])
                problems += found
                if guest is None:
                    invalid_ids.add(ctid)
                else:
                    guests[ctid] = guest
                    problems += unknown_key_warnings(guest, LXC_FILE, ["lxc_configs", key])

    vms, vm_positions, found = _load_vms(config_dir)
    problems += found

    if hypervisor is None or lxc_data is None or not isinstance(lxc_data.get("lxc_configs"), dict):
        return None, problems
    # Returned even when some entries failed, so cross-guest checks still run on the rest.
    inventory = Inventory(
        config_dir,
        hypervisor,
        guests,
        vms,
        [],
        invalid_ids,
        lxc_file=shell,
        vm_positions=vm_positions,
    )
    return inventory, problems


def _load_vms(config_dir: Path) -> tuple[dict[int, VmGuest], dict[int, int], list[Problem]]:
    """The VM file, when there is one: `vm_defaults` checked on their own, then each entry
    with them applied (so a bad default is reported once, at `vm_defaults`). Returns the
    valid VMs, each VM's index in `vms` (for paths), and the problems."""
    vms: dict[int, VmGuest] = {}
    positions: dict[int, int] = {}
    path = config_dir / VM_FILE
    if not path.exists():
        return vms, positions, []
    data, problems, text = read_document(path, VM_FILE)
    problems += control_characters(data, VM_FILE, text)
    if data is None:
        return vms, positions, problems
    if not isinstance(data, dict):
        return (
            vms,
            positions,
            [*problems, Problem(VM_FILE, "$", f"expected an object, got {describe(data)}")],
        )
    entries = data.get("vms", [])
    shell, found = validate_model(VmFile, {**data, "vms": []}, VM_FILE)
    problems += found
    if shell is not None:
        problems += unknown_key_warnings(shell, VM_FILE, [])
    defaults = _valid_defaults(data.get("vm_defaults"))
    if not isinstance(entries, list):
        return (
            vms,
            positions,
            [
                *problems,
                Problem(VM_FILE, "vms", f"expected a list of VMs, got {describe(entries)}"),
            ],
        )
    for index, entry in enumerate(entries):
        vm, found = validate_model(VmGuest, with_defaults(entry, defaults), VM_FILE, ["vms", index])
        problems += found
        if vm is None:
            continue
        problems += unknown_key_warnings(vm, VM_FILE, ["vms", index])
        if vm.vmid in vms:
            problems.append(
                Problem(
                    VM_FILE,
                    json_path(["vms", index, "vmid"]),
                    f"duplicate VM id {vm.vmid} (also vms[{positions[vm.vmid]}])",
                )
            )
            continue
        vms[vm.vmid] = vm
        positions[vm.vmid] = index
    return vms, positions, problems


def _valid_defaults(raw: Any) -> dict[str, Any]:
    """The keys of `vm_defaults` that are valid on their own (a bad one is reported once,
    at `vm_defaults`, and its VMs still get the others)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        one, found = validate_model(VmDefaults, {key: value}, VM_FILE)
        if one is not None and not found:
            out.update(one.model_dump(mode="json", exclude_none=True, include={key}))
    return out


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of objects that all stay alive (nothing for the
    cycle collector to find), yet each allocation burst makes it walk every one of them
    again: at 10,000 guests that was most of the load time. Objects no longer used are
    still freed as usual (reference counting); the collector runs again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate_config_dir(
    config_dir: Path, recipes: RecipeCatalog | None = None, driver: str | None = None
) -> tuple[Inventory | None, list[Problem]]:
    """Load and run every semantic check; returns the inventory only when error-free.
    With `recipes` (the CLI hands in `phoenix.recipes.registry`), a feature or application
    script that no recipe provides is a warning too; `driver` is the command line's choice
    (None: the hypervisor config's), whose own rules are checked too."""
    with _collector_paused():
        return _validate_config_dir(config_dir, recipes, driver)


def _validate_config_dir(
    config_dir: Path, recipes: RecipeCatalog | None, driver: str | None
) -> tuple[Inventory | None, list[Problem]]:
    inventory, problems = load_files(config_dir)
    if inventory is None:
        return None, problems
    problems += semantic_problems(inventory, recipes, driver)
    inventory.problems = problems
    if errors(problems):
        return None, problems
    inventory.invalid_ids = set()
    return inventory, problems


def load_inventory(
    config_dir: Path, recipes: RecipeCatalog | None = None, driver: str | None = None
) -> Inventory:
    """Load a valid inventory or raise InventoryError with every problem found."""
    inventory, problems = validate_config_dir(config_dir, recipes, driver)
    if inventory is None:
        raise InventoryError(problems)
    return inventory

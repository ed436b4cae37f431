"""`phoenix gateway ...`: render, lint and inspect the API gateway without deploying it."""

from __future__ import annotations

import json
import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phoenix.cli.context import console, fail, load, state
from phoenix.errors import GatewayError

if TYPE_CHECKING:
    from phoenix.gateway.lint import Finding
    from phoenix.inventory import Inventory


gateway_app = typer.Typer(
    help="The API gateway derived from the inventory: render, lint, routes, CA.",
    no_args_is_help=True,
)


class ModeChoice(StrEnum):
    auto = "auto"
    derived = "derived"
    compat = "compat"


StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Where the local CA lives (default: the config's phoenix.state_dir)."
    ),
]
ModeOpt = Annotated[
    ModeChoice,
    typer.Option(
        "--mode",
        help="derived (from the inventory), compat (the config dir's "
        "nginx/sites-available as they are), or auto (compat when those exist).",
    ),
]


def _state_dir(inventory: Inventory, explicit: Path | None) -> Path:
    return explicit or inventory.state_dir


def _gateway(inventory: Inventory, ctid: int | None) -> int:
    from phoenix.gateway.routes import find_gateway

    found = ctid if ctid is not None else find_gateway(inventory)
    if found is None:
        fail("no gateway guest in the inventory (add a 'gateway' block to one guest)")
    return found


@gateway_app.command()
def render(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the bundle into.")],
    ctid: Annotated[int | None, typer.Option("--ctid", help="Gateway guest.")] = None,
    mode: ModeOpt = ModeChoice.auto,
    state_dir: StateDir = None,
) -> None:
    """Write the gateway bundle (tree/ with sites, njs, certs, conf.d; setup script) as it
    would be pushed into the guest, into a new (or empty) directory OUT. Check it with:
    nginx -t -c OUT/tree/nginx.conf. Writes nothing else (no CA is created)."""
    from phoenix.gateway.bundle import SCRIPT_NAME, render_gateway
    from phoenix.gateway.render import asset, write_tree

    inventory = load(ctx)
    gw = _gateway(inventory, ctid)
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        fail(f"--out {out} exists and is not an empty directory; render into a new one")
    try:
        rendered, findings = render_gateway(
            inventory, gw, _state_dir(inventory, state_dir), mode.value, persist=False
        )
    except GatewayError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written into a directory of our own, then moved into place: nothing planted in OUT
    # (a link, a file owned by someone else) can redirect or keep a write.
    fresh = Path(tempfile.mkdtemp(prefix=".phoenix-render-", dir=out.parent))
    try:
        write_tree(rendered, fresh, asset(SCRIPT_NAME))
        fresh.chmod(0o755)
        if out.exists():
            out.rmdir()
        fresh.rename(out)
    except OSError as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        fail(f"cannot write {out}: {exc}")
    for finding in findings:
        console.print(finding.render(), markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"rendered the {rendered.mode} gateway for guest {gw} into {out} "
        f"(config {rendered.config_id}, {rendered.route_count} routes, "
        f"{len(rendered.files)} files)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@gateway_app.command()
def lint(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Site files to lint (default: the config dir's "
            "nginx/sites-available, else the rendered gateway)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Findings as JSON.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Report conflicting listen/server_name pairs, duplicate upstreams, locations that
    never match, bad targets. Exit 1 when there is an error."""
    from phoenix.gateway.bundle import render_gateway
    from phoenix.gateway.compat import compat_sites
    from phoenix.gateway.lint import Finding, lint_paths, lint_tree
    from phoenix.gateway.render import write_tree
    from phoenix.gateway.routes import derive_routes

    inventory = load(ctx)
    findings: list[Finding]
    if paths:
        findings = lint_paths(paths, inventory)
    elif compat_sites(inventory.nginx_dir):
        findings = lint_paths(compat_sites(inventory.nginx_dir), inventory, inventory.config_dir)
    else:
        gw = _gateway(inventory, None)
        _, problems = derive_routes(inventory, gw, strict=False)
        findings = [Finding("phoenix_lxc_configs.json", 0, "error", "route", p) for p in problems]
        with tempfile.TemporaryDirectory(prefix="phoenix-gw-") as tmp:
            try:
                rendered, _ = render_gateway(
                    inventory, gw, _state_dir(inventory, state_dir), "derived", persist=False
                )
            except GatewayError as exc:
                fail(str(exc))
            write_tree(rendered, Path(tmp))
            findings += lint_tree(Path(tmp) / "tree", inventory)
    if as_json:
        typer.echo(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for f in findings:
            style = "red" if f.severity == "error" else "yellow"
            console.print(f.render(), style=style, markup=False, highlight=False, soft_wrap=True)
        errors = sum(1 for f in findings if f.severity == "error")
        console.print(
            f"{errors} errors, {len(findings) - errors} warnings",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if any(f.severity == "error" for f in findings):
        fail(None)


@gateway_app.command()
def routes(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Routes as JSON.")] = False,
) -> None:
    """Show which model, path and host goes where."""
    from phoenix.gateway.bundle import choose_mode
    from phoenix.gateway.routes import derive_routes

    inventory = load(ctx)
    gw = _gateway(inventory, None)
    derived, problems = derive_routes(inventory, gw, strict=False)
    rows: list[dict[str, object]] = [
        {"kind": "model", "match": m.model, "to": [b.hostport for b in m.backends]}
        for m in derived.models
    ]
    rows += [
        {
            "kind": "path",
            "match": p.path,
            "to": [b.hostport for b in p.target.backends] or [str(p.target.url)],
        }
        for p in derived.paths
    ]
    rows += [
        {
            "kind": "host",
            "match": h.hostname,
            "to": [b.hostport for b in h.target.backends] or [str(h.target.url)],
        }
        for h in derived.hosts
    ]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "gateway": gw,
                    "mode": choose_mode(inventory),
                    "routes": rows,
                    "problems": problems,
                },
                indent=2,
            )
        )
        return
    console.print(f"gateway: guest {gw} ({choose_mode(inventory)} mode)", markup=False)
    for row in rows:
        to = row["to"]
        shown = ", ".join(map(str, to)) if isinstance(to, list) else str(to)
        console.print(
            f"  {row['kind']!s:5} {row['match']} -> {shown}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for problem in problems:
        console.print(f"  problem: {problem}", style="red", markup=False)


@gateway_app.command()
def ca(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Print the local CA certificate (PEM) so clients can trust the gateway. The CA's
    private key stays in the state dir and is never printed."""
    from phoenix.gateway.tls import LocalCA, default_ca_dir

    explicit = state_dir
    if explicit is None:
        explicit = load(ctx).state_dir
    typer.echo(LocalCA.load_or_create(default_ca_dir(explicit)).cert_pem.decode(), nl=False)
    _ = state  # the config dir is resolved by the root callback


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")


@gateway_app.command()
def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The gateway's JSON as it is.")] = False,
) -> None:
    """What the gateway sees (its /phoenix/status, asked from inside the gateway guest):
    each model's backends and their state, requests by status class, uptime. Exit 1 when
    the gateway reports itself degraded."""
    from phoenix.drivers.factory import make_driver
    from phoenix.errors import PhoenixError

    inventory = load(ctx)
    gw = _gateway(inventory, None)
    config = inventory.guests[gw].gateway
    port = config.http_port if config is not None else 80
    try:
        driver = make_driver(
            inventory.hypervisor.phoenix,
            state(ctx).driver,
            vm_ids=frozenset(inventory.vms),
            placement=inventory.placement(),
        )
        result = driver.exec(
            gw, ["curl", "-sS", "-m", "5", f"http://127.0.0.1:{port}/phoenix/status"], timeout=15
        )
    except PhoenixError as exc:
        fail(str(exc))
    try:
        report = json.loads(result.stdout) if result.ok else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        fail(f"gateway {gw} did not answer /phoenix/status: {result.stderr.strip()[-200:]}")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_stats(gw, report)
    if report.get("status") != "ok":
        fail(None)


def _print_stats(gw: int, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"Gateway {gw}: {report.get('status')} (config {report.get('config')}, "
        f"up {report.get('uptime_s')} s, requests {report.get('requests')})",
        title_justify="left",
    )
    for column in ("model", "backend", "state", "answered", "failed", "2xx", "4xx", "5xx"):
        table.add_column(column)
    for model in report.get("models", []):
        counts = model.get("requests", {})
        for i, b in enumerate(model.get("backends", [])):
            first = i == 0
            table.add_row(
                model["id"] if first else "",
                b["address"],
                b["state"],
                str(b["answered"]),
                str(b["failed"]),
                *(str(counts.get(k, 0)) if first else "" for k in ("2xx", "4xx", "5xx")),
            )
    console.print(table)

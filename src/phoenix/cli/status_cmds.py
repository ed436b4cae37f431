"""`phoenix status`: the guests and the gateway's routes, with health, as tables or JSON."""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from phoenix.cli.context import console, fail, load, parse_ids, state
from phoenix.cli.plain import visible

_STYLE = {
    "ok": "green",
    "running": "green",
    "degraded": "yellow",
    "failing": "red",
    "down": "red",
    "unreachable": "red",
    "not running": "red",
    "stopped": "yellow",
    "missing": "dim",
}


def _styled(text: str) -> Text:
    return Text(visible(text), style=_STYLE.get(text, ""))


def status(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Guest ids (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    health: Annotated[
        bool, typer.Option("--health/--no-health", help="Run health checks (default: yes).")
    ] = True,
) -> None:
    """Show each guest, containers and VMs (id, kind, name, state, IP, boot order,
    health) and the gateway's routes with the health of every upstream as the gateway sees
    it. Exit 1 when something that
    should be healthy is not."""
    from phoenix.cli.gateway_app import GATEWAY
    from phoenix.drivers.factory import make_driver
    from phoenix.errors import PhoenixError
    from phoenix.plan.status import gather_route_status, gather_status

    inventory = load(ctx)
    selected = parse_ids(inventory, ids)
    try:
        driver = make_driver(
            inventory.hypervisor.phoenix,
            state(ctx).driver,
            vm_ids=frozenset(inventory.vms),
            placement=inventory.placement(),
        )
        guests = gather_status(inventory, driver, selected, check_health=health)
        gateway, routes = gather_route_status(inventory, driver, GATEWAY, check_health=health)
    except PhoenixError as exc:
        fail(str(exc))
    templates = {c for c, g in inventory.guests.items() if g.is_clone_source}
    templates |= {c for c, vm in inventory.vms.items() if vm.is_template}
    unhealthy = [
        g
        for g in guests
        if g.health == "failing" or (g.health == "not running" and g.ctid not in templates)
    ]
    unhealthy_routes = [r for r in routes if r.health not in ("ok", "unknown")]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "guests": [g.to_json() for g in guests],
                    "gateway": gateway,
                    "routes": [r.to_json() for r in routes],
                    "healthy": not unhealthy and not unhealthy_routes,
                },
                indent=2,
            )
        )
    else:
        table = Table(title="Guests", title_justify="left")
        for column in ("ID", "kind", "name", "state", "IP", "boot", "health"):
            table.add_column(column)
        for g in guests:
            boot = f"{g.boot_order}" + (" (auto)" if g.start_at_boot else "")
            state_text = "template" if g.is_template else g.state
            table.add_row(
                str(g.ctid),
                g.kind,
                g.name,
                _styled(state_text),
                g.ip or g.desired_ip or "-",
                boot,
                _styled(g.health),
            )
        console.print(table)
        if gateway is not None:
            routes_table = Table(title=f"Gateway {gateway} routes", title_justify="left")
            for column in ("kind", "match", "upstream", "health"):
                routes_table.add_column(column)
            for r in routes:
                upstream = Text(", ").join(
                    Text.assemble(f"{visible(b.target)} ", _styled(b.health)) for b in r.backends
                )
                routes_table.add_row(r.kind, r.match, upstream or "-", _styled(r.health))
            console.print(routes_table)
    if unhealthy or unhealthy_routes:
        fail(None)


def gateway_info(ctx: typer.Context) -> None:
    """How to reach the gateway: its address, the CA to trust, and working curl commands."""
    from phoenix.gateway.routes import derive_routes, find_gateway
    from phoenix.gateway.tls import CA_CERT, default_ca_dir

    inventory = load(ctx)
    gateway = find_gateway(inventory)
    if gateway is None:
        fail("no gateway guest in the inventory (add a 'gateway' block to one guest)")
    routes, _problems = derive_routes(inventory, gateway, strict=False)
    address = routes.address
    if address is None:
        fail(f"gateway {gateway} has no network_config (no address to reach it at)")
    ca_cert = default_ca_dir(inventory.state_dir) / CA_CERT
    ca_arg = shlex.quote(str(ca_cert))  # a state_dir may hold spaces or quotes
    config = routes.config
    http = f"http://{address}" + ("" if config.http_port == 80 else f":{config.http_port}")
    console.print(f"Gateway: guest {gateway} at {address}", markup=False, highlight=False)
    console.print(
        f"CA certificate (trust it in clients): {ca_cert}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    lines = [f"curl -s {http}/phoenix/health"]
    if routes.models:
        model = routes.models[0].model
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
        lines.append(f"curl -s {http}/v1/models")
        lines.append(
            f"curl -s {http}/v1/chat/completions -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}"
        )
        if config.tls:
            host = config.hostnames[0] if config.hostnames else address
            port = config.https_port
            https = f"https://{host}" + ("" if port == 443 else f":{port}")
            resolve = f" --resolve {host}:{port}:{address}" if host != address else ""
            lines.append(f"curl -s --cacert {ca_arg}{resolve} {https}/v1/models")
    for host_route in routes.hosts:
        if host_route.tls:
            port = config.https_port
            shown_port = "" if port == 443 else f":{port}"
            lines.append(
                f"curl -s --cacert {ca_arg} --resolve {host_route.hostname}:{port}:"
                f"{address} https://{host_route.hostname}{shown_port}/"
            )
    console.print("Try:", markup=False)
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(status)
    # `gateway info` joins the gateway group (registered before this module).
    for group in app.registered_groups:
        if group.name == "gateway" and group.typer_instance is not None:
            group.typer_instance.command("info")(gateway_info)

"""`phoenix gateway key ...`: the gateway's client and operator keys, kept in the inventory
as hashes (the key itself is printed once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phoenix.cli.context import console, err_console, fail, load
from phoenix.cli.gateway_cmds import _gateway, gateway_app
from phoenix.errors import GatewayError
from phoenix.files import locked_dir, write_atomic

if TYPE_CHECKING:
    from phoenix.inventory import Inventory


key_app = typer.Typer(
    help="Client keys of the API: only a hash is stored in the inventory.",
    no_args_is_help=True,
)


def _edit_inventory(ctx: typer.Context, change: Callable[[dict[str, Any]], None]) -> int:
    """Apply `change` to the gateway block's key lists in phoenix_lxc_configs.json
    (atomically); returns the gateway's CTID."""
    from phoenix.gateway.keys import edit_keys
    from phoenix.inventory.loader import LXC_FILE

    inventory = load(ctx)
    gw = _gateway(inventory, None)
    path = inventory.config_dir / LXC_FILE
    # Concurrent edits (two `key add` at once) each see the other's key: one at a time.
    with locked_dir(inventory.config_dir):
        try:
            text = edit_keys(path.read_text(encoding="utf-8-sig"), gw, change)
        except GatewayError as exc:
            fail(str(exc))
        write_atomic(path, text)
    return gw


@key_app.command("add")
def key_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Key name (a-z, 0-9, '-', '_').")],
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated models the key may use (default: all)."),
    ] = None,
    rpm: Annotated[
        int | None, typer.Option("--rpm", help="Requests per minute (default: no limit).")
    ] = None,
    operator: Annotated[
        bool,
        typer.Option(
            "--operator",
            help="An operator key: reads /metrics and /phoenix/* from any address, uses no "
            "model, and leaves the API as open or closed as it was.",
        ),
    ] = False,
) -> None:
    """Create a key, add its hash to the inventory and print the key (only this once).
    Converge the gateway to apply it."""
    from phoenix.gateway.keys import add_entry
    from phoenix.inventory.loader import LXC_FILE

    if operator and (models is not None or rpm is not None):
        fail("an operator key reads the gateway's status only: --models and --rpm do not apply")
    inventory = load(ctx)
    if inventory.hand_written_sites:
        fail(
            "the gateway runs the hand-written sites in "
            f"{inventory.nginx_dir / 'sites-available'} (compatibility mode), which check no "
            "key: a key added now would not be enforced. Remove those sites to use the "
            "derived gateway, which enforces keys, then add the key"
        )
    wanted = [] if operator else _wanted_models(inventory, "*" if models is None else models)
    made: list[str] = []

    def change(gateway: dict[str, Any]) -> None:
        key, _ = add_entry(gateway, name, wanted, rpm, operator)
        made.append(key)

    gw = _edit_inventory(ctx, change)
    kind = "operator key" if operator else "key"
    err_console.print(
        f"added {kind} {name!r} to gateway {gw} in {LXC_FILE} (only its hash is stored); "
        "this is the only time the key is shown:",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(made[0])


def _wanted_models(inventory: Inventory, models: str) -> list[str]:
    """--models as a list of served models (or '*'); a clear error otherwise."""
    from phoenix.inventory.served import inventory_models

    wanted = [m.strip() for m in models.split(",") if m.strip()]
    if not wanted:
        fail(f"--models {models!r} names no model: give model names, or '*' for all")
    served = inventory_models(inventory)
    unknown = [m for m in wanted if m != "*" and m not in served]
    if unknown:
        fail(f"no guest serves {', '.join(unknown)} (served: {', '.join(sorted(served))})")
    return wanted


@key_app.command("remove")
def key_remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Key name.")]) -> None:
    """Remove a key from the inventory (converge the gateway to apply it)."""
    from phoenix.gateway.keys import remove_entry

    gw = _edit_inventory(ctx, lambda gateway: remove_entry(gateway, name))
    console.print(f"removed key {name!r} from gateway {gw}", markup=False, highlight=False)


@key_app.command("list")
def key_list(ctx: typer.Context) -> None:
    """Key names, the models each may use and its limit, and the operator keys (never a
    key)."""
    inventory = load(ctx)
    gw = _gateway(inventory, None)
    config = inventory.guests[gw].gateway
    keys = config.api_keys if config is not None else []
    operators = config.operator_keys if config is not None else []
    if not keys:
        console.print("no keys: the API is open to whoever reaches it", markup=False)
    for k in keys:
        limit = f"{k.rpm}/min" if k.rpm else "no limit"
        console.print(
            f"{k.name}  models: {', '.join(k.models)}  {limit}", markup=False, highlight=False
        )
    for op in operators:
        console.print(
            f"{op.name}  operator: reads /metrics and /phoenix/* from any address",
            markup=False,
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    gateway_app.add_typer(key_app, name="key")

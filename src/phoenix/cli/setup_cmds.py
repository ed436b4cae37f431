"""`phoenix setup`: prepare this host for the LXC driver (bridges, NAT, subuid/subgid)."""

from __future__ import annotations

from typing import Annotated

import typer

from phoenix.cli.context import console, load, report_error
from phoenix.errors import PhoenixError
from phoenix.host.setup import HostSetup, bridges_from_inventory
from phoenix.runners.local import LocalRunner


def setup(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
    ] = False,
    teardown: Annotated[
        bool,
        typer.Option(
            "--teardown",
            help="Remove what `phoenix setup` created for this config (bridges, NAT table, "
            "an empty firewall table); delete the guests first.",
        ),
    ] = False,
) -> None:
    """Prepare this host for the LXC driver: the inventory's bridges with the guests'
    gateway as host address, IPv4 forwarding, NAT for guest subnets, subuid/subgid.
    Idempotent: a prepared host prints "host ready"."""
    inventory = load(ctx)
    host = HostSetup(LocalRunner(), inventory.state_dir)
    try:
        if teardown:
            for line in host.teardown():
                console.print(f"did: {line}", markup=False, highlight=False)
            console.print("host setup removed")
            return
        bridges = bridges_from_inventory(inventory)
        done = host.apply(bridges, dry_run=dry_run)
    except PhoenixError as exc:
        report_error(exc)
    if not done:
        console.print("host ready: nothing to change")
        return
    verb = "would" if dry_run else "did"
    for line in done:
        console.print(f"{verb}: {line}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)

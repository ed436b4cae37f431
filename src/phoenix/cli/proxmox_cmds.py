"""`phoenix doctor`: check a Proxmox VE node before using the Proxmox driver."""

from __future__ import annotations

from typing import Annotated

import typer

from phoenix.cli.context import console, load
from phoenix.drivers.proxmox.doctor import needs_of, run_doctor
from phoenix.runners.base import Runner
from phoenix.runners.local import LocalRunner
from phoenix.runners.ssh import SshRunner


def doctor(
    ctx: typer.Context,
    ssh_host: Annotated[
        str | None,
        typer.Option("--ssh-host", help="user@host of the node (default: phoenix.ssh_host)."),
    ] = None,
    node: Annotated[
        str | None, typer.Option("--node", help="Proxmox node name (default: phoenix.node).")
    ] = None,
) -> None:
    """Check the Proxmox node: pct/pvesh and their version, the storages, bridges and
    templates the inventory names, subuid/subgid. Prints what to fix; exit 1 if anything is
    wrong. Runs locally, or over SSH when phoenix.ssh_host (or --ssh-host) is set."""
    inventory = load(ctx)
    settings = inventory.hypervisor.phoenix
    host = ssh_host or settings.ssh_host
    runner: Runner = SshRunner(host) if host else LocalRunner()
    where = f"node over ssh {host}" if host else "this host"
    console.print(f"Checking {where} for the Proxmox driver", highlight=False)
    checks = run_doctor(runner, needs_of(inventory), node or settings.node)
    for check in checks:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        if not check.ok and check.fix:
            console.print(f"       fix: {check.fix}", highlight=False, markup=False, soft_wrap=True)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print(f"[red]{len(failed)} problem{'s' if len(failed) != 1 else ''} to fix[/]")
        raise typer.Exit(1)
    console.print("[green]node is ready for the Proxmox driver[/]")


def register(app: typer.Typer) -> None:
    app.command()(doctor)

"""`phoenix setup`: prepare this host for the LXC driver (bridges, NAT, subuid/subgid)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phoenix.cli.context import console, load, report_error


def setup(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
    ] = False,
    teardown: Annotated[
        bool,
        typer.Option(
            "--teardown",
            help="Undo `phoenix setup` and remove the lab's files: bridges, NAT table, the "
            "empty firewall table, the subuid/subgid lines Phoenix added, the LXC path and "
            "the state dir (journal, gateway CA). Delete the guests first.",
        ),
    ] = False,
    purge: Annotated[
        bool,
        typer.Option("--purge", help="With --teardown: remove the template cache too."),
    ] = False,
) -> None:
    """Prepare this host for the LXC driver: the inventory's bridges with the guests'
    gateway as host address, IPv4 forwarding, NAT for guest subnets, subuid/subgid.
    Idempotent: a prepared host prints "host ready"."""
    from phoenix.drivers.lxc.hostprep import HostSetup
    from phoenix.errors import PhoenixError
    from phoenix.host.cleanup import guests_left, remove_lab_files, template_cache_note
    from phoenix.host.setup import bridges_from_inventory, id_ranges_from_inventory
    from phoenix.runners.local import LocalRunner

    inventory = load(ctx)
    host = HostSetup(
        LocalRunner(), inventory.state_dir, subid_ranges=id_ranges_from_inventory(inventory)
    )
    settings = inventory.hypervisor.phoenix
    try:
        if teardown:
            mounts = Path("/proc/self/mounts").read_text()
            lxc_path = Path(settings.lxc_path)
            left = guests_left(lxc_path)
            if left:
                raise PhoenixError(
                    f"guest(s) {', '.join(left)} still exist in {lxc_path}; delete them "
                    "first: phoenix delete --all --yes"
                )
            done = host.teardown()
            done += remove_lab_files(inventory.state_dir, lxc_path, mounts=mounts)
            done += template_cache_note(Path(settings.template_cache), purge, mounts)
            for line in done:
                console.print(line, markup=False, highlight=False)
            console.print("host setup removed")
            return
        if purge:
            raise PhoenixError("--purge goes with --teardown")
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

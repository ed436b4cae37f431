"""`phoenix doctor`: check the host of the configured driver (a Proxmox VE node, or this
host for the LXC driver) before converging."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from phoenix.cli.context import console, fail, load, state
from phoenix.cli.plain import lit

if TYPE_CHECKING:
    from phoenix.drivers.base import Check
    from phoenix.drivers.proxmox.doctor import Needs
    from phoenix.inventory import Inventory
    from phoenix.inventory.models import LxcGuest
    from phoenix.runners.base import Runner


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
    """Check the host of the configured driver and print what to fix; exit 1 if anything is
    wrong. Proxmox: pct/pvesh and their version, the storages, bridges and templates the
    inventory names, subuid/subgid; locally, or over SSH when phoenix.ssh_host (or
    --ssh-host) is set. A cluster (`phoenix.nodes`): every node through its own runner,
    each for the guests placed on it (their GPU device nodes too), then the cluster
    (members online, one Proxmox VE version, shared storage for clones onto another
    node). LXC: packages, LXC config includes, kernel features, subuid/subgid, the
    inventory's bridges, forwarding and NAT, templates."""
    from phoenix.drivers.factory import driver_name
    from phoenix.drivers.proxmox.bindsnap import DetachedBinds, doctor_check
    from phoenix.drivers.proxmox.doctor import run_doctor
    from phoenix.host.doctor import run_lxc_doctor
    from phoenix.runners.local import LocalRunner
    from phoenix.runners.ssh import SshRunner

    inventory = load(ctx)
    settings = inventory.hypervisor.phoenix
    if driver_name(settings, state(ctx).driver) == "lxc":
        console.print("Checking this host for the LXC driver", highlight=False)
        _report(run_lxc_doctor(LocalRunner(), inventory), "host is ready for the LXC driver")
        return
    if settings.nodes and ssh_host is None and node is None:
        _cluster_doctor(inventory)
        return
    host = ssh_host or settings.ssh_host
    runner: Runner = SshRunner(host) if host else LocalRunner()
    where = f"node over ssh {host}" if host else "this host"
    console.print(f"Checking {where} for the Proxmox driver", highlight=False)
    checks = run_doctor(runner, needs_of(inventory), node or settings.node)
    checks.append(doctor_check(DetachedBinds.in_state_dir(inventory.state_dir)))
    _report(checks, "node is ready for the Proxmox driver")


def _cluster_doctor(inventory: Inventory) -> None:
    """Every node of `phoenix.nodes` through its own runner, then the cluster."""
    from phoenix.drivers import gpu
    from phoenix.drivers.factory import node_runner
    from phoenix.drivers.proxmox.doctor_cluster import CrossClone, NodeNeeds, run_cluster_doctor

    nodes = inventory.hypervisor.phoenix.nodes
    placement = inventory.placement()
    needs = {}
    for name in nodes:
        here = [c for c, n in placement.items() if n == name]
        devices = {p for c in here for p in gpu.device_paths(inventory.guests[c].gpus)}
        needs[name] = NodeNeeds(needs_of(inventory, here, ctids=False), frozenset(devices))
    clones = [
        CrossClone(ctid, src, placement[src], placement[ctid], guest.storage_pool)
        for ctid, guest in sorted(inventory.guests.items())
        if (src := guest.clone_from_ctid) is not None
        and src in placement
        and ctid in placement
        and placement[src] != placement[ctid]
    ]
    runners = {name: node_runner(access) for name, access in nodes.items()}
    console.print(f"Checking the {len(nodes)} nodes of the cluster", highlight=False)
    report = run_cluster_doctor(runners, needs, frozenset(inventory.guests), clones)
    for name, checks in report.nodes.items():
        where = f"over ssh {nodes[name].ssh_host}" if nodes[name].ssh_host else "this host"
        console.print(f"[bold]node {lit(name)}[/] ({lit(where)})", markup=True)
        _print_checks(checks)
    console.print("[bold]cluster[/]", markup=True)
    _print_checks(report.cluster)
    _verdict([*report.cluster, *(c for v in report.nodes.values() for c in v)], "cluster is "
             "ready for the Proxmox driver")  # fmt: skip


def needs_of(
    inventory: Inventory, placed: Sequence[int] | None = None, ctids: bool = True
) -> Needs:
    """What the inventory expects of a Proxmox node, for `run_doctor`: of all its guests,
    or of the guests `placed` on one node of a cluster. `ctids`: check the inventory's ids
    against the node's guests (a cluster checks them once, cluster-wide)."""
    from phoenix.drivers.proxmox.doctor import STOCK_PROFILES, Needs
    from phoenix.inventory.idcompose import compose

    chosen = inventory.guests if placed is None else {c: inventory.guests[c] for c in placed}
    guests = chosen.values()
    profiles = {
        value
        for g in guests
        for value in [
            g.apparmor_profile,
            *(v for k, v in g.lxc_option_pairs if k == "lxc.apparmor.profile"),
        ]
        if value and not value.startswith(STOCK_PROFILES)
    }

    def used(guest: LxcGuest) -> set[str]:
        """Every storage the guest has a disk on: its root disk and each volume's pool."""
        return {guest.storage_pool, *(v.pool for v in [*guest.zfs_volumes, *guest.volumes])}

    snapshotted = [
        g
        for g in guests
        if (g.template_snapshot_name or g.enable_lifecycle_snapshots) and not g.is_template
    ]
    return Needs(
        storages=frozenset(s for g in guests for s in used(g)),
        bridges=frozenset(g.network_config.bridge for g in guests if g.network_config),
        templates=frozenset(g.template for g in guests if g.template),
        # `pct snapshot` needs the feature on every mount point (pve-container
        # src/PVE/LXC/Config.pm, has_feature), volumes included.
        snapshot_storages=frozenset(s for g in snapshotted for s in used(g)),
        firewall=any(g.firewall.enabled for g in guests),
        ctids=frozenset(chosen) if ctids else frozenset(),
        apparmor_profiles=frozenset(profiles),
        raw_keys=frozenset(k for g in guests for k, _ in g.lxc_option_pairs),
        id_ranges=frozenset((r.kind, r.host, r.count) for g in guests for r in compose(g.id_maps)),
    )


def _report(checks: Sequence[Check], ready: str) -> None:
    _print_checks(checks)
    _verdict(checks, ready)


def _print_checks(checks: Sequence[Check]) -> None:
    for check in checks:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {lit(check.name)}: {lit(check.detail)}", markup=True)
        if not check.ok and check.fix:
            console.print(f"       fix: {check.fix}", highlight=False, markup=False, soft_wrap=True)


def _verdict(checks: Sequence[Check], ready: str) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print(
            f"[red]{len(failed)} problem{'s' if len(failed) != 1 else ''} to fix[/]", markup=True
        )
        fail(None)
    console.print(f"[green]{lit(ready)}[/]", markup=True)


def register(app: typer.Typer) -> None:
    app.command()(doctor)

"""Read a host for `phoenix import`: every guest through its driver's `observe` (the same
reads a plan makes, so what is imported is what a plan compares), what the host holds
beyond the guest's settings (the driver's own survey module says), and the recipes whose
markers are inside running guests. Changes nothing on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from phoenix.drivers.base import Driver
from phoenix.errors import PhoenixError, PlanError
from phoenix.plan.imported import FoundGuest, FoundHost
from phoenix.recipes.runner import read_markers

if TYPE_CHECKING:
    from phoenix.drivers.proxmox import ProxmoxDriver
    from phoenix.drivers.proxmox.survey import Resource

Progress = Callable[[int, int], None]


def survey(
    driver: Driver,
    ids: Iterable[int] | None = None,
    progress: Progress | None = None,
    vm_path: Path | None = None,
) -> FoundHost:
    """The guests of the host `driver` drives (`ids`: only those; one that is not there
    is a PlanError before anything else is read). `vm_path`: where the LXC host's local
    VMs live, named as not imported."""
    wanted = None if ids is None else sorted(set(ids))
    if driver.name == "proxmox":
        return _proxmox(driver, wanted, progress)
    if driver.name == "lxc":
        vms = _local_vms(vm_path, wanted) if vm_path else ()
        return replace(_lxc(driver, wanted, progress, [v for v, _ in vms]), skipped=vms)
    raise PlanError(f"`phoenix import` reads Proxmox VE and LXC hosts, not {driver.name!r}")


def _missing(wanted: list[int] | None, present: Iterable[int], where: str) -> None:
    absent = sorted(set(wanted or ()) - set(present))
    if absent:
        listed = ", ".join(str(c) for c in absent)
        raise PlanError(f"no guest {listed} on {where}")


def _applied(driver: Driver, ctid: int, running: bool) -> tuple[str, ...]:
    if not running:
        return ()
    try:
        return tuple(sorted(read_markers(driver, ctid)))
    except PhoenixError:
        return ()  # a guest whose markers cannot be read has none to report


def _local_vms(vm_path: Path, wanted: list[int] | None) -> tuple[tuple[int, str], ...]:
    from phoenix.drivers.qemu.survey import vm_ids

    why = "VM (local QEMU): import does not read VMs yet; add it to phoenix_vm_configs.json"
    return tuple((v, why) for v in vm_ids(vm_path) if wanted is None or v in wanted)


def _lxc(
    driver: Driver, wanted: list[int] | None, progress: Progress | None, vms: list[int]
) -> FoundHost:
    from phoenix.drivers.lxc import LxcDriver, survey

    assert isinstance(driver, LxcDriver)
    present = survey.guest_ids(driver)
    _missing(wanted, [*present, *vms], f"this host (LXC path {driver.lxc_path})")
    chosen = [c for c in present if wanted is None or c in wanted]
    guests = []
    for done, ctid in enumerate(chosen):
        if progress is not None:
            progress(done, len(chosen))
        observed = driver.observe(ctid)
        if not observed.exists:
            continue  # removed while reading
        guests.append(
            FoundGuest(
                observed,
                clone_of=survey.clone_source(driver, ctid),
                unmanaged=tuple(survey.unmanaged(driver, ctid)),
                applied=_applied(driver, ctid, observed.running),
            )
        )
    return FoundHost("lxc", tuple(guests))


def _proxmox(driver: Driver, wanted: list[int] | None, progress: Progress | None) -> FoundHost:
    """One node, or every node of its cluster: each guest is read on its own node (through
    that node's runner when the config lists the cluster's nodes, else through pvesh's
    forwarding of `/nodes/<node>`), and each names its node when the cluster has several."""
    from phoenix.drivers.proxmox import survey

    reach, listed = _reach(driver)
    _missing(wanted, [r.vmid for r in listed], f"the Proxmox cluster of node {reach.node}")
    members = survey.members(reach.session)
    cluster = len(members) > 1
    reached: str | None = reach.node
    if reach.node == "localhost":
        reached = next((m.name for m in members if m.local), None)
    offline = {m.name for m in members if not m.online}
    chosen = [r for r in listed if wanted is None or r.vmid in wanted]
    guests = []
    skipped: list[tuple[int, str]] = []
    for done, res in enumerate(chosen):
        if progress is not None:
            progress(done, len(chosen))
        if res.kind != "lxc":
            skipped.append(
                (
                    res.vmid,
                    f"VM {res.name or res.vmid} on node {res.node}: Phoenix does not drive VMs "
                    "on Proxmox yet, so none is written to phoenix_vm_configs.json",
                )
            )
            continue
        if res.node in offline:
            skipped.append((res.vmid, f"container on node {res.node}, which is offline"))
            continue
        on = reach.on(res.node, cluster)
        if on is None:
            skipped.append((res.vmid, _elsewhere(res.node, reach.node)))
            continue
        try:
            observed = on.observe(res.vmid)
        except PhoenixError as exc:
            if res.node in reach.own:
                why = str(exc).splitlines()[0]
                skipped.append((res.vmid, f"container on node {res.node}, not readable: {why}"))
                continue
            if "cluster node" not in str(exc):
                raise
            skipped.append((res.vmid, _elsewhere(res.node, reach.node)))
            continue
        if not observed.exists:
            continue
        # pct exec reaches the local node's guests only: a node Phoenix reaches by its own
        # runner is local to it.
        local = not cluster or res.node == reached or res.node in reach.own
        guests.append(
            FoundGuest(
                observed,
                node=res.node or None,
                unmanaged=tuple(survey.unmanaged(on, res.vmid)),
                applied=_applied(on, res.vmid, observed.running and local),
            )
        )
    nodes = tuple(m.name for m in members) if cluster else ()
    return FoundHost("proxmox", tuple(guests), tuple(skipped), nodes, reached)


@dataclass
class _Reach:
    """How the survey reaches a Proxmox host: `session` answers the cluster-wide reads and
    is the node `node` read through; `own` are the nodes the config lists, each driven
    through its own runner (a ClusterDriver's); any other node is read through `session`
    (pvesh forwards `/nodes/<node>`)."""

    session: ProxmoxDriver
    node: str
    own: dict[str, ProxmoxDriver] = field(default_factory=dict)
    proxied: dict[str, ProxmoxDriver] = field(default_factory=dict)

    def on(self, node: str, cluster: bool) -> ProxmoxDriver | None:
        """The driver that reads `node`'s guests; None for a guest of another node when
        Phoenix drives one node of a cluster it cannot read through."""
        from phoenix.drivers.proxmox import survey

        if node in self.own:
            return self.own[node]
        if cluster:
            return self.proxied.setdefault(node, survey.on_node(self.session, node))
        if self.session.node in ("localhost", node):
            return self.session
        return None


def _reach(driver: Driver) -> tuple[_Reach, list[Resource]]:
    """How to reach the host, and every guest of its cluster: a single-node driver's
    node, or a cluster's node drivers, the cluster-wide reads going to the default node,
    else the first node that answers."""
    from phoenix.drivers.proxmox import ProxmoxDriver, survey
    from phoenix.drivers.proxmox.cluster import ClusterDriver

    if isinstance(driver, ClusterDriver):
        names = sorted(driver.nodes, key=lambda n: n != driver.default)
        failures = []
        for name in names:
            try:
                listed = survey.resources(driver.nodes[name])
            except PhoenixError as exc:
                failures.append(f"{name}: {str(exc).splitlines()[0]}")
                continue
            return _Reach(driver.nodes[name], name, dict(driver.nodes)), listed
        raise PlanError("no node of the cluster answers (" + "; ".join(failures) + ")")
    if not isinstance(driver, ProxmoxDriver):
        raise PlanError(f"`phoenix import` cannot read a Proxmox host through {driver!r}")
    return _Reach(driver, driver.node), survey.resources(driver)


def _elsewhere(node: str, mine: str) -> str:
    return (
        f"container on node {node}, not on the node Phoenix drives ({mine}): import there "
        "(--node and --ssh-host)"
    )

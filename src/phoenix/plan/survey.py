"""Read a host for `phoenix import`: every guest through its driver's `observe` (the same
reads a plan makes, so what is imported is what a plan compares), what the host holds
beyond the guest's settings (the driver's own survey module says), and the recipes whose
markers are inside running guests. Containers through the container driver, VMs through
the host's VM backend (`survey_vms`). Changes nothing on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phoenix.drivers.base import Driver
from phoenix.errors import PhoenixError, PlanError
from phoenix.plan import survey_vms
from phoenix.plan.imported import FoundGuest, FoundHost

if TYPE_CHECKING:
    from phoenix.drivers.proxmox import ProxmoxDriver
    from phoenix.drivers.proxmox.survey import Resource

Progress = Callable[[int, int], None]


def survey(
    driver: Driver,
    ids: Iterable[int] | None = None,
    progress: Progress | None = None,
    vms: Driver | None = None,
) -> FoundHost:
    """The guests of the host `driver` drives (`ids`: only those; one that is not there
    is a PlanError before anything else is read). `vms`: the host's VM backend (the local
    QEMU driver beside LXC, the Proxmox `qm` driver); without it VMs are named, not read."""
    wanted = None if ids is None else sorted(set(ids))
    if driver.name == "proxmox":
        return _proxmox(driver, wanted, progress, vms)
    if driver.name == "lxc":
        return _lxc(driver, wanted, progress, vms)
    raise PlanError(f"`phoenix import` reads Proxmox VE and LXC hosts, not {driver.name!r}")


def _missing(wanted: list[int] | None, present: Iterable[int], where: str) -> None:
    absent = sorted(set(wanted or ()) - set(present))
    if absent:
        listed = ", ".join(str(c) for c in absent)
        raise PlanError(f"no guest {listed} on {where}")


def _lxc(
    driver: Driver, wanted: list[int] | None, progress: Progress | None, vms: Driver | None
) -> FoundHost:
    from phoenix.drivers.lxc import LxcDriver, survey

    assert isinstance(driver, LxcDriver)
    present = survey.guest_ids(driver)
    vm_ids = survey_vms.local_ids(vms)
    _missing(wanted, [*present, *vm_ids], f"this host (LXC path {driver.lxc_path})")
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
                applied=survey_vms.applied(driver, ctid, observed.running),
            )
        )
    found_vms = survey_vms.local(vms, [v for v in vm_ids if wanted is None or v in wanted])
    return FoundHost("lxc", tuple(guests), vms=tuple(found_vms))


def _proxmox(
    driver: Driver, wanted: list[int] | None, progress: Progress | None, vms: Driver | None
) -> FoundHost:
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
    found_vms: list[FoundGuest] = []
    skipped: list[tuple[int, str]] = []
    for done, res in enumerate(chosen):
        if progress is not None:
            progress(done, len(chosen))
        what = "container" if res.kind == "lxc" else f"VM {res.name or res.vmid}"
        if res.node in offline:
            skipped.append((res.vmid, f"{what} on node {res.node}, which is offline"))
            continue
        on = reach.on(res.node, cluster)
        if on is None:
            skipped.append((res.vmid, _elsewhere(what, res.node, reach.node)))
            continue
        # pct/qm exec reach the local node's guests only: a node Phoenix reaches by its
        # own runner is local to it.
        local = not cluster or res.node == reached or res.node in reach.own
        if res.kind != "lxc":
            vm = survey_vms.proxmox(vms, on, res, cluster, local)
            if isinstance(vm, str):
                skipped.append((res.vmid, vm))
            elif vm is not None:
                found_vms.append(vm)
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
            skipped.append((res.vmid, _elsewhere(what, res.node, reach.node)))
            continue
        if not observed.exists:
            continue
        guests.append(
            FoundGuest(
                observed,
                node=res.node or None,
                unmanaged=tuple(survey.unmanaged(on, res.vmid)),
                applied=survey_vms.applied(on, res.vmid, observed.running and local),
            )
        )
    nodes = tuple(m.name for m in members) if cluster else ()
    return FoundHost("proxmox", tuple(guests), tuple(skipped), nodes, reached, vms=tuple(found_vms))


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


def _elsewhere(what: str, node: str, mine: str) -> str:
    return (
        f"{what} on node {node}, not on the node Phoenix drives ({mine}): import there "
        "(--node and --ssh-host)"
    )

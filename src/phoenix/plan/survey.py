"""Read a host for `phoenix import`: every guest through its driver's `observe` (the same
reads a plan makes, so what is imported is what a plan compares), what the host holds
beyond the guest's settings (the driver's own survey module says), and the recipes whose
markers are inside running guests. Changes nothing on the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from phoenix.drivers.base import Driver
from phoenix.errors import PhoenixError, PlanError
from phoenix.plan.imported import FoundGuest, FoundHost
from phoenix.recipes.runner import read_markers

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
    """One node, or every node of its cluster: each guest is read on its own node (pvesh
    forwards `/nodes/<node>`), and each names its node when the cluster has several."""
    from phoenix.drivers.proxmox import ProxmoxDriver, survey

    assert isinstance(driver, ProxmoxDriver)
    listed = survey.resources(driver)
    _missing(wanted, [r.vmid for r in listed], f"the Proxmox cluster of node {driver.node}")
    members = survey.members(driver)
    cluster = len(members) > 1
    reached = next((m.name for m in members if m.local), None)
    if driver.node != "localhost":
        reached = driver.node
    offline = {m.name for m in members if not m.online}
    drivers: dict[str, ProxmoxDriver] = {}
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
        if cluster:
            on = drivers.setdefault(res.node, survey.on_node(driver, res.node))
        elif driver.node in ("localhost", res.node):
            on = driver
        else:
            skipped.append((res.vmid, _elsewhere(res.node, driver.node)))
            continue
        try:
            observed = on.observe(res.vmid)
        except PhoenixError as exc:
            if "cluster node" not in str(exc):
                raise
            skipped.append((res.vmid, _elsewhere(res.node, driver.node)))
            continue
        if not observed.exists:
            continue
        local = not cluster or res.node == reached  # pct exec reaches local guests only
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


def _elsewhere(node: str, mine: str) -> str:
    return (
        f"container on node {node}, not on the node Phoenix drives ({mine}): import there "
        "(--node and --ssh-host)"
    )

"""The VM half of `phoenix import`'s survey: each VM read through the host's VM backend
(`observe`, the reads a plan makes), plus what only the backend's own survey can say: the
template a linked clone builds on, what the VM's config holds that Phoenix does not
manage, and its secrets (named, never read out). Changes nothing on the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from phoenix.drivers.base import Driver
from phoenix.errors import PhoenixError
from phoenix.plan.imported import FoundGuest
from phoenix.recipes.runner import read_markers

if TYPE_CHECKING:
    from phoenix.drivers.proxmox import ProxmoxDriver
    from phoenix.drivers.proxmox.survey import Resource


def applied(driver: Driver, ctid: int, running: bool) -> tuple[str, ...]:
    """The recipes whose applied-markers are inside a running guest."""
    if not running:
        return ()
    try:
        return tuple(sorted(read_markers(driver, ctid)))
    except PhoenixError:
        return ()  # a guest whose markers cannot be read has none to report


def local_ids(vms: Driver | None) -> list[int]:
    """The local QEMU driver's VMs (none without it)."""
    from phoenix.drivers.qemu.driver import QemuDriver
    from phoenix.drivers.qemu.survey import vm_ids

    return vm_ids(vms.vm_path) if isinstance(vms, QemuDriver) else []


def local(vms: Driver | None, ids: Sequence[int]) -> list[FoundGuest]:
    """The local VMs `ids`, each with the template a linked clone builds on."""
    from phoenix.drivers.qemu import survey
    from phoenix.drivers.qemu.driver import QemuDriver

    if not isinstance(vms, QemuDriver):
        return []
    out = []
    for vmid in ids:
        observed = vms.observe(vmid)
        if not observed.exists:
            continue  # removed while reading
        source = survey.clone_source(vms, vmid)
        out.append(
            FoundGuest(
                observed,
                clone_of=None if source is None else (source, None),
                applied=applied(vms, vmid, observed.running),
            )
        )
    return out


def proxmox(
    vms: Driver | None, on: ProxmoxDriver, res: Resource, cluster: bool, local: bool
) -> FoundGuest | str | None:
    """VM `res` read on its node through `on`'s runner (pvesh forwards `/nodes/<node>`
    when that is another node); `local`: `on` runs on that node, so `qm guest exec`
    reaches the VM. A string: why it is not imported; None: gone meanwhile."""
    from phoenix.drivers.proxmox import vmsurvey
    from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver

    name = f"VM {res.name or res.vmid} on node {res.node}"
    if not isinstance(vms, ProxmoxVmDriver):
        return f"{name}: VMs are not read on this host"
    driver = vmsurvey.on_node(vms, on.runner, on.node)
    try:
        observed = driver.observe(res.vmid)
        config = vmsurvey.config(driver, res.vmid)
    except PhoenixError as exc:
        return f"{name}, not readable: {str(exc).splitlines()[0]}"
    if not observed.exists or config is None:
        return None
    source = vmsurvey.clone_source(config)
    return FoundGuest(
        observed,
        node=res.node if cluster else None,
        clone_of=None if source is None else (source, None),
        unmanaged=tuple(vmsurvey.unmanaged(res.vmid, config)),
        secrets=tuple(vmsurvey.secrets(config)),
        applied=applied(driver, res.vmid, observed.running and local),
    )

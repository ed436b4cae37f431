"""Pick and build the driver for a host from the inventory's `phoenix` settings (and
--driver / --offline).

Drivers are imported lazily: a Proxmox host needs no LXC code and the other way round.
The settings are named by shape (`HostSettings`): the inventory's `DriverSettings` has it,
and the drivers sit beside the inventory, not above it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from phoenix.drivers.base import CommandLog, Driver, GuestSettings, ObservedGuest
from phoenix.errors import DriverError
from phoenix.names import DRIVERS
from phoenix.runners.base import CommandResult, Runner, Stdin
from phoenix.runners.local import LocalRunner


class NodeAccess(Protocol):
    """How to reach one node of a cluster (the inventory's `ClusterNode`)."""

    @property
    def ssh_host(self) -> str | None: ...


class HostSettings(Protocol):
    """What the factory reads of the inventory's `phoenix` block (`DriverSettings`)."""

    @property
    def driver(self) -> str: ...

    @property
    def lxc_path(self) -> str: ...

    @property
    def state_dir(self) -> str: ...

    @property
    def template_cache(self) -> str: ...

    @property
    def node(self) -> str | None: ...

    @property
    def ssh_host(self) -> str | None: ...

    @property
    def lxc_clone(self) -> str: ...

    @property
    def vm_path(self) -> str: ...

    @property
    def vm_image_cache(self) -> str: ...

    @property
    def nodes(self) -> Mapping[str, NodeAccess]: ...

    @property
    def default_node(self) -> str | None: ...


class OfflineDriver:
    """A host where nothing exists and nothing may change: `phoenix plan --offline` shows
    what a fresh host would need without touching this one (and, with `why`, the VMs of a
    host whose driver has no VM backend yet)."""

    def __init__(self, name: str, why: str = "offline: this driver observes nothing") -> None:
        self.name = name
        self.why = why
        self.log = CommandLog()

    def observe(self, ctid: int) -> ObservedGuest:
        return ObservedGuest(ctid, "missing")

    def _refuse(self, *_: object, **__: object) -> Any:
        raise DriverError(f"{self.why} and changes nothing")

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        self._refuse()

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        self._refuse()

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        self._refuse()

    def resize(self, ctid: int, disk_gb: int) -> None:
        self._refuse()

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        self._refuse()

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        self._refuse()

    def destroy(self, ctid: int) -> None:
        self._refuse()

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        return cast(CommandResult, self._refuse())

    def snapshot(self, ctid: int, name: str) -> None:
        self._refuse()

    def list_snapshots(self, ctid: int) -> list[str]:
        return []

    def mark_template(self, ctid: int) -> None:
        self._refuse()


def _import(module: str, attr: str, what: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise DriverError(f"{what} is not available in this installation ({exc})") from None


def driver_name(settings: HostSettings, name: str | None) -> str:
    chosen = name or settings.driver
    if chosen not in DRIVERS:
        raise DriverError(f"unknown driver {chosen!r} (choose one of: {', '.join(DRIVERS)})")
    return chosen


def node_runner(settings: HostSettings | NodeAccess) -> Runner:
    """LocalRunner on the node itself; SshRunner when `ssh_host` names the node."""
    host = settings.ssh_host
    if not host:
        return LocalRunner()
    ssh_runner = _import("phoenix.runners.ssh", "SshRunner", "the SSH runner")
    return cast(Runner, ssh_runner(host))


def make_driver(
    settings: HostSettings,
    name: str | None = None,
    offline: bool = False,
    vm_ids: frozenset[int] = frozenset(),
    placement: Mapping[int, str] | None = None,
) -> Driver:
    """The driver named by `name` (--driver) or `settings.driver` (the inventory's
    `hypervisor.phoenix`). A Proxmox cluster (`phoenix.nodes`) is one driver over all its
    nodes, `placement` saying which node each guest belongs on.

    `offline`: an OfflineDriver (every guest missing, no changes possible), whichever driver
    is named; the Proxmox commands of an offline plan come from its command builders
    (`phoenix.drivers.proxmox.preview`), not from a driver. `vm_ids`: the inventory's VMs,
    served by the driver's VM backend (local QEMU beside LXC) behind one `SplitDriver`.
    """
    chosen = driver_name(settings, name)
    if offline:
        return OfflineDriver(chosen)
    containers = _container_driver(settings, chosen, placement or {})
    if not vm_ids:
        return containers
    split = _import("phoenix.drivers.split", "SplitDriver", "VM support")
    if chosen == "proxmox" and settings.nodes:
        vms = _cluster_vms(settings, containers, placement or {})
        return cast(Driver, split(containers, vms, vm_ids))
    return cast(Driver, split(containers, _vm_driver(settings, chosen), vm_ids))


def _cluster_vms(settings: HostSettings, cluster: Driver, placement: Mapping[int, str]) -> Driver:
    """A cluster's VMs: one VM driver per node, placed by the cluster driver's view."""
    vms = _import("phoenix.drivers.proxmox.vmdriver", "ProxmoxVmDriver", "the Proxmox driver")
    owned = _import("phoenix.drivers.proxmox.ownership", "OwnedRaw", "the Proxmox driver")
    record = owned(Path(settings.state_dir) / "proxmox-vm-owned.json")
    nodes = {
        name: vms(node_runner(access), name, owned=record)
        for name, access in settings.nodes.items()
    }
    spread = _import("phoenix.drivers.proxmox.clustervms", "ClusterVmDriver", "clusters")
    return cast(Driver, spread(cluster, nodes, placement))


def vm_backend(settings: HostSettings) -> Driver:
    """The host's VM backend alone (local QEMU beside LXC, or `qm` on `phoenix.node`): what
    `phoenix import` reads VMs through before it knows their ids."""
    return _vm_driver(settings, driver_name(settings, None))


def _vm_driver(settings: HostSettings, chosen: str) -> Driver:
    if chosen == "proxmox":
        vms = _import("phoenix.drivers.proxmox.vmdriver", "ProxmoxVmDriver", "the Proxmox driver")
        owned = _import("phoenix.drivers.proxmox.ownership", "OwnedRaw", "the Proxmox driver")
        # The VMs' firewall rules Phoenix wrote: a record of their own beside the journal.
        name = _import("phoenix.drivers.proxmox.vmdriver", "OWNED_FILE", "the Proxmox driver")
        record = owned(Path(settings.state_dir) / name)
        return cast(Driver, vms(node_runner(settings), settings.node or "localhost", owned=record))
    qemu = _import("phoenix.drivers.qemu.driver", "QemuDriver", "the local VM driver")
    return cast(
        Driver,
        qemu(
            Path(settings.vm_path),
            Path(settings.vm_image_cache),
            state_dir=Path(settings.state_dir),
        ),
    )


def _container_driver(settings: HostSettings, chosen: str, placement: Mapping[int, str]) -> Driver:
    if chosen == "proxmox":
        proxmox = _import("phoenix.drivers.proxmox", "ProxmoxDriver", "the Proxmox driver")
        # Without a name, `localhost`: pvesh never proxies it, so it is the node the runner
        # reaches (this machine's hostname names no node when Phoenix runs over SSH).
        node = settings.node or "localhost"
        # The raw lxc lines Phoenix wrote are recorded beside its journal (ownership.py).
        owned = _import("phoenix.drivers.proxmox.ownership", "OwnedRaw", "the Proxmox driver")
        record = owned.in_state_dir(Path(settings.state_dir))
        # Bind mounts detached for a snapshot, until they are back (bindsnap.py).
        binds = _import("phoenix.drivers.proxmox.bindsnap", "DetachedBinds", "the Proxmox driver")
        detached = binds.in_state_dir(Path(settings.state_dir))
        if settings.nodes:
            cluster = _import("phoenix.drivers.proxmox.cluster", "ClusterDriver", "clusters")
            drivers = {
                node_name: proxmox(node_runner(access), node_name, owned=record, detached=detached)
                for node_name, access in settings.nodes.items()
            }
            return cast(Driver, cluster(drivers, placement, settings.default_node))
        return cast(Driver, proxmox(node_runner(settings), node, owned=record, detached=detached))
    lxc = _import("phoenix.drivers.lxc", "LxcDriver", "the LXC driver")
    return cast(
        Driver,
        lxc(
            Path(settings.lxc_path),
            Path(settings.template_cache),
            runner=None,
            state_dir=Path(settings.state_dir),
            clone_mode=settings.lxc_clone,
        ),
    )

"""The VMs of a Proxmox cluster: each VM driven on the node that holds it.

`qm` acts only on the local node's VMs, so every command about a VM runs through the
runner of its node (one `ProxmoxVmDriver` per node); where each VM lives comes from the
cluster's one read of `/cluster/resources` (`ClusterDriver.view`), and the same health
gate holds: no quorum, or its node offline or unreachable, and nothing changes on it. A
new VM is made on the node the inventory places it on; a clone onto another node than its
source's is `qm clone --target` (`vmclone`). A VM the inventory places on
another node than the one it runs on is moved with `qm migrate` (`vmplace`): live
(`--online`) when it runs, its local disks copied (`--with-local-disks`); what would
refuse the move is said at plan time. A VM with `placement: ha` gets its HA resource
(`vm:N`) and node affinity as a container does, and then lives where HA puts it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace

from phoenix.drivers.base import GuestSettings, HaPlacement, MigrationCheck, ObservedGuest
from phoenix.drivers.proxmox import vmclone, vmplace
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin


class ClusterVmDriver:
    """The VMs of `cluster`, each on its node's driver in `nodes`; `placement`: where the
    inventory puts each VM."""

    name = "proxmox"

    def __init__(
        self,
        cluster: ClusterDriver,
        nodes: Mapping[str, ProxmoxVmDriver],
        placement: Mapping[int, str],
    ) -> None:
        self.cluster = cluster
        self.nodes = dict(nodes)
        self.placement = dict(placement)
        self.log = cluster.log
        for node in self.nodes.values():
            node.log = cluster.log

    # -- where each VM is ----------------------------------------------------------------

    def node_of(self, vmid: int) -> str:
        placed = self.cluster.view().guests.get(vmid)
        if placed is not None and placed.node in self.nodes:
            return placed.node
        node = self.placement.get(vmid, self.cluster.default)
        if node is None or node not in self.nodes:
            raise DriverError(f"VM {vmid}: no node to put it on (set its `node`, or phoenix.node)")
        return node

    def _gate(self, vmid: int, node: str) -> ProxmoxVmDriver:
        why = self.cluster.unavailable(node)
        if why is not None:
            raise DriverError(f"VM {vmid}: not changed: {why}")
        return self.nodes[node]

    def _on(self, vmid: int) -> ProxmoxVmDriver:
        return self._gate(vmid, self.node_of(vmid))

    def held(self, ctid: int, node: str | None) -> str | None:
        return self.cluster.held(ctid, node)

    # -- the Driver contract, on the VM's node -------------------------------------------

    def observe(self, ctid: int) -> ObservedGuest:
        placed = self.cluster.view().guests.get(ctid)
        if placed is None:
            return ObservedGuest(ctid, "missing")
        if placed.kind != "qemu":
            raise DriverError(
                f"VM {ctid}: the id is a container's on node {placed.node!r} (ids are unique "
                "across the cluster): renumber the VM in the inventory"
            )
        if placed.node not in self.nodes or self.cluster.unavailable(placed.node) is not None:
            if placed.status == "running":  # what the cluster last knew of it
                return ObservedGuest(ctid, "running", node=placed.node)
            return ObservedGuest(ctid, "stopped", node=placed.node)
        return replace(self.nodes[placed.node].observe(ctid), node=placed.node)

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        node = self.node_of(ctid)
        self._gate(ctid, node).create(ctid, template, settings)
        self.cluster.placed(ctid, node, kind="qemu")

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        """On the source's node; onto another node with `qm clone --target`, refused
        before it runs where Proxmox would refuse it (`vmclone`)."""
        here, there = self.node_of(source), self.node_of(ctid)
        target = self._gate(ctid, there)
        if here != there:
            mine, theirs = self.cluster.storages(here), self.cluster.storages(there)
            for found in (mine, theirs):
                if isinstance(found, str):
                    raise DriverError(f"VM {ctid}: not cloned: {found}")
            assert not isinstance(mine, str) and not isinstance(theirs, str)
            full = settings.vm.full_clone if settings.vm is not None else False
            storage = settings.storage if full else None
            config = self._config(source, here)
            why = vmclone.blockers(ctid, source, config, there, storage, mine, theirs)
            if why:
                raise DriverError(
                    f"VM {ctid} cannot be cloned from VM {source} on node {here} onto "
                    f"{there}: " + "; ".join(why)
                )
        self._gate(ctid, here).clone_to(target, source, ctid, snapshot, settings)
        self.cluster.placed(ctid, there, kind="qemu")

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        self._on(ctid).configure(ctid, settings, changed)

    def resize(self, ctid: int, disk_gb: int) -> None:
        self._on(ctid).resize(ctid, disk_gb)

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        self._on(ctid).start(ctid, timeout)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        self._on(ctid).stop(ctid, timeout)

    def destroy(self, ctid: int) -> None:
        if ctid not in self.cluster.view().guests:
            return
        self._on(ctid).destroy(ctid)
        self.cluster.placed(ctid, None)

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        node = self.nodes[self.node_of(ctid)]
        return node.exec(ctid, argv, env=env, stdin=stdin, timeout=timeout)

    def snapshot(self, ctid: int, name: str) -> None:
        self._on(ctid).snapshot(ctid, name)

    def list_snapshots(self, ctid: int) -> list[str]:
        return self.nodes[self.node_of(ctid)].list_snapshots(ctid)

    def mark_template(self, ctid: int) -> None:
        self._on(ctid).mark_template(ctid)

    # -- placement by Proxmox HA (HaPlacer): the VM's resource is `vm:N` ------------------

    def ha_changes(self, ctid: int, wanted: HaPlacement) -> tuple[str, ...]:
        return self.cluster.ha_changes(ctid, wanted, kind="vm")

    def ha_place(self, ctid: int, wanted: HaPlacement) -> None:
        self.cluster.ha_place(ctid, wanted, kind="vm")

    # -- placement -----------------------------------------------------------------------

    def migration(self, ctid: int, target: str, observed: ObservedGuest) -> MigrationCheck:
        here = self.node_of(ctid)
        found = [w for w in map(self.cluster.unavailable, (here, target)) if w is not None]
        if found:
            return MigrationCheck(tuple(found), "unknown")
        mine, theirs = self.cluster.storages(here), self.cluster.storages(target)
        assert not isinstance(mine, str) and not isinstance(theirs, str)  # checked above
        config = self._config(ctid, here)
        blockers = vmplace.blockers(ctid, config, target, theirs)
        return MigrationCheck(blockers, vmplace.downtime(observed.running, config, mine))

    def _config(self, vmid: int, node: str) -> dict[str, str]:
        data = self.nodes[node]._vm_config(vmid) or {}
        return {str(k): str(v) for k, v in data.items()}

    def migrate(self, ctid: int, target: str) -> None:
        """`qm migrate` on the VM's node, refused before it runs when it would fail."""
        here = self.node_of(ctid)
        if here == target:
            return
        observed = self.observe(ctid)
        check = self.migration(ctid, target, observed)
        if check.blockers:
            raise DriverError(
                f"VM {ctid} cannot move from {here} to {target}: " + "; ".join(check.blockers)
            )
        storages = self.cluster.storages(here)
        assert not isinstance(storages, str)  # checked by migration()
        local = bool(vmplace.local_disks(self._config(ctid, here), storages))
        argv = vmplace.migrate_cmd(ctid, target, observed.running, local)
        self._gate(ctid, here)._mutate(ctid, argv, timeout=None)
        self.cluster.placed(ctid, target, observed.state, kind="qemu")
        if not self.observe(ctid).exists:
            raise DriverError(f"VM {ctid}: `{shlex.join(argv)}` left it nowhere")

"""The Proxmox cluster driver: the nodes of one cluster driven as one host.

Proxmox's own cluster is the engine (one `/etc/pve` for all nodes, `pvesh` proxying
`/nodes/X`, `pct migrate`); Phoenix drives it, one `ProxmoxDriver` per node, each running
its commands through that node's runner (this machine, or SSH):

- The cluster is read once per run (`/cluster/status`, `/cluster/resources`) through the
  first node that answers; each node's own facts (its storages) through its own runner.
- `pct` acts only on the local node's guests, and config edits take the node-local lock:
  every command about a guest runs on the node that holds it; a new guest is made on the
  node the inventory places it on; a clone from another node's source is `pct clone
  --target` run on the source's node.
- Health gates every write: without quorum nothing changes (Proxmox keeps `/etc/pve`
  read-only); an offline or unreachable node's guests are held, not changed, while the
  others converge (`held`).
- Placement: a guest the inventory places elsewhere is moved with `pct migrate` (restart
  mode) when the run asks for migrations; `migration` says beforehand what would block it.
  A guest placed by Proxmox HA gets its HA resource and node affinity (`haplace`), and
  then lives where HA puts it.

Independent guests on different nodes converge in parallel: the executor's worker threads
each drive their guest's node through its own runner.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from phoenix.drivers.base import (
    CommandLog,
    GuestSettings,
    HaPlacement,
    MigrationCheck,
    ObservedGuest,
)
from phoenix.drivers.proxmox import clusterview, commands, haplace, pvesh
from phoenix.drivers.proxmox.clusterview import ClusterView, Placed, Storage
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import DriverError, PhoenixError
from phoenix.runners.base import CommandResult, Stdin


class ClusterDriver:
    """Every node of the cluster by name (`nodes`), and where the inventory places each
    guest (`placement`; others go to `default`)."""

    name = "proxmox"

    def __init__(
        self,
        nodes: Mapping[str, ProxmoxDriver],
        placement: Mapping[int, str],
        default: str | None,
    ) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.nodes = dict(nodes)
        self.placement = dict(placement)
        self.default = default
        self.log = CommandLog()
        for node in self.nodes.values():
            node.log = self.log  # one log of the run, whichever node ran what
        self._view: ClusterView | None = None
        self._storages: dict[str, dict[str, Storage] | str] = {}
        self._ha: haplace.HaConfig | None = None
        self._guard = threading.Lock()

    # -- the cluster, read once --------------------------------------------------------

    def view(self) -> ClusterView:
        """`/cluster/status` and `/cluster/resources`, through the first node answering
        (pvesh answers cluster-wide reads on any node)."""
        with self._guard:
            if self._view is None:
                self._view = self._read_view()
            return self._view

    def _read_view(self) -> ClusterView:
        failures = []
        for name, node in self.nodes.items():
            try:
                status = node._json(0, pvesh.cluster_status_cmd())
                resources = node._json(0, pvesh.cluster_resources_cmd())
            except PhoenixError as exc:
                failures.append(f"{name}: {str(exc).splitlines()[0]}")
                continue
            quorate, online = clusterview.parse_status(status)
            return ClusterView(quorate, online, clusterview.parse_resources(resources))
        raise DriverError(
            "no node of the cluster answers (" + "; ".join(failures) + "): Phoenix reads "
            "where every guest lives through any one node"
        )

    def storages(self, node: str) -> dict[str, Storage] | str:
        """The node's storages, read through its own runner; a string: why it cannot be
        reached."""
        with self._guard:
            if node not in self._storages:
                driver = self.nodes[node]
                try:
                    data = driver._json(0, pvesh.storage_cmd(node))
                    self._storages[node] = clusterview.parse_storage(data)
                except PhoenixError as exc:
                    self._storages[node] = str(exc).splitlines()[0]
            return self._storages[node]

    # -- health ------------------------------------------------------------------------

    def node_of(self, ctid: int) -> str:
        """Where the guest lives, else where the inventory puts it."""
        placed = self.view().guests.get(ctid)
        if placed is not None and placed.node in self.nodes:
            return placed.node
        node = self.placement.get(ctid, self.default)
        if node is None or node not in self.nodes:
            raise DriverError(
                f"guest {ctid}: no node to put it on (set its `node`, or phoenix.node)"
            )
        return node

    def unavailable(self, node: str) -> str | None:
        """Why nothing may change on `node` now, or None."""
        view = self.view()
        if not view.quorate:
            return (
                "the cluster has no quorum, so Proxmox keeps /etc/pve read-only and refuses "
                "every change; bring its nodes back (`pvecm status` says which are missing)"
            )
        if not view.online.get(node, True):
            return f"node {node} is offline in the cluster (corosync does not see it)"
        facts = self.storages(node)
        if isinstance(facts, str):
            return f"node {node} cannot be reached: {facts}"
        return None

    def held(self, ctid: int, node: str | None) -> str | None:
        placed = self.view().guests.get(ctid)
        if placed is not None and placed.node not in self.nodes:
            return (
                f"it lives on node {placed.node}, which phoenix.nodes does not list: add "
                f"{placed.node} (and how to reach it) so Phoenix can change it there"
            )
        return self.unavailable(node if placed is None and node else self.node_of(ctid))

    def _gate(self, ctid: int, node: str) -> ProxmoxDriver:
        why = self.unavailable(node)
        if why is not None:
            raise DriverError(f"guest {ctid}: not changed: {why}")
        return self.nodes[node]

    def _on(self, ctid: int) -> ProxmoxDriver:
        return self._gate(ctid, self.node_of(ctid))

    def placed(
        self, ctid: int, node: str | None, status: str = "stopped", kind: str = "lxc"
    ) -> None:
        """Keep the view up to date with what this run made, moved or destroyed."""
        guests = self.view().guests
        if node is None:
            guests.pop(ctid, None)
        else:
            guests[ctid] = Placed(kind, node, status)

    # -- observing ---------------------------------------------------------------------

    def observe(self, ctid: int) -> ObservedGuest:
        placed = self.view().guests.get(ctid)
        if placed is None:
            return ObservedGuest(ctid, "missing")
        if placed.kind != "lxc":
            raise DriverError(
                f"guest {ctid} is a VM on node {placed.node!r}: a container cannot have its "
                "id (ids are unique across the cluster); renumber the guest in the inventory"
            )
        # A node Phoenix cannot reach or does not know: what the cluster last knew of it.
        if placed.node not in self.nodes or self.unavailable(placed.node) is not None:
            if placed.status == "running":
                return ObservedGuest(ctid, "running", node=placed.node)
            return ObservedGuest(ctid, "stopped", node=placed.node)
        return replace(self.nodes[placed.node].observe(ctid), node=placed.node)

    # -- making guests -----------------------------------------------------------------

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        node = self.node_of(ctid)
        self._gate(ctid, node).create(ctid, template, settings)
        self.placed(ctid, node)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        here, there = self.node_of(source), self.node_of(ctid)
        target = self._gate(ctid, there)
        storages = self.storages(here)
        found = None if isinstance(storages, str) else storages.get(settings.storage)
        if here != there and found is not None and not found.shared:
            raise DriverError(
                f"guest {ctid} is cloned from {source} on node {here} onto node {there}, which "
                f"Proxmox does only onto shared storage (`pct clone --target`), and "
                f"{settings.storage!r} is local to {here}: give {ctid} a shared storage_pool, "
                f"or put it on {here}"
            )
        self._gate(ctid, here).clone_to(target, source, ctid, snapshot, settings)
        self.placed(ctid, there)

    def destroy(self, ctid: int) -> None:
        self._destroy(ctid, force=False)

    def force_destroy(self, ctid: int) -> None:
        self._destroy(ctid, force=True)

    def _destroy(self, ctid: int, force: bool) -> None:
        if ctid not in self.view().guests:
            return
        node = self._on(ctid)
        node.force_destroy(ctid) if force else node.destroy(ctid)
        self.placed(ctid, None)

    # -- on the guest's node -----------------------------------------------------------

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        self._on(ctid).configure(ctid, settings, changed)

    def resize(self, ctid: int, disk_gb: int) -> None:
        self._on(ctid).resize(ctid, disk_gb)

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        self._on(ctid).start(ctid, timeout)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        self._on(ctid).stop(ctid, timeout)

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

    def snapshot_without_bind_mounts(self, ctid: int, name: str) -> None:
        self._on(ctid).snapshot_without_bind_mounts(ctid, name)

    def resume_detached(self) -> list[tuple[int, tuple[str, ...]]]:
        """Every reachable node's (`ProxmoxDriver.resume_detached`); an unavailable node's
        guests keep their record until it is back."""
        out = []
        for name, node in sorted(self.nodes.items()):
            if node.detached.of_node(name) and self.unavailable(name) is None:
                out += node.resume_detached()
        return out

    def list_snapshots(self, ctid: int) -> list[str]:
        return self.nodes[self.node_of(ctid)].list_snapshots(ctid)

    def mark_template(self, ctid: int) -> None:
        self._on(ctid).mark_template(ctid)

    # -- placement ---------------------------------------------------------------------

    def migration(self, ctid: int, target: str, observed: ObservedGuest) -> MigrationCheck:
        here = self.node_of(ctid)
        blockers: list[str] = []
        for node in (here, target):
            why = self.unavailable(node)
            if why is not None:
                blockers.append(why)
        if blockers:
            return MigrationCheck(tuple(blockers), "unknown")
        mine, theirs = self.storages(here), self.storages(target)
        assert not isinstance(mine, str) and not isinstance(theirs, str)  # checked above
        _, requested = self.nodes[here]._status(ctid)
        found = clusterview.migration_blockers(
            observed, target, mine, theirs, requested is not None
        )
        return MigrationCheck(found, clusterview.downtime(observed, mine))

    def migrate(self, ctid: int, target: str) -> None:
        """`pct migrate` on the guest's node, refused before it runs when it would fail."""
        here = self.node_of(ctid)
        if here == target:
            return
        observed = self.observe(ctid)
        check = self.migration(ctid, target, observed)
        if check.blockers:
            raise DriverError(
                f"guest {ctid} cannot move from {here} to {target}: " + "; ".join(check.blockers)
            )
        argv = commands.migrate(ctid, target, observed.running)
        source = self._gate(ctid, here)
        source._mutate(ctid, argv, timeout=None)
        self.placed(ctid, target, observed.state)
        if observed.running:  # restart mode started it on the target: wait until it is up
            self.nodes[target]._wait_up(ctid, 120.0)
        if not self.observe(ctid).exists:
            raise DriverError(f"guest {ctid}: `{shlex.join(argv)}` left it nowhere")

    # -- placement by Proxmox HA -------------------------------------------------------

    def ha_config(self) -> haplace.HaConfig:
        """The cluster's HA resources and node affinities, read once (through the first
        node answering; its version says rules or groups)."""
        online = self.view().online  # before the guard: view() takes it too
        with self._guard:
            if self._ha is None:
                self._ha = self._read_ha(online)
            return self._ha

    def _read_ha(self, online: Mapping[str, bool]) -> haplace.HaConfig:
        failures = []
        for name, node in self.nodes.items():
            if not online.get(name, True):
                continue
            try:
                resources = haplace.parse_resources(node._json(0, haplace.resources_cmd()))
                if node.version() >= haplace.RULES_SINCE:
                    rules = haplace.parse_rules(node._json(0, haplace.rules_cmd()))
                    return haplace.HaConfig(resources, rules, {})
                groups = haplace.parse_groups(node._json(0, haplace.groups_cmd()))
                return haplace.HaConfig(resources, None, groups)
            except PhoenixError as exc:
                failures.append(f"{name}: {str(exc).splitlines()[0]}")
        raise DriverError(
            "no node of the cluster answers for its HA configuration (" + "; ".join(failures) + ")"
        )

    def ha_changes(self, ctid: int, wanted: HaPlacement, kind: str = "ct") -> tuple[str, ...]:
        return tuple(a.detail for a in haplace.actions(self.ha_config(), ctid, wanted, kind))

    def ha_place(self, ctid: int, wanted: HaPlacement, kind: str = "ct") -> None:
        """Write the guest's HA resource and node affinity (`kind` "vm": a VM's), through
        the guest's node (pvesh writes the cluster-wide HA config from any member)."""
        node = self._on(ctid)
        with self._guard:
            self._ha = None  # read it anew: a resumed run may find part of it written
        for action in haplace.actions(self.ha_config(), ctid, wanted, kind):
            node._mutate(ctid, action.argv)
        with self._guard:
            self._ha = None

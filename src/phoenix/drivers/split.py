"""Containers and VMs on one host behind one `Driver`: each call goes to the backend of
the guest's kind, chosen by id (the inventory's VM ids), so the planner, the executor, the
recipes and the health checks handle both kinds the same way.

A VM backend implements the `Driver` contract for VM ids (see `VmConfig` for what each
call means for a VM). Both backends write one command log, so "a converged re-run changes
nothing" covers VMs too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from phoenix.drivers.base import (
    ClusterPlacement,
    Driver,
    ForcedDestroy,
    GuestSettings,
    HaPlacement,
    HaPlacer,
    MigrationCheck,
    ObservedGuest,
)
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin


class SplitDriver:
    """Containers on `containers`, the guests in `vm_ids` on `vms`."""

    def __init__(self, containers: Driver, vms: Driver, vm_ids: frozenset[int]) -> None:
        self.containers = containers
        self.vms = vms
        self.vm_ids = vm_ids
        self.name = containers.name
        self.log = containers.log
        vms.log = containers.log

    def backend(self, ctid: int) -> Driver:
        return self.vms if ctid in self.vm_ids else self.containers

    def observe(self, ctid: int) -> ObservedGuest:
        return self.backend(ctid).observe(ctid)

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        self.backend(ctid).create(ctid, template, settings)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        self.backend(ctid).clone(source, ctid, snapshot, settings)

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        self.backend(ctid).configure(ctid, settings, changed)

    def resize(self, ctid: int, disk_gb: int) -> None:
        self.backend(ctid).resize(ctid, disk_gb)

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        self.backend(ctid).start(ctid, timeout)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        self.backend(ctid).stop(ctid, timeout)

    def destroy(self, ctid: int) -> None:
        self.backend(ctid).destroy(ctid)

    def force_destroy(self, ctid: int) -> None:
        backend = self.backend(ctid)
        if isinstance(backend, ForcedDestroy):
            backend.force_destroy(ctid)
        else:
            backend.destroy(ctid)

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        return self.backend(ctid).exec(ctid, argv, env=env, stdin=stdin, timeout=timeout)

    def snapshot(self, ctid: int, name: str) -> None:
        self.backend(ctid).snapshot(ctid, name)

    def list_snapshots(self, ctid: int) -> list[str]:
        return self.backend(ctid).list_snapshots(ctid)

    def mark_template(self, ctid: int) -> None:
        self.backend(ctid).mark_template(ctid)

    # -- a cluster's guests (ClusterPlacement), when the guest's backend is one ----------

    def _cluster(self, ctid: int) -> ClusterPlacement | None:
        backend = self.backend(ctid)
        return backend if isinstance(backend, ClusterPlacement) else None

    def held(self, ctid: int, node: str | None) -> str | None:
        cluster = self._cluster(ctid)
        return None if cluster is None else cluster.held(ctid, node)

    def migration(self, ctid: int, target: str, observed: ObservedGuest) -> MigrationCheck:
        cluster = self._cluster(ctid)
        if cluster is None:
            return MigrationCheck(("only a cluster's guests move between nodes",), "none")
        return cluster.migration(ctid, target, observed)

    def migrate(self, ctid: int, target: str) -> None:
        cluster = self._cluster(ctid)
        if cluster is None:
            raise DriverError(f"guest {ctid}: only a cluster's guests move between nodes")
        cluster.migrate(ctid, target)

    # -- placement by Proxmox HA (HaPlacer), when the container backend does it ---------

    def _placer(self, ctid: int) -> HaPlacer:
        backend = self.backend(ctid)
        if not isinstance(backend, HaPlacer):
            raise DriverError(f"guest {ctid}: only a Proxmox cluster places guests by HA")
        return backend

    def ha_changes(self, ctid: int, wanted: HaPlacement) -> tuple[str, ...]:
        return self._placer(ctid).ha_changes(ctid, wanted)

    def ha_place(self, ctid: int, wanted: HaPlacement) -> None:
        self._placer(ctid).ha_place(ctid, wanted)

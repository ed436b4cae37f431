"""One plan step sent to what carries it out: the executor hands a driver, the offline
preview (`phoenix.plan.preview`) the Proxmox command builders. One match serves both, so a
new lifecycle step cannot run one way and be previewed another.

Health checks and recipes are not sent here: the executor runs them against a live guest
(markers, idle wait, sleeps) while the preview only lists their commands.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, assert_never

from phoenix.drivers.base import (
    ClusterPlacement,
    DetachingSnapshots,
    ForcedDestroy,
    GuestSettings,
    HaPlacer,
)
from phoenix.errors import PlanError
from phoenix.plan.model import (
    Application,
    CheckHealth,
    Clone,
    Configure,
    Create,
    Destroy,
    Feature,
    HaPlace,
    MarkTemplate,
    Migrate,
    Resize,
    Snapshot,
    Start,
    Step,
    Stop,
    Unrunnable,
)

GuestStep: TypeAlias = CheckHealth | Feature | Application
"""The steps `lifecycle` hands back: they act inside a guest, each caller its own way."""


class Lifecycle(Protocol):
    """The guest lifecycle calls a plan step maps to (a Driver has them all)."""

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None: ...
    def clone(
        self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings
    ) -> None: ...
    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None: ...
    def resize(self, ctid: int, disk_gb: int) -> None: ...
    def start(self, ctid: int) -> None: ...
    def stop(self, ctid: int) -> None: ...
    def destroy(self, ctid: int) -> None: ...
    def snapshot(self, ctid: int, name: str) -> None: ...
    def mark_template(self, ctid: int) -> None: ...


def lifecycle(target: Lifecycle, step: Step) -> GuestStep | None:
    """Send a lifecycle step to `target` (None), or hand back a step that acts inside the
    guest. An Unrunnable step raises PlanError naming the guest and why."""
    ctid = step.ctid
    match step:
        case Destroy(force=True) if isinstance(target, ForcedDestroy):
            target.force_destroy(ctid)
        case Destroy():
            target.destroy(ctid)
        case Create(template=template, settings=settings):
            target.create(ctid, template, settings)
        case Clone(source=source, snapshot=snapshot, settings=settings):
            target.clone(source, ctid, snapshot, settings)
        case Configure(changes=changes, settings=settings):
            target.configure(ctid, settings, frozenset(c.field for c in changes))
        case Resize(disk_gb=disk_gb):
            target.resize(ctid, disk_gb)
        case Start():
            target.start(ctid)
        case Stop():
            target.stop(ctid)
        case Snapshot(snapshot=name, detach_bind_mounts=True):
            if not isinstance(target, DetachingSnapshots):
                raise PlanError(f"guest {ctid}: {step.detail}: only Proxmox detaches bind mounts")
            target.snapshot_without_bind_mounts(ctid, name)
        case Snapshot(snapshot=name):
            target.snapshot(ctid, name)
        case MarkTemplate():
            target.mark_template(ctid)
        case Migrate(target=node):
            if not isinstance(target, ClusterPlacement):
                raise PlanError(f"guest {ctid}: {step.detail}: only a cluster moves guests")
            target.migrate(ctid, node)
        case HaPlace(placement=placement):
            if not isinstance(target, HaPlacer):
                raise PlanError(f"guest {ctid}: {step.detail}: only a cluster uses Proxmox HA")
            target.ha_place(ctid, placement)
        case Unrunnable(error=error):
            raise PlanError(f"guest {ctid}: {step.detail}: {error}")
        case CheckHealth() | Feature() | Application():
            return step
        case _:
            assert_never(step)
    return None

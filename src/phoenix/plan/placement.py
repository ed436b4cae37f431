"""Placement in a Proxmox cluster: a guest living on another node than the inventory's.

With `--migrate` that is a migration step (what would block it is refused here, at plan
time, with the reason and the way out, never found half-way); without, it is drift,
reported while the guest converges where it is. A one-host driver has no placement.
"""

from __future__ import annotations

from phoenix.drivers.base import ClusterPlacement, Driver, ObservedGuest
from phoenix.errors import PlanError
from phoenix.plan.model import Migrate, Step


def placement_steps(
    driver: Driver, ctid: int, wanted: str | None, observed: ObservedGuest, migrate: bool
) -> tuple[list[Step], tuple[str, ...]]:
    """(steps, drift) for guest `ctid` placed on `wanted` by the inventory."""
    here = observed.node
    if not isinstance(driver, ClusterPlacement) or here is None or wanted in (None, here):
        return [], ()
    assert wanted is not None
    check = driver.migration(ctid, wanted, observed)
    if not migrate:
        blocked = f"; it could not move: {'; '.join(check.blockers)}" if check.blockers else ""
        return [], (
            f"runs on node {here}, the inventory places it on {wanted}: run with --migrate "
            f"to move it (downtime: {check.downtime}){blocked}",
        )
    if check.blockers:
        raise PlanError(
            f"guest {ctid} cannot move from node {here} to {wanted}: " + "; ".join(check.blockers)
        )
    detail = f"migrate {here} -> {wanted} (downtime: {check.downtime})"
    return [Migrate(ctid, detail, here, wanted)], ()

"""Placement in a Proxmox cluster: a guest living on another node than the inventory's.

With `--migrate` that is a migration step (what would block it is refused here, at plan
time, with the reason and the way out, never found half-way); without, it is drift,
reported while the guest converges where it is. A one-host driver has no placement.

A guest with `placement: ha` is placed by Proxmox HA instead: Phoenix writes its HA
resource and node affinity (an `HaPlace` step, last, once the guest exists), and then
never moves it and never calls where HA put it drift.
"""

from __future__ import annotations

from phoenix.drivers.base import ClusterPlacement, Driver, HaPlacement, HaPlacer, ObservedGuest
from phoenix.errors import PlanError
from phoenix.inventory import Inventory
from phoenix.inventory.models import LxcGuest, VmGuest
from phoenix.plan.model import HaPlace, Migrate, Step

# HA's priorities for `placement: ha`: the guest's `node` first, its `ha_nodes` after.
PREFERRED, ALLOWED = 2, 1


def ha_wanted(inventory: Inventory, ctid: int) -> HaPlacement | None:
    """How HA should place guest `ctid` (a container or a VM); None when the inventory
    does not hand it to HA."""
    guest: LxcGuest | VmGuest | None = inventory.guests.get(ctid) or inventory.vms.get(ctid)
    settings = inventory.hypervisor.phoenix
    if guest is None or guest.placement != "ha" or not settings.is_cluster:
        return None
    preferred = settings.node_of(guest.node)
    nodes = [(preferred, PREFERRED)] if preferred is not None else []
    nodes += [(n, ALLOWED) for n in dict.fromkeys(guest.ha_nodes or []) if n != preferred]
    return HaPlacement(tuple(nodes), guest.ha_strict)


def ha_steps(driver: Driver, ctid: int, wanted: HaPlacement | None) -> list[Step]:
    """The step writing what HA's configuration lacks for the guest (none: nothing)."""
    if wanted is None:
        return []
    if not isinstance(driver, HaPlacer):
        return []  # an offline plan reads no HA configuration
    changes = driver.ha_changes(ctid, wanted)
    if not changes:
        return []
    detail = f"place by Proxmox HA ({wanted.node_list() or 'any node'}): " + "; ".join(changes)
    return [HaPlace(ctid, detail, wanted, changes)]


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

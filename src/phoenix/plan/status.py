"""Status data for `phoenix status`: what each guest is right now (the CLI renders it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from phoenix.drivers.base import Driver, GuestState
from phoenix.inventory.loader import Inventory
from phoenix.plan.health import probe


@dataclass(frozen=True)
class GuestStatus:
    """One guest: observed state, addresses, boot settings, snapshots, health.

    `health` is "ok", "failing", "not running", "no check" or "not checked".
    """

    ctid: int
    name: str
    state: GuestState
    ip: str | None
    ips: tuple[str, ...]
    desired_ip: str | None
    start_at_boot: bool
    boot_order: int
    is_template: bool
    snapshots: tuple[str, ...]
    health: str
    health_output: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ips"] = list(self.ips)
        out["snapshots"] = list(self.snapshots)
        return out


def gather_status(
    inventory: Inventory,
    driver: Driver,
    ids: Iterable[int] | None = None,
    check_health: bool = True,
) -> list[GuestStatus]:
    """Observe each LXC guest (in start order) and, if asked, run its health check once."""
    wanted = list(inventory.guests) if ids is None else [c for c in ids if c in inventory.guests]
    out: list[GuestStatus] = []
    for ctid in sorted(wanted, key=lambda c: (inventory.guests[c].boot_order, c)):
        guest = inventory.guests[ctid]
        observed = driver.observe(ctid)
        desired_ip = guest.network_config.address if guest.network_config else None
        health, output = "no check", ""
        if guest.health_check is not None:
            if not observed.running:
                health = "not running"
            elif not check_health:
                health = "not checked"
            else:
                single = guest.health_check.model_copy(update={"retries": 1})
                result = probe(driver, ctid, single)
                health = "ok" if result.ok else "failing"
                output = (result.stdout + result.stderr).strip()[-500:]
        ips = observed.ip_addresses
        out.append(
            GuestStatus(
                ctid=ctid,
                name=guest.name,
                state=observed.state,
                ip=ips[0] if ips else None,
                ips=ips,
                desired_ip=desired_ip,
                start_at_boot=guest.start_at_boot,
                boot_order=guest.boot_order,
                is_template=observed.is_template,
                snapshots=observed.snapshots,
                health=health,
                health_output=output,
            )
        )
    return out

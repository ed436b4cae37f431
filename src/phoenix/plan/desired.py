"""Desired state: an inventory entry turned into the `GuestSettings` a driver applies.

This is the only place that knows how inventory keys map to guest settings, so the planner
and every driver agree on what "converged" means.
"""

from __future__ import annotations

from phoenix.drivers.base import FirewallRule, GuestSettings, NetSettings
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import LxcGuest


def guest_settings(guest: LxcGuest) -> GuestSettings:
    """Normalised settings of one inventory entry (AppArmor: `apparmor_profile` wins over a
    raw `lxc.apparmor.profile`, as `phoenix validate` warns)."""
    net = None
    if guest.network_config is not None:
        nc = guest.network_config
        net = NetSettings(nc.name, nc.bridge, nc.ip, nc.gw, guest.mac_address)
    raw = dict(guest.lxc_option_pairs)
    apparmor = guest.apparmor_profile or raw.get("lxc.apparmor.profile")
    raw.pop("lxc.apparmor.profile", None)
    rules = tuple(
        FirewallRule(r.type, r.action, r.source, r.dest, r.proto, r.port)
        for r in guest.firewall.rules
    )
    return GuestSettings(
        hostname=guest.name,
        memory_mb=guest.memory_mb,
        swap_mb=guest.swap_mb,
        cores=guest.cores,
        disk_gb=guest.storage_size_gb,
        storage=guest.storage_pool,
        unprivileged=guest.unprivileged,
        net=net,
        features=tuple(sorted(guest.pct_features.items())),
        raw_lxc=tuple(sorted(raw.items())),
        apparmor_profile=apparmor,
        onboot=guest.start_at_boot,
        boot_order=guest.boot_order,
        boot_delay=guest.boot_delay,
        firewall_enabled=guest.firewall.enabled,
        firewall_rules=rules if guest.firewall.enabled else (),
    )


def desired_settings(inventory: Inventory, ctid: int) -> GuestSettings:
    return guest_settings(inventory.guests[ctid])

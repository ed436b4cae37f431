"""Drivers observe and change guests on a host: `lxc` (local LXC) and `proxmox` (pct/pvesh)."""

from phoenix.drivers.base import (
    CommandLog,
    Driver,
    FirewallRule,
    GuestSettings,
    NetSettings,
    ObservedGuest,
)

__all__ = [
    "CommandLog",
    "Driver",
    "FirewallRule",
    "GuestSettings",
    "NetSettings",
    "ObservedGuest",
]

"""GuestSettings.diff, the comparison every plan rests on: what differs is a step, what
does not must never be one (a false difference reconfigures a guest on every run)."""

from __future__ import annotations

import dataclasses

from phoenix.drivers.base import GuestSettings, NetSettings

NET = NetSettings("eth0", "vmbr0", "10.0.0.9/24", "10.0.0.1", "BC:24:11:0A:0B:0C")
DESIRED = GuestSettings(
    hostname="web-1",
    memory_mb=2048,
    swap_mb=512,
    cores=2,
    disk_gb=8,
    storage="local-zfs",
    unprivileged=True,
    net=NET,
)


def observed(**changes: object) -> GuestSettings:
    return dataclasses.replace(DESIRED, **changes)  # type: ignore[arg-type]


def test_a_mac_differing_only_in_case_is_the_same_mac() -> None:
    """Proxmox and LXC print MACs in either case; the inventory may use the other."""
    lower = dataclasses.replace(NET, mac=NET.mac.lower() if NET.mac else None)
    assert DESIRED.diff(observed(net=lower)) == {}
    assert dataclasses.replace(DESIRED, net=lower).diff(observed()) == {}


def test_another_mac_is_a_difference() -> None:
    other = dataclasses.replace(NET, mac="BC:24:11:0A:0B:0D")
    assert set(DESIRED.diff(observed(net=other))) == {"net"}


def test_no_desired_mac_keeps_the_assigned_one() -> None:
    wanted = dataclasses.replace(DESIRED, net=dataclasses.replace(NET, mac=None))
    assert wanted.diff(observed()) == {}
    moved = dataclasses.replace(NET, mac=None, ip="10.0.0.10/24")
    assert set(dataclasses.replace(DESIRED, net=moved).diff(observed())) == {"net"}


def test_each_field_is_compared_and_reported_old_then_new() -> None:
    assert DESIRED.diff(observed(memory_mb=1024)) == {"memory_mb": (1024, 2048)}
    assert DESIRED.diff(observed(cores=4, hostname="web-2")) == {
        "cores": (4, 2),
        "hostname": ("web-2", "web-1"),
    }

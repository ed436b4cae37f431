"""The fake node's rules that pve-container applies, each with the driver behaviour it
guards: pending changes on a running guest (pve-container `src/PVE/LXC/Config.pm`,
`vmconfig_hotplug_pending`/`vmconfig_apply_pending`), resize (`src/PVE/API2/LXC.pm`,
`resize_vm`), no snapshot or start of a template (pve-guest-common
`src/PVE/AbstractConfig.pm`, pve-container `src/PVE/API2/LXC/Status.pm`), reserved snapshot
names, a clone from a snapshot (`clone_vm` copies the snapshot's config and disks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, MountSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import PhoenixError
from tests.unit.proxmox.fakenode import PENDING, FakeNode, options

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
BASE = GuestSettings("web", 1024, 512, 2, 8, "local-zfs", True, None)
VOLUME = MountSettings("/data", pool="local-zfs", size_gb=4)


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path)


def driver_on(node: FakeNode) -> ProxmoxDriver:
    return ProxmoxDriver(node, "localhost", sleep=lambda _: None)


def running_guest(node: FakeNode, settings: GuestSettings = BASE) -> ProxmoxDriver:
    driver = driver_on(node)
    driver.create(100, TEMPLATE, settings)
    node.running.add(100)
    return driver


def main_options(node: FakeNode, ctid: int = 100) -> dict[str, str]:
    conf = node.conf(ctid)
    assert conf is not None
    return options(conf.main)


def test_the_fake_node_keeps_what_cannot_be_hot_plugged_pending(node: FakeNode) -> None:
    running_guest(node)
    assert node.run(["pct", "set", "100", "--memory", "2048", "--features", "nesting=1"]).ok
    conf = node.conf(100)
    assert conf is not None
    assert options(conf.main)["memory"] == "2048"  # hot-plugged
    assert "features" not in options(conf.main)
    assert options(conf.sections[PENDING]) == {"features": "nesting=1"}
    node.run(["pct", "shutdown", "100"])
    node.run(["pct", "start", "100"])
    assert main_options(node)["features"] == "nesting=1"
    assert PENDING not in (node.conf(100) or conf).sections


def test_a_change_that_waits_for_a_start_restarts_a_running_guest(node: FakeNode) -> None:
    """Features and a changed mount point are pending until a start: Phoenix restarts the
    guest, so the next observe reads what it asked for (no drift every run)."""
    wanted = dataclasses.replace(BASE, mounts=(VOLUME,))
    driver = running_guest(node, wanted)
    changed = dataclasses.replace(
        wanted,
        features=(("nesting", "1"),),
        mounts=(dataclasses.replace(VOLUME, read_only=True),),
    )
    driver.configure(100, changed, frozenset({"features", "mounts"}))
    seen = driver.observe(100)
    assert seen.settings is not None and changed.diff(seen.settings) == {}
    conf = node.conf(100)
    assert conf is not None and PENDING not in conf.sections
    assert 100 in node.running


def test_a_hostname_change_reaches_the_running_guest_without_a_restart(node: FakeNode) -> None:
    driver = running_guest(node)
    driver.configure(100, dataclasses.replace(BASE, hostname="web2"), frozenset({"hostname"}))
    assert main_options(node)["hostname"] == "web2"
    assert node.calls[-1][-2:] == ("hostname", "web2")  # in the guest, argv (no shell)
    assert not any(c[:2] == ("pct", "shutdown") for c in node.calls)


def test_the_fake_node_resizes_relative_and_refuses_the_same_size(node: FakeNode) -> None:
    driver_on(node).create(100, TEMPLATE, BASE)
    assert (
        "disk is already at specified size"
        in node.run(["pct", "resize", "100", "rootfs", "8G"]).stderr
    )
    assert node.run(["pct", "resize", "100", "rootfs", "+2G"]).ok
    assert "size=10G" in main_options(node)["rootfs"]
    assert "unable to shrink" in node.run(["pct", "resize", "100", "rootfs", "9G"]).stderr


def test_a_volume_resize_whose_worker_failed_is_an_error(node: FakeNode) -> None:
    wanted = dataclasses.replace(BASE, mounts=(VOLUME,))
    driver = driver_on(node)
    driver.create(100, TEMPLATE, wanted)
    node.resize_worker_fails = True
    grown = dataclasses.replace(wanted, mounts=(dataclasses.replace(VOLUME, size_gb=6),))
    with pytest.raises(PhoenixError, match=r"resize 100 mp0 6G` exited 0 but mp0 is 4 GiB"):
        driver.configure(100, grown, frozenset({"mounts"}))


def test_the_fake_node_neither_snapshots_nor_starts_a_template(node: FakeNode) -> None:
    driver = driver_on(node)
    driver.create(100, TEMPLATE, BASE)
    driver.mark_template(100)
    said = node.run(["pct", "snapshot", "100", "again"]).stderr
    assert "you can't take a snapshot if it's a template" in said
    assert "you can't start a CT if it's a template" in node.run(["pct", "start", "100"]).stderr


def test_the_fake_node_reserves_only_current_and_vzdump(node: FakeNode) -> None:
    driver_on(node).create(100, TEMPLATE, BASE)
    assert node.run(["pct", "snapshot", "100", "pve-before-upgrade"]).ok
    assert "is reserved" in node.run(["pct", "snapshot", "100", "vzdump"]).stderr


def test_a_clone_from_a_snapshot_is_sized_against_the_snapshots_disk(node: FakeNode) -> None:
    """The source grew after its snapshot: a clone from the snapshot gets the snapshot's
    disk, so a clone as big as the snapshot is fine (the source's size is not the bar)."""
    driver = driver_on(node)
    driver.create(900, TEMPLATE, BASE)
    driver.snapshot(900, "base")
    driver.resize(900, 16)
    driver.clone(900, 101, "base", dataclasses.replace(BASE, disk_gb=8))
    assert "size=8G" in main_options(node, 101)["rootfs"]
    with pytest.raises(PhoenixError, match=r"source 900 has 8 GiB"):
        driver.clone(900, 102, "base", dataclasses.replace(BASE, disk_gb=4))

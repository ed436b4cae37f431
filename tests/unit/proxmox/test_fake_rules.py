"""The fake node's rules that pve-container applies, each with the driver behaviour it
guards: pending changes on a running guest (pve-container `src/PVE/LXC/Config.pm`,
`vmconfig_hotplug_pending`/`vmconfig_apply_pending`), resize (`src/PVE/API2/LXC.pm`,
`resize_vm`), no snapshot or start of a template (pve-guest-common
`src/PVE/AbstractConfig.pm`, pve-container `src/PVE/API2/LXC/Status.pm`), reserved snapshot
names, a clone from a snapshot (`clone_vm` copies the snapshot's config and disks), and
`devN` entries (`src/PVE/LXC/Config.pm` `$dev_desc`, `update_pct_config`; `src/PVE/LXC/
Tools.pm` `get_device_mode_and_rdev`)."""

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


def node_with_gpu(node: FakeNode) -> FakeNode:
    driver_on(node).create(100, TEMPLATE, BASE)
    node.add_device("/dev/nvidia0")
    node.add_device("/dev/nvidia1")
    node.calls.clear()
    return node


@pytest.mark.parametrize(
    ("value", "says"),
    [
        # pve-container src/PVE/LXC/Config.pm `$dev_desc` and verify_lxc_dev_string
        ("/srv/nvidia0", "is not a valid device path"),
        ("/dev/../etc/shadow", "is not a valid device path"),
        ("/dev/nvidia0,mode=666", "mode: value does not match"),
        ("/dev/nvidia0,mode=0668", "mode: value does not match"),
        ("/dev/nvidia0,uid=-1", "uid: type check ('integer') failed"),
        ("/dev/nvidia0,gid=video", "gid: type check ('integer') failed"),
        ("/dev/nvidia0,deny-write=maybe", "deny-write: type check ('boolean')"),
        ("/dev/nvidia0,major=195", "unknown property 'major'"),
        # parse_device: a path is required
        ("mode=0666", "Path has to be defined"),
        # update_pct_config stats it (src/PVE/LXC/Tools.pm get_device_mode_and_rdev)
        ("/dev/nvidia7", "Device /dev/nvidia7 does not exist"),
        ("/dev/null-file", "/dev/null-file is not a device"),
    ],
)
def test_the_fake_node_checks_a_device_entry_as_pct_does(
    node: FakeNode, value: str, says: str
) -> None:
    node_with_gpu(node)
    node.path("/dev").mkdir(exist_ok=True)
    node.path("/dev/null-file").write_text("")  # a plain file, no device node
    said = node.run(["pct", "set", "100", "--dev0", value])
    assert not said.ok and says in said.stderr
    assert "dev0" not in main_options(node)


def test_the_fake_node_takes_what_pct_takes_for_a_device(node: FakeNode) -> None:
    """The forms Phoenix writes (an unprivileged guest's `mode=0666`) and the rest of the
    schema's; dev255 is the last slot (`$MAX_DEVICES`)."""
    node_with_gpu(node)
    node.add_device("/dev/sdb", "b")
    for key, value in (
        ("dev0", "/dev/nvidia0,mode=0666"),
        ("dev1", "path=/dev/nvidia1,uid=0,gid=44,deny-write=1"),
        ("dev255", "/dev/sdb"),
    ):
        assert node.run(["pct", "set", "100", f"--{key}", value]).ok, value
    assert (
        "property is not defined" in node.run(["pct", "set", "100", "--dev256", "/dev/sdb"]).stderr
    )
    assert node.run(["test", "-c", "/dev/nvidia0"]).ok
    assert not node.run(["test", "-c", "/dev/sdb"]).ok and node.run(["test", "-b", "/dev/sdb"]).ok


def test_a_device_on_a_running_guest_is_hot_plugged_once_then_pending(node: FakeNode) -> None:
    """vmconfig_hotplug_pending plugs a new devN and skips one that exists (pending until the
    next start); removing one waits too (not hot-deletable)."""
    node_with_gpu(node)
    node.running.add(100)
    assert node.run(["pct", "set", "100", "--dev0", "/dev/nvidia0"]).ok
    assert main_options(node)["dev0"] == "/dev/nvidia0"
    assert node.run(["pct", "set", "100", "--dev0", "/dev/nvidia1"]).ok
    conf = node.conf(100)
    assert conf is not None and main_options(node)["dev0"] == "/dev/nvidia0"
    assert options(conf.sections[PENDING]) == {"dev0": "/dev/nvidia1"}
    assert node.run(["pct", "set", "100", "--delete", "dev0"]).ok
    assert main_options(node)["dev0"] == "/dev/nvidia0"


def test_phoenix_refuses_a_gpu_the_node_lacks_before_pct_would(node: FakeNode) -> None:
    """The driver's own probe (`test -c`) names the way out; only device nodes count."""
    node_with_gpu(node)
    node.path("/dev").mkdir(exist_ok=True)
    node.path("/dev/nvidiactl").write_text("")  # a file where the device node should be
    node.add_device("/dev/nvidia-uvm")
    node.add_device("/dev/nvidia-uvm-tools")
    with pytest.raises(PhoenixError, match=r"has no /dev/nvidiactl, so the guest could not start"):
        driver_on(node).configure(100, dataclasses.replace(BASE, gpus=(0,)), frozenset({"gpus"}))
    assert not any(c[:2] == ("pct", "set") for c in node.calls)

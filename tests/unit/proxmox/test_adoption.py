"""Adopting a guest the original tool made (finding 10): its GPU lines, mounts, devices and
env must survive Phoenix converging it, and a converged guest must stay untouched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.inventory import load_inventory
from phoenix.plan.desired import desired_settings
from tests.conftest import shared_fixture
from tests.unit.proxmox.conftest import data
from tests.unit.proxmox.fakenode import FakeNode

ORIGINAL = data("conf_950_original_tool.conf")
# The lines of the original config Phoenix does not manage: every one must survive.
NOT_PHOENIX = [
    line
    for line in ORIGINAL.splitlines()
    if line.startswith(
        ("#", "arch:", "dev0:", "env:", "mp0:", "ostype:", "rootfs:", "unprivileged:")
    )
    or (line.startswith("lxc.") and not line.startswith("lxc.apparmor.profile"))
]


@pytest.fixture(scope="module")
def s950() -> GuestSettings:
    return desired_settings(load_inventory(shared_fixture("phoenix-etc-2025-10-03")), 950)


def converge(driver: ProxmoxDriver, ctid: int, desired: GuestSettings) -> frozenset[str]:
    seen = driver.observe(ctid)
    assert seen.settings is not None
    changed = frozenset(desired.diff(seen.settings))
    if changed:
        driver.configure(ctid, desired, changed)
    return changed


def node_with_950(tmp_path: Path, running: bool = True) -> FakeNode:
    node = FakeNode(tmp_path, version="9.1.3", storages={"quickOS-lxc-disks": "zfspool"})
    node.put_conf(950, ORIGINAL)
    if running:
        node.running.add(950)
    return node


def test_adopting_a_gpu_guest_loses_no_line_and_restarts_nothing(
    tmp_path: Path, s950: GuestSettings
) -> None:
    node = node_with_950(tmp_path)
    driver = ProxmoxDriver(
        node, "localhost", sleep=lambda _: None, owned=OwnedRaw(tmp_path / "o.json")
    )
    converge(driver, 950, s950)
    text = node.conf_text(950)
    missing = [line for line in NOT_PHOENIX if line not in text.splitlines()]
    assert missing == []
    assert text.count("lxc.apparmor.profile: unconfined") == 1
    # The raw keys Phoenix owns were already as wanted: no config rewrite, no restart.
    assert not any(c[:2] in {("pct", "shutdown"), ("pct", "start")} for c in node.calls)
    assert not any(c[0] == "flock" for c in node.calls)
    # Converged: a second run changes nothing at all.
    before = len(node.mutations())
    assert converge(driver, 950, s950) == frozenset()
    assert node.mutations()[before:] == []


def test_inventory_raw_lines_are_added_beside_the_gpu_lines_and_removed_alone(
    tmp_path: Path, s950: GuestSettings
) -> None:
    node = node_with_950(tmp_path)
    record = OwnedRaw(tmp_path / "owned.json")
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, owned=record)
    # The inventory adds a mount entry of its own (the same key as the GPU lines).
    extra = ("lxc.mount.entry", "/srv/models srv/models none bind,create=dir")
    with_mount = dataclasses.replace(s950, raw_lxc=(extra,))
    converge(driver, 950, with_mount)
    lines = node.conf_text(950).splitlines()
    assert f"{extra[0]}: {extra[1]}" in lines
    assert [line for line in NOT_PHOENIX if line not in lines] == []
    assert converge(driver, 950, with_mount) == frozenset()
    # Another run (a new process: the record is read back from the state dir) without it.
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, owned=OwnedRaw(record.path))
    assert converge(driver, 950, s950) == {"raw_lxc"}
    lines = node.conf_text(950).splitlines()
    assert f"{extra[0]}: {extra[1]}" not in lines
    assert [line for line in NOT_PHOENIX if line not in lines] == []
    assert converge(driver, 950, s950) == frozenset()


def test_a_clone_inherits_what_phoenix_owned_on_its_source(tmp_path: Path) -> None:
    node = FakeNode(tmp_path, version="9.1.3")
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    base = GuestSettings("b", 512, 512, 1, 8, "local-zfs", True, None)
    source = dataclasses.replace(base, raw_lxc=(("lxc.mount.auto", "sys:rw"),))
    driver.create(900, "/t.tar.zst", source)
    node.put_conf(900, node.conf_text(900) + "lxc.cgroup2.devices.allow: c 195:* rwm\n")
    driver.clone(900, 901, None, base)  # the clone's inventory entry has no raw keys
    text = node.conf_text(901)
    assert "lxc.mount.auto: sys:rw" not in text  # Phoenix's line from the source: dropped
    assert "lxc.cgroup2.devices.allow: c 195:* rwm" in text  # not Phoenix's: kept

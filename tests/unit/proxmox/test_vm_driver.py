"""The Proxmox VM driver on the fake node: the original tool's newest VM inventory (a
template from a cloud image, two linked clones with cloud-init, firewall and boot order)
is created, observed back exactly as the inventory says, and a second pass changes
nothing; recipes run through `qm guest exec` with the command's own exit code."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import qm
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.errors import DriverError
from phoenix.inventory import load_inventory
from phoenix.plan.desired import vm_settings
from tests.conftest import shared_fixture
from tests.unit.proxmox.fakenode import FakeNode
from tests.unit.proxmox.fakeqemu import image

VM = "phoenix_vm_configs.json"
IMAGE = "/var/lib/vz/import/noble-server-cloudimg-amd64.img"
ALL = frozenset(f.name for f in dataclasses.fields(GuestSettings))


@pytest.fixture
def desired(minimal_dir: Path) -> dict[int, GuestSettings]:
    shutil.copy(shared_fixture("phoenix-vm-newest") / VM, minimal_dir / VM)
    inventory = load_inventory(minimal_dir)
    return {vmid: vm_settings(vm) for vmid, vm in inventory.vms.items()}


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    fake = FakeNode(tmp_path / "node", version="9.1.3", storages={"quickOS-vm-disks": "zfspool"})
    image(fake.root, IMAGE)
    return fake


def driver_on(node: FakeNode) -> ProxmoxVmDriver:
    return ProxmoxVmDriver(node, "pve", sleep=lambda _: None, version=(9, 1))


def build(driver: ProxmoxVmDriver, desired: dict[int, GuestSettings]) -> None:
    driver.create(9000, IMAGE, desired[9000])
    driver.mark_template(9000)
    for vmid in (1001, 1002):
        driver.clone(9000, vmid, None, desired[vmid])
        driver.start(vmid)


def test_the_newest_vm_inventory_converges_and_a_rerun_changes_nothing(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    driver = driver_on(node)
    build(driver, desired)
    for vmid, wanted in desired.items():
        seen = driver.observe(vmid)
        assert seen.settings is not None
        diff = wanted.diff(seen.settings)
        if vmid == 9000:
            diff.pop("disk_gb")  # a template keeps its image's size
        assert diff == {}, vmid
    assert driver.observe(9000).is_template
    assert driver.observe(1001).running
    # The template's firewall is off; each clone's .fw holds its own rules.
    assert "9443" in node.path("/etc/pve/firewall/1001.fw").read_text()
    again = driver_on(node)
    again.owned = driver.owned
    for vmid, wanted in desired.items():
        again.configure(vmid, wanted, ALL)
        again.resize(vmid, wanted.disk_gb)
        again.start(vmid) if vmid != 9000 else None
    assert [argv for kind, argv in again.log.entries if kind == "mutate"] == []


def test_a_clone_is_resized_after_its_task_ends(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    node.qemu.clone_task_reads = 3  # the clone task outlives the command
    driver = driver_on(node)
    driver.create(9000, IMAGE, desired[9000])
    driver.mark_template(9000)
    driver.clone(9000, 1001, None, desired[1001])
    seen = driver.observe(1001).settings
    assert seen is not None and seen.disk_gb == 32


def test_exec_reads_the_commands_exit_code(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    driver = driver_on(node)
    build(driver, desired)
    node.qemu.guest = lambda argv: (7, "out", "err") if argv[-1] == "fail" else (0, "ok", "")
    assert driver.exec(1001, ["sh", "-c", "fail"]).returncode == 7
    assert driver.exec(1001, ["true"]).stdout == "ok"


def test_input_over_one_mib_goes_in_parts_and_the_command_reads_it_from_a_file(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    """`qm guest exec --pass-stdin` takes at most 1 MiB (PVE/CLI/qm.pm): a bigger bundle
    is written to a file in the guest in parts, then read by the command from there."""
    driver = driver_on(node)
    build(driver, desired)
    data = bytes(range(256)) * (5 * 4096 + 100)  # 5 MiB and a bit
    seen: list[list[str]] = []

    def guest(argv: list[str]) -> tuple[int, str, str]:
        seen.append(argv)
        return 0, "unpacked", ""

    node.qemu.guest = guest
    node.qemu.inputs.clear()
    result = driver.exec(1001, ["tar", "-xzf", "-"], stdin=data)
    assert result.stdout == "unpacked"
    parts = node.qemu.inputs
    assert b"".join(parts) == data and len(parts) == 6
    assert all(len(p) <= qm.PASS_STDIN_MAX for p in parts)
    path = qm.input_file(data)
    scripts = [argv[argv.index("-c") + 1] for argv in seen]
    assert scripts == [qm.WRITE_PART, *[qm.APPEND_PART] * 5, qm.FROM_FILE]
    assert seen[-1][-5:] == ["phoenix-input", path, "tar", "-xzf", "-"]


def test_a_part_that_fails_stops_the_input_and_removes_the_file(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    driver = driver_on(node)
    build(driver, desired)
    seen: list[list[str]] = []

    def guest(argv: list[str]) -> tuple[int, str, str]:
        seen.append(argv)
        return (1, "", "No space left on device") if qm.APPEND_PART in argv else (0, "", "")

    node.qemu.guest = guest
    data = b"x" * (qm.PASS_STDIN_MAX + 1)
    result = driver.exec(1001, ["cat"], stdin=data)
    assert result.returncode == 1 and "No space left" in result.stderr
    assert seen[-1][-3:] == ["rm", "-f", qm.input_file(data)]


def test_a_template_with_snapshots_is_refused_before_anything_runs(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    driver = driver_on(node)
    driver.create(9000, IMAGE, desired[9000])
    driver.snapshot(9000, "initial_clean_state")
    with pytest.raises(DriverError, match="has snapshots"):
        driver.mark_template(9000)


def test_a_linked_clone_of_a_vm_that_is_not_a_template_is_refused(
    node: FakeNode, desired: dict[int, GuestSettings]
) -> None:
    driver = driver_on(node)
    driver.create(9000, IMAGE, desired[9000])
    with pytest.raises(DriverError, match="linked clone needs a template"):
        driver.clone(9000, 1001, None, desired[1001])
    assert not node.qemu.exists(1001)


def test_the_vm_driver_keeps_the_driver_contract(tmp_path: Path) -> None:
    from phoenix.drivers.factory import make_driver
    from phoenix.drivers.split import SplitDriver
    from tests.driver_contract import contract_breaches

    assert contract_breaches(ProxmoxVmDriver) == []
    settings = type(
        "S",
        (),
        {
            "driver": "proxmox",
            "node": "pve",
            "ssh_host": None,
            "state_dir": str(tmp_path),
            "nodes": {},
        },
    )()
    split = make_driver(settings, vm_ids=frozenset({9000}))
    assert isinstance(split, SplitDriver) and isinstance(split.vms, ProxmoxVmDriver)

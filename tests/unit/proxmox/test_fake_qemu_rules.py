"""The fake node's VM rules (fakeqemu.py), each as qemu-server decides it, driven with the
`qm` builders: what Proxmox refuses is refused, what it allows is allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, NetSettings, VmConfig
from phoenix.drivers.proxmox import qm
from phoenix.runners.base import CommandResult
from tests.unit.proxmox.fakenode import FakeNode
from tests.unit.proxmox.fakeqemu import image

IMAGE = "/var/lib/vz/import/noble.img"
TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"


def settings(**changes: object) -> GuestSettings:
    base = GuestSettings(
        hostname="vm-a",
        memory_mb=1024,
        swap_mb=0,
        cores=2,
        disk_gb=8,
        storage="local-zfs",
        unprivileged=False,
        net=NetSettings("eth0", "vmbr0", "10.0.0.5/24", "10.0.0.1", "52:54:00:00:23:28"),
        vm=VmConfig("admin", ("ssh-ed25519 AAAA key",), ("10.0.0.1",)),
    )
    return GuestSettings(**{**base.__dict__, **changes})


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    fake = FakeNode(tmp_path, version="9.1.3")
    image(fake.root, IMAGE)
    return fake


def run(node: FakeNode, argv: list[str], stdin: str | None = None) -> CommandResult:
    return node.run(argv, input=stdin)


def ok(node: FakeNode, argv: list[str]) -> None:
    result = run(node, argv)
    assert result.ok, result.stderr


def made(node: FakeNode, vmid: int, template: bool = False) -> None:
    ok(node, qm.create(vmid, IMAGE, settings(), (9, 1)))
    ok(node, qm.config("pve", vmid, settings(), None, (9, 1)))
    if template:
        ok(node, qm.template(vmid, [], running=False))


def config(node: FakeNode, vmid: int) -> dict[str, object]:
    out = run(node, ["pvesh", "get", f"/nodes/pve/qemu/{vmid}/config", "--output-format", "json"])
    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_create_imports_the_image_and_config_adds_cloud_init(node: FakeNode) -> None:
    made(node, 9000)
    data = config(node, 9000)
    assert str(data["scsi0"]).startswith("local-zfs:vm-9000-disk-")
    assert data["ide2"] == "local-zfs:vm-9000-cloudinit,media=cdrom"
    assert data["ciupgrade"] == 0 and data["agent"] == "enabled=1"


def test_an_image_missing_on_the_node_fails_the_create_and_leaves_nothing(node: FakeNode) -> None:
    result = run(node, qm.create(9000, "/nowhere.img", settings(), (9, 1)))
    assert not result.ok and "does not exist" in result.stderr
    assert not node.qemu.exists(9000)


def test_a_vmid_is_unique_across_containers_and_vms(node: FakeNode) -> None:
    """pve-cluster check_vmid_unused: the message names the kind holding the id."""
    ok(node, ["pct", "create", "101", TEMPLATE, "--hostname", "ct", "--rootfs", "local-zfs:8"])
    made(node, 9000)
    assert "CT 101 already exists" in run(node, qm.create(101, IMAGE, settings(), (9, 1))).stderr
    pct = ["pct", "create", "9000", TEMPLATE, "--hostname", "ct", "--rootfs", "local-zfs:8"]
    assert "VM 9000 already exists" in run(node, pct).stderr
    assert "CT 101 already exists" in run(node, qm.clone(9000, 101, None, settings(), True)).stderr


def test_a_second_cloud_init_drive_is_refused(node: FakeNode) -> None:
    made(node, 9000)
    again = ["pvesh", "set", "/nodes/pve/qemu/9000/config", "--ide0", "local-zfs:cloudinit"]
    assert "cloud-init drive is already attached at 'ide2'" in run(node, again).stderr
    # qm.config knows it: with the drive there it does not ask for another
    current = qm.VmFacts({k: str(v) for k, v in config(node, 9000).items()})
    ok(node, qm.config("pve", 9000, settings(), current, (9, 1)))


def test_template_refuses_snapshots_running_and_a_template(node: FakeNode) -> None:
    made(node, 9000)
    ok(node, qm.snapshot(9000, "clean"))
    assert "contains snapshots" in run(node, ["qm", "template", "9000"]).stderr
    made(node, 9001)
    ok(node, qm.start(9001))
    assert "VM is running" in run(node, ["qm", "template", "9001"]).stderr
    ok(node, qm.shutdown(9001, 30))
    ok(node, ["qm", "template", "9001"])
    assert "template to a template" in run(node, ["qm", "template", "9001"]).stderr
    assert "if it's a template" in run(node, qm.snapshot(9001, "x")).stderr
    assert "if it's a template" in run(node, qm.start(9001)).stderr


def test_linked_clone_needs_a_template_and_no_storage(node: FakeNode) -> None:
    made(node, 9000)
    linked = ["qm", "clone", "9000", "1001", "--full", "0"]
    assert "Linked clone feature is not supported" in run(node, linked).stderr
    # Without --full a non-template makes a full clone ($full //= !is_template).
    ok(node, ["qm", "clone", "9000", "1001"])
    assert "vm-1001-disk" in str(config(node, 1001)["scsi0"])
    made(node, 9100, template=True)
    ok(node, qm.clone(9100, 1002, None, settings(), full=False))
    assert str(config(node, 9100)["scsi0"]).startswith("local-zfs:base-9100-disk-")
    assert "base-9100-disk-" in str(config(node, 1002)["scsi0"])
    assert "/vm-1002-disk-" in str(config(node, 1002)["scsi0"])
    storage = [*qm.clone(9100, 1003, None, settings(), full=False), "--storage", "local-zfs"]
    assert "not allowed for linked clones" in run(node, storage).stderr


def test_a_running_vm_can_be_cloned_and_an_unknown_snapshot_cannot(node: FakeNode) -> None:
    made(node, 9000)
    ok(node, qm.start(9000))
    ok(node, qm.clone(9000, 1001, None, settings(), full=True))  # drive-mirror
    assert "does not exist" in run(node, qm.clone(9000, 1002, "nope", settings(), True)).stderr


def test_a_clone_gets_new_macs_and_its_sources_firewall(node: FakeNode) -> None:
    made(node, 9000)
    node.path("/etc/pve/firewall/9000.fw").parent.mkdir(parents=True, exist_ok=True)
    node.path("/etc/pve/firewall/9000.fw").write_text("[OPTIONS]\nenable: 1\n")
    ok(node, qm.clone(9000, 1001, None, settings(), full=True))
    assert config(node, 1001)["net0"] != config(node, 9000)["net0"]
    assert node.path("/etc/pve/firewall/1001.fw").read_text() == "[OPTIONS]\nenable: 1\n"


def test_resize_right_after_a_clone_races_its_task(node: FakeNode) -> None:
    made(node, 9000, template=True)
    ok(node, qm.clone(9000, 1001, None, settings(), full=False))
    assert "locked (clone)" in run(node, qm.resize(1001, 32, 3) or []).stderr
    status = ["pvesh", "get", "/nodes/pve/qemu/1001/status/current", "--output-format", "json"]
    ok(node, status)  # the clone task has ended
    ok(node, qm.resize(1001, 32, 3) or [])
    assert "size=32G" in str(config(node, 1001)["scsi0"])


def test_resize_refuses_to_shrink_and_the_same_size_is_nothing(node: FakeNode) -> None:
    made(node, 9000)
    assert (
        "shrinking disks is not supported"
        in run(node, ["qm", "resize", "9000", "scsi0", "1G"]).stderr
    )
    before = config(node, 9000)
    ok(node, ["qm", "resize", "9000", "scsi0", "3G"])
    assert config(node, 9000) == before
    ok(node, ["qm", "resize", "9000", "scsi0", "+2G"])
    assert "size=5G" in str(config(node, 9000)["scsi0"])


def test_guest_exec_needs_the_agent_and_answers_json(node: FakeNode) -> None:
    made(node, 9000)
    argv = qm.guest_exec(9000, ["false"], None, 30)
    assert "VM 9000 is not running" in run(node, argv).stderr
    ok(node, ["pvesh", "set", "/nodes/pve/qemu/9000/config", "--delete", "agent"])
    ok(node, qm.start(9000))
    assert "No QEMU guest agent configured" in run(node, argv).stderr
    ok(node, qm.shutdown(9000, 30))
    ok(node, ["pvesh", "set", "/nodes/pve/qemu/9000/config", "--agent", "enabled=1"])
    ok(node, qm.start(9000))
    node.qemu.guest = lambda command: (1, "", "failed") if command[-1] == "false" else (0, "", "")
    answer = run(node, argv)
    assert answer.ok  # qm exits 0 although the command failed ...
    assert qm.exec_result(9000, answer).returncode == 1  # ... its JSON says so
    big = "x" * (qm.PASS_STDIN_MAX + 1)
    piped = qm.guest_exec(9000, ["cat"], None, 30, stdin_size=1)
    assert "exceeds maximum of 1 MiB" in run(node, piped, big).stderr


def test_destroy_refuses_a_running_or_protected_vm(node: FakeNode) -> None:
    made(node, 9000)
    ok(node, qm.start(9000))
    assert "is running - destroy failed" in run(node, qm.destroy(9000)).stderr
    ok(node, qm.stop(9000))
    ok(node, ["pvesh", "set", "/nodes/pve/qemu/9000/config", "--protection", "1"])
    assert "protection mode enabled" in run(node, qm.destroy(9000)).stderr
    ok(node, ["pvesh", "set", "/nodes/pve/qemu/9000/config", "--delete", "protection"])
    ok(node, qm.destroy(9000))
    assert not node.qemu.exists(9000)


def test_the_cluster_lists_vms_beside_containers(node: FakeNode) -> None:
    made(node, 9000)
    rows = json.loads(
        run(node, ["pvesh", "get", "/cluster/resources", "--output-format", "json"]).stdout
    )
    assert {"id": "qemu/9000", "vmid": 9000, "type": "qemu", "node": "pve"} in rows

"""Golden `qm` argv for every VM step (the builders in `phoenix.drivers.proxmox.qm`), the
refusals qemu-server would make, and `qm guest exec`'s JSON read as the command's result."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from phoenix.drivers.base import GuestSettings, NetSettings, VmConfig
from phoenix.drivers.proxmox import qm
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDe+/x= phoenix@lab"
IMAGE = "/var/lib/vz/import/noble-server-cloudimg-amd64.img"


def vm(**changes: object) -> GuestSettings:
    base = GuestSettings(
        hostname="Portainer",
        memory_mb=8192,
        swap_mb=0,
        cores=4,
        disk_gb=32,
        storage="quickOS-vm-disks",
        unprivileged=False,
        net=NetSettings("eth0", "vmbr0", "10.0.0.101/24", "10.0.0.1", "52:54:00:00:03:E9"),
        onboot=True,
        boot_order=4,
        boot_delay=2,
        firewall_enabled=True,
        vm=VmConfig("phoenix_user", (KEY,), ("10.0.0.13",)),
    )
    return GuestSettings(**{**base.__dict__, **changes})


def test_create_imports_the_image_on_create() -> None:
    assert qm.create(9000, IMAGE, vm(disk_gb=0), (9, 1)) == [
        "qm", "create", "9000", "--name", "Portainer", "--memory", "8192", "--cores", "4",
        "--scsihw", "virtio-scsi-single", "--ostype", "l26", "--agent", "enabled=1",
        "--serial0", "socket", "--vga", "serial0",
        "--scsi0", f"quickOS-vm-disks:0,import-from={IMAGE}", "--boot", "order=scsi0",
    ]  # fmt: skip


def test_before_import_from_the_disk_is_imported_then_attached() -> None:
    argv = qm.create(9000, IMAGE, vm(), (7, 1))
    assert "--scsi0" not in argv
    assert qm.import_disk(9000, IMAGE, "local-lvm") == [
        "qm", "importdisk", "9000", IMAGE, "local-lvm",
    ]  # fmt: skip
    assert qm.attach_disk(9000, "local-lvm:vm-9000-disk-0") == [
        "qm", "set", "9000", "--scsi0", "local-lvm:vm-9000-disk-0", "--boot", "order=scsi0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("image", "says"),
    [
        ("", "no template_image"),
        ("https://cloud-images.ubuntu.com/noble.img", "is a URL"),
    ],
)
def test_images_a_node_cannot_import_are_refused(image: str, says: str) -> None:
    with pytest.raises(DriverError, match=says):
        qm.create(9000, image, vm(), (9, 1))


def test_config_carries_cloud_init_and_the_vm_settings() -> None:
    argv = qm.config("pve", 1001, vm(), None, (8, 4))
    assert argv == [
        "pvesh", "set", "/nodes/pve/qemu/1001/config",
        "--name", "Portainer", "--memory", "8192", "--cores", "4", "--onboot", "1",
        "--agent", "enabled=1", "--startup", "order=4,up=2",
        "--net0", "virtio=52:54:00:00:03:E9,bridge=vmbr0,firewall=1",
        "--ipconfig0", "ip=10.0.0.101/24,gw=10.0.0.1",
        "--ide2", "quickOS-vm-disks:cloudinit",
        "--ciuser", "phoenix_user",
        "--sshkeys", urllib.parse.quote(KEY + "\n", safe=""),
        "--nameserver", "10.0.0.13",
        "--ciupgrade", "0",
    ]  # fmt: skip


def test_ssh_keys_are_encoded_as_perls_uri_escape_does() -> None:
    """`+`, `/`, `=`, space, `@` and the newline are escaped; `-`, `_`, `.`, `~` are not."""
    encoded = qm.encode_keys([KEY, "ssh-rsa AAA~x.y_z-1 me"])
    assert "%2B" in encoded and "%2F" in encoded and "%3D" in encoded and "%20" in encoded
    assert "%0A" in encoded and "%40" in encoded and "~x.y_z-1" in encoded
    assert qm.decode_keys(encoded) == (KEY, "ssh-rsa AAA~x.y_z-1 me")


def test_config_of_an_existing_vm_keeps_its_drive_and_deletes_what_was_dropped() -> None:
    current = qm.VmFacts(
        {
            "ide2": "quickOS-vm-disks:vm-1001-cloudinit,media=cdrom",
            "startup": "order=4,up=2",
            "net0": "virtio=52:54:00:00:03:E9,bridge=vmbr0,firewall=1,tag=30",
            "nameserver": "10.0.0.13",
        }
    )
    wanted = vm(boot_order=0, boot_delay=0, vm=VmConfig("phoenix_user"))
    argv = qm.config("pve", 1001, wanted, current, (9, 1))
    assert "--ide2" not in argv  # a second cloud-init drive is refused by Proxmox
    assert argv[argv.index("--net0") + 1].endswith(",tag=30")  # the VLAN tag is kept
    assert argv[-2:] == ["--delete", "startup,nameserver"]


def test_ciupgrade_only_where_the_node_knows_it() -> None:
    assert "--ciupgrade" not in qm.config("pve", 1001, vm(), None, (7, 4))


def test_dhcp_and_a_nic_without_a_mac() -> None:
    net = NetSettings("eth0", "vmbr0", "dhcp", None, None)
    argv = qm.config("pve", 9000, vm(net=net, firewall_enabled=False), None, (9, 1))
    assert argv[argv.index("--net0") + 1] == "model=virtio,bridge=vmbr0,firewall=0"
    assert argv[argv.index("--ipconfig0") + 1] == "ip=dhcp"


def test_clones() -> None:
    assert qm.clone(9000, 1001, None, vm(), full=False) == [
        "qm", "clone", "9000", "1001", "--name", "Portainer",
    ]  # fmt: skip
    assert qm.clone(1001, 1003, "clean", vm(), full=True) == [
        "qm", "clone", "1001", "1003", "--name", "Portainer", "--snapname", "clean",
        "--full", "1", "--storage", "quickOS-vm-disks",
    ]  # fmt: skip
    with pytest.raises(DriverError, match="linked clone needs a template"):
        qm.check_clone(1003, 1001, full=False, source_is_template=False)
    qm.check_clone(1003, 9000, full=False, source_is_template=True)


def test_resize_grows_only_and_a_template_keeps_its_size() -> None:
    assert qm.resize(1001, 32, 3) == ["qm", "resize", "1001", "scsi0", "32G"]
    assert qm.resize(1001, 32, 32) is None
    assert qm.resize(9000, 0, 3) is None
    with pytest.raises(DriverError, match="only grows"):
        qm.resize(1001, 16, 32)


def test_template_is_refused_with_snapshots_or_running() -> None:
    assert qm.template(9000, [], running=False) == ["qm", "template", "9000"]
    with pytest.raises(DriverError, match="has snapshots"):
        qm.template(9000, ["initial_clean_state"], running=False)
    with pytest.raises(DriverError, match="running"):
        qm.template(9000, [], running=True)


def test_power_snapshot_destroy() -> None:
    assert qm.start(1001) == ["qm", "start", "1001"]
    assert qm.shutdown(1001, 60) == [
        "qm",
        "shutdown",
        "1001",
        "--timeout",
        "60",
        "--forceStop",
        "1",
    ]
    assert qm.stop(1001) == ["qm", "stop", "1001"]
    assert qm.destroy(1001) == ["qm", "destroy", "1001"]
    assert qm.snapshot(1001, "pre") == ["qm", "snapshot", "1001", "pre"]
    with pytest.raises(DriverError, match="reserved"):
        qm.snapshot(1001, "current")


def test_hostpci() -> None:
    assert qm.hostpci(["0000:01:00", "0000:02:00"]) == [
        "--hostpci0", "0000:01:00", "--hostpci1", "0000:02:00",
    ]  # fmt: skip


def test_guest_exec_argv_and_the_stdin_limit() -> None:
    assert qm.guest_exec(1001, ["sh", "-c", "true"], {"A": "1"}, 90, stdin_size=10) == [
        "qm", "guest", "exec", "1001", "--timeout", "90", "--pass-stdin", "1", "--",
        "env", "HOME=/root", "LANG=C.UTF-8", "A=1", "sh", "-c", "true",
    ]  # fmt: skip
    assert "--pass-stdin" not in qm.guest_exec(1001, ["true"], None, None)
    with pytest.raises(DriverError, match="at most 1048576"):
        qm.guest_exec(1001, ["sh"], None, 60, stdin_size=qm.PASS_STDIN_MAX + 1)


def test_guest_exec_result_is_the_json_exitcode_not_qms() -> None:
    """qm exits 0 when the command in the guest failed: the JSON says so."""
    said = json.dumps({"exitcode": 3, "exited": 1, "out-data": "o", "err-data": "e"})
    result = qm.exec_result(1001, CommandResult(0, said, ""))
    assert (result.returncode, result.stdout, result.stderr) == (3, "o", "e")
    running = json.dumps({"exited": 0, "pid": 77})
    assert qm.exec_result(1001, CommandResult(0, running, "")).returncode == 124
    failed = CommandResult(255, "", "No QEMU guest agent configured")
    assert qm.exec_result(1001, failed) is failed
    with pytest.raises(DriverError, match="no JSON"):
        qm.exec_result(1001, CommandResult(0, "garbage", ""))

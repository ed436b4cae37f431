"""The QEMU driver's pure builders: the cloud-init seed, the base image's recipe and disk
layout (checked by sfdisk itself), QEMU's command line, and the KVM/TCG choice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.qemu import accel, baseimage
from phoenix.drivers.qemu.cloudinit import SeedSpec, seed_digest, seed_files, seed_image_argv
from phoenix.drivers.qemu.machine import Accel, Machine, VmPaths, qemu_argv, tap_name

STATIC = SeedSpec(
    hostname="vm-a",
    mac="52:54:00:00:03:E9",
    username="phoenix_user",
    ssh_keys=("ssh-ed25519 AAAAC3Nza test@host",),
    address="10.213.60.20/24",
    gateway="10.213.60.1",
    nameservers=("10.213.60.1",),
)


def _parsed(spec: SeedSpec) -> dict[str, Any]:
    files = seed_files(spec)
    user = files["user-data"].decode()
    assert user.startswith("#cloud-config\n")
    return {
        "meta": json.loads(files["meta-data"]),
        "user": json.loads(user.removeprefix("#cloud-config\n")),
        "net": json.loads(files["network-config"]),
    }


def test_static_seed_sets_name_login_and_address_matched_by_mac() -> None:
    seed = _parsed(STATIC)
    assert seed["meta"]["local-hostname"] == "vm-a"
    assert seed["user"]["hostname"] == "vm-a"
    assert seed["user"]["package_upgrade"] is False
    assert seed["user"]["write_files"] == [
        {"path": "/etc/resolv.conf", "content": "nameserver 10.213.60.1\n", "permissions": "0644"}
    ]
    (user,) = seed["user"]["users"]
    assert user["name"] == "phoenix_user"
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3Nza test@host"]
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and user["lock_passwd"] is True
    nic = seed["net"]["ethernets"]["eth0"]
    assert seed["net"]["version"] == 2
    assert nic == {
        "match": {"macaddress": "52:54:00:00:03:e9"},
        "set-name": "eth0",
        "dhcp4": False,
        "addresses": ["10.213.60.20/24"],
        "gateway4": "10.213.60.1",  # ifupdown's `gateway`: a route would need net-tools
        "nameservers": {"addresses": ["10.213.60.1"]},
    }


def test_dhcp_seed_asks_for_an_address() -> None:
    seed = _parsed(SeedSpec(hostname="t", mac="52:54:00:00:00:01"))
    assert seed["net"]["ethernets"]["eth0"]["dhcp4"] is True
    assert "users" not in seed["user"]
    keyless = _parsed(SeedSpec(hostname="t", mac="52:54:00:00:00:01", username="u"))
    assert "ssh_authorized_keys" not in keyless["user"]["users"][0]  # schema: none or >= 1


def test_instance_id_follows_the_content() -> None:
    """Same seed, same instance id (cloud-init does not run again); a change, a new one."""
    same = seed_files(STATIC)
    assert same == seed_files(STATIC)
    moved = seed_files(SeedSpec(**{**STATIC.__dict__, "address": "10.213.60.21/24"}))
    ids = [json.loads(f["meta-data"])["instance-id"] for f in (same, moved)]
    assert ids[0] != ids[1] and all(i.startswith("iid-") for i in ids)
    assert seed_digest(same) != seed_digest(moved)


def test_hostile_values_stay_inside_their_strings() -> None:
    spec = SeedSpec(hostname="vm", mac="52:54:00:00:00:01", username="u\nruncmd: [reboot]")
    user = json.loads(seed_files(spec)["user-data"].decode().removeprefix("#cloud-config\n"))
    assert "runcmd" not in user and user["users"][0]["name"] == "u\nruncmd: [reboot]"


def test_seed_image_is_a_fat_image_labelled_cidata(tmp_path: Path) -> None:
    argv = seed_image_argv(tmp_path / "seed.img", [tmp_path / "meta-data"])
    assert argv[0][:4] == ["mkfs.vfat", "-n", "CIDATA", "-C"]
    assert argv[1] == [
        "mcopy",
        "-o",
        "-i",
        str(tmp_path / "seed.img"),
        str(tmp_path / "meta-data"),
        "::",
    ]


def test_partition_table_as_sfdisk_reads_it(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    with disk.open("wb") as f:
        f.truncate(baseimage.disk_bytes())
    subprocess.run(
        ["sfdisk", "--quiet", str(disk)], input=baseimage.partition_table(), text=True, check=True
    )
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True
        ).stdout
    )
    esp, root = table["partitiontable"]["partitions"]
    assert table["partitiontable"]["label"] == "gpt"
    assert esp["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" and esp["start"] == 2048
    assert esp["size"] * 512 == baseimage.ESP_MIB * 1024 * 1024
    assert root["start"] == esp["start"] + esp["size"]
    assert root["size"] * 512 == baseimage.ROOT_MIB * 1024 * 1024
    # The dd steps place the partitions exactly where the table says.
    steps = {s.what: s.argv for s in baseimage.image_steps(tmp_path, tmp_path / "out.qcow2")}
    assert "seek=1" in steps["place the EFI partition"]
    assert f"seek={root['start'] * 512 // (1024 * 1024)}" in steps["place the root partition"]


def test_image_name_follows_its_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = baseimage.image_path(tmp_path, "bookworm")
    assert first.name.startswith("debian-bookworm-amd64-") and first.suffix == ".qcow2"
    assert baseimage.image_path(tmp_path, "bookworm") == first
    monkeypatch.setattr(baseimage, "PACKAGES", (*baseimage.PACKAGES, "htop"))
    assert baseimage.image_path(tmp_path, "bookworm") != first
    assert baseimage.image_path(tmp_path, "trixie") != first


def test_root_steps_name_every_package_debootstrap_cannot_resolve(tmp_path: Path) -> None:
    (step, clean) = baseimage.root_steps(tmp_path / "r", "bookworm", "http://deb.debian.org/debian")
    include = next(a for a in step.argv if a.startswith("--include="))
    for needed in (
        "python3-cffi-backend",
        "dbus",
        "locales",
        "cloud-guest-utils",
        "qemu-guest-agent",
    ):
        assert needed in include.split("=", 1)[1].split(",")
    assert step.argv[-3:] == ("bookworm", str(tmp_path / "r"), "http://deb.debian.org/debian")
    assert clean.argv[:2] == ("chroot", str(tmp_path / "r"))


def test_write_root_files_leaves_no_identity(tmp_path: Path) -> None:
    (tmp_path / "etc/ssh").mkdir(parents=True)
    (tmp_path / "etc/ssh/ssh_host_ed25519_key").write_text("secret")
    (tmp_path / "var/lib/dbus").mkdir(parents=True)
    (tmp_path / "var/lib/dbus/machine-id").symlink_to("/etc/machine-id")
    baseimage.write_root_files(tmp_path)
    assert (tmp_path / "etc/machine-id").read_text() == ""
    assert not list((tmp_path / "etc/ssh").iterdir())
    assert not (tmp_path / "var/lib/dbus/machine-id").is_symlink()
    assert "LABEL=phoenix-root / ext4" in (tmp_path / "etc/fstab").read_text()
    assert "NoCloud" in (tmp_path / "etc/cloud/cloud.cfg.d/90_phoenix.cfg").read_text()


def _machine(tmp_path: Path, kind: Accel, tap: str | None) -> list[str]:
    return qemu_argv(Machine(1001, 2, 1024, "52:54:00:00:03:E9", VmPaths(tmp_path), tap, kind))


def test_qemu_argv(tmp_path: Path) -> None:
    argv = _machine(tmp_path, "tcg", tap_name(1001))
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-daemonize" in argv and argv[argv.index("-pidfile") + 1] == str(tmp_path / "qemu.pid")
    assert (
        argv[argv.index("-accel") + 1] == "tcg,thread=multi"
        and argv[argv.index("-cpu") + 1] == "max"
    )
    assert argv[argv.index("-smp") + 1] == "2" and argv[argv.index("-m") + 1] == "1024"
    assert "vm1001,process=phoenix-vm-1001" in argv
    assert f"socket,id=qmp,path={tmp_path / 'qmp.sock'},server=on,wait=off" in argv
    assert "virtserialport,chardev=qga,name=org.qemu.guest_agent.0" in argv
    assert "tap,id=net0,ifname=phxvm1001,script=no,downscript=no" in argv
    assert "virtio-net-pci,netdev=net0,mac=52:54:00:00:03:e9" in argv
    assert f"file={tmp_path / 'seed.img'},if=virtio,format=raw,readonly=on" in joined
    kvm = _machine(tmp_path, "kvm", None)
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"
    assert "-netdev" not in kvm
    assert len(tap_name(999_999_999)) <= 15


def test_accel_probes_once_per_boot_and_warns_every_run_without_kvm(tmp_path: Path) -> None:
    cache = tmp_path / "accel"
    probes: list[int] = []
    warnings: list[str] = []

    def slow() -> tuple[bool, str]:
        probes.append(1)
        return False, "a probe guest did not finish under KVM in 5s"

    assert accel.choose_accel(warnings.append, slow, cache) == "tcg"
    assert accel.choose_accel(warnings.append, slow, cache) == "tcg"
    assert len(probes) == 1 and len(warnings) == 2
    assert "without KVM" in warnings[0] and "did not finish" in warnings[1]
    cache.write_text("another-boot kvm fine\n")
    assert accel.choose_accel(warnings.append, lambda: (True, "ran"), cache) == "kvm"
    assert len(warnings) == 2  # KVM: nothing to say
    assert accel.choose_accel(warnings.append, slow, cache) == "kvm"  # cached for this boot


def test_probe_sector_is_a_boot_sector() -> None:
    assert len(accel.PROBE_SECTOR) == 512 and accel.PROBE_SECTOR.endswith(b"\x55\xaa")

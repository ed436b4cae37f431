"""GPU passthrough and mount points on both drivers, derived from a real NVIDIA H200 host's
layout (tests/fixtures/nvidia-h200) and checked on the LXC config round trip and a fake
Proxmox node."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phoenix.drivers import gpu
from phoenix.drivers.base import GuestSettings, MountSettings, NetSettings
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import DriverError
from tests.unit.proxmox.fakenode import FakeNode

H200 = Path(__file__).parents[2] / "fixtures" / "nvidia-h200"


def h200_nodes() -> dict[str, tuple[int, int]]:
    """`stat -c '%n %t %T'` of the host's nodes: path -> (major, minor), hex in the file."""
    out = {}
    for line in (H200 / "stat-dev-nvidia.txt").read_text().splitlines():
        path, major, minor = line.split()
        out[path] = (int(major, 16), int(minor, 16))
    return out


def base(**changes: object) -> GuestSettings:
    s = GuestSettings(
        hostname="gpu-1", memory_mb=1024, swap_mb=0, cores=1, disk_gb=8, storage="local-zfs",
        unprivileged=True, net=NetSettings("eth0", "vmbr0", "10.0.3.5/24", "10.0.3.1", "02:00:00:00:00:05"),
    )  # fmt: skip
    return dataclasses.replace(s, **changes)  # type: ignore[arg-type]


def test_majors_come_from_the_hosts_proc_devices() -> None:
    majors = gpu.char_majors((H200 / "proc-devices.txt").read_text())
    assert majors["nvidia"] == 195 and majors["nvidia-uvm"] == 238  # not the original's 243
    assert "loop" not in majors  # a block device


def test_the_devices_of_gpu_0_are_the_h200_hosts_nodes() -> None:
    majors = gpu.char_majors((H200 / "proc-devices.txt").read_text())
    derived = {d.path: (d.major, d.minor) for d in gpu.devices([0], majors)}
    assert derived == h200_nodes()


def test_a_host_without_nvidia_uvm_is_refused_with_the_fix() -> None:
    text = (H200 / "proc-devices.txt").read_text().replace("238 nvidia-uvm\n", "")
    with pytest.raises(DriverError, match="nvidia-modprobe -u -c=0"):
        gpu.devices([0], gpu.char_majors(text))


@pytest.mark.parametrize(("version", "key"), [(1, "lxc.cgroup"), (2, "lxc.cgroup2")])
def test_lxc_config_admits_exactly_the_assigned_nodes(version: int, key: str) -> None:
    majors = gpu.char_majors((H200 / "proc-devices.txt").read_text())
    ctx = lxcconf.RenderContext(
        rootfs=Path("/var/lib/lxc/300/rootfs"),
        cgroup=CgroupHost(version, memsw=False, cpus=4),  # type: ignore[arg-type]
        apparmor=False,
        gpu_majors=majors,
    )
    wanted = base(gpus=(1, 3))
    parsed = lxcconf.parse(lxcconf.render(300, wanted, ctx))
    rules = parsed.all(f"{key}.devices.allow")
    assert parsed.all(f"{key}.devices.deny") == ["a"]  # everything else refused
    assert rules == [
        *lxcconf.BASE_DEVICE_RULES,
        "c 195:1 rwm", "c 195:3 rwm", "c 195:255 rwm", "c 238:0 rwm", "c 238:1 rwm"
    ]  # fmt: skip
    entries = [e for e in parsed.all("lxc.mount.entry") if e.startswith("/dev/")]
    assert [e.split()[1] for e in entries] == [
        "dev/nvidia1", "dev/nvidia3", "dev/nvidiactl", "dev/nvidia-uvm", "dev/nvidia-uvm-tools"
    ]  # fmt: skip
    assert all("create=file" in e and "optional" not in e for e in entries)
    seen = lxcconf.to_settings(parsed, lxcconf.GuestMeta.of(wanted))
    assert seen.diff(wanted) == {}


def test_lxc_mounts_round_trip_and_escape_spaces() -> None:
    ctx = lxcconf.RenderContext(
        rootfs=Path("/l/300/rootfs"), cgroup=CgroupHost(1, False, 2), apparmor=False,
        volume_root=Path("/l/phoenix-volumes"),
    )  # fmt: skip
    mounts = (
        MountSettings("/data", pool="tank", size_gb=5, name="d"),
        MountSettings("/srv/my models", host_path="/srv/my models", read_only=True),
    )
    wanted = base(mounts=mounts)
    parsed = lxcconf.parse(lxcconf.render(300, wanted, ctx))
    assert parsed.all("lxc.mount.entry") == [
        "/l/phoenix-volumes/300/data data none bind,create=dir 0 0",
        "/srv/my\\040models srv/my\\040models none bind,create=dir,ro 0 0",
    ]
    assert lxcconf.to_settings(parsed, lxcconf.GuestMeta.of(wanted)).diff(wanted) == {}


def _node(tmp_path: Path, version: str = "9.1.2", uvm: bool = True) -> FakeNode:
    node = FakeNode(tmp_path, version=version)
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm-tools") + (
        ("nvidia-uvm",) if uvm else ()
    ):
        node.add_device(f"/dev/{name}")
    node.put_conf(
        300,
        "arch: amd64\nhostname: gpu-1\nrootfs: local-zfs:subvol-300-disk-0,size=8G\nunprivileged: 1\n",
    )
    return node


def converge(driver: ProxmoxDriver, wanted: GuestSettings) -> frozenset[str]:
    seen = driver.observe(300).settings
    assert seen is not None
    changed = frozenset(wanted.diff(seen))
    if changed:
        driver.configure(300, wanted, changed)
    return changed


def test_proxmox_passes_gpus_as_dev_entries_and_a_clone_loses_the_extra_one(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path)
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    assert converge(driver, base(gpus=(0, 1))) >= {"gpus"}
    conf = node.conf_text(300)
    assert "dev0: /dev/nvidia0,mode=0666" in conf and "dev2: /dev/nvidiactl,mode=0666" in conf
    assert converge(driver, base(gpus=(0, 1))) == frozenset()
    # One GPU fewer (a 1-GPU clone of a 2-GPU template): its device entry goes.
    converge(driver, base(gpus=(1,)))
    conf = node.conf_text(300)
    assert "/dev/nvidia0," not in conf and "/dev/nvidia1,mode=0666" in conf
    assert converge(driver, base(gpus=(1,))) == frozenset()


def test_proxmox_refuses_a_node_without_nvidia_uvm_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    driver = ProxmoxDriver(_node(tmp_path, uvm=False), "localhost", sleep=lambda _: None)
    with pytest.raises(DriverError, match=r"no /dev/nvidia-uvm.*nvidia-modprobe -u -c=0"):
        converge(driver, base(gpus=(0,)))


def test_proxmox_mounts_are_matched_by_target_and_dropping_keeps_the_data(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path)
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    bind = MountSettings("/models", host_path="/srv/models", read_only=True, owner_uid=1000)
    volume = MountSettings("/data", pool="local-zfs", size_gb=10, name="data")
    assert "mounts" in converge(driver, base(mounts=(volume, bind)))
    conf = node.conf_text(300)
    assert "mp0: local-zfs:subvol-300-disk-1,mp=/data,size=10G" in conf
    assert "mp1: /srv/models,mp=/models,ro=1" in conf
    assert node.owners["/srv/models"] == "101000:101000"  # shifted through the id map
    before = len(node.mutations())
    assert converge(driver, base(mounts=(volume, bind))) == frozenset()  # no second volume
    assert node.mutations()[before:] == []
    # Growing the volume resizes it; dropping it leaves the volume as unused (data kept).
    converge(driver, base(mounts=(dataclasses.replace(volume, size_gb=12), bind)))
    assert ("pct", "resize", "300", "mp0", "12G") in node.calls
    converge(driver, base(mounts=(bind,)))
    conf = node.conf_text(300)
    assert "unused0: local-zfs:subvol-300-disk-1" in conf and "mp0:" not in conf
    assert not any(c[:2] == ("pct", "destroy") or "--destroy" in " ".join(c) for c in node.calls)


def test_proxmox_leaves_a_mount_it_did_not_write(tmp_path: Path) -> None:
    node = _node(tmp_path)
    node.put_conf(300, node.conf_text(300) + "mp7: /srv/admin,mp=/admin\n")
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    bind = MountSettings("/models", host_path="/srv/models")
    converge(driver, base(mounts=(bind,)))
    converge(driver, base())
    conf = node.conf_text(300)
    assert "mp7: /srv/admin,mp=/admin" in conf and "/srv/models" not in conf


def test_before_pve_8_1_gpus_are_raw_lines_with_the_nodes_majors(tmp_path: Path) -> None:
    node = _node(tmp_path, version="8.0.4")
    node.path("/proc").mkdir()
    node.path("/proc/devices").write_text((H200 / "proc-devices.txt").read_text())
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    assert "gpus" in converge(driver, base(gpus=(0,)))
    lines = node.conf_text(300).splitlines()
    assert [ln for ln in lines if ln.startswith("lxc.")] == [
        "lxc.cgroup2.devices.allow: c 195:0 rwm",
        "lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file",
        "lxc.cgroup2.devices.allow: c 195:255 rwm",
        "lxc.mount.entry: /dev/nvidiactl dev/nvidiactl none bind,optional,create=file",
        "lxc.cgroup2.devices.allow: c 238:0 rwm",
        "lxc.mount.entry: /dev/nvidia-uvm dev/nvidia-uvm none bind,optional,create=file",
        "lxc.cgroup2.devices.allow: c 238:1 rwm",
        "lxc.mount.entry: /dev/nvidia-uvm-tools dev/nvidia-uvm-tools none bind,optional,create=file",
    ]
    assert not any(ln.startswith("dev0") for ln in lines)
    assert converge(driver, base(gpus=(0,))) == frozenset()
    # The other GPU: Phoenix's own lines for GPU 0 go, GPU 1's come; then none at all.
    assert converge(driver, base(gpus=(1,))) == {"gpus"}
    text = node.conf_text(300)
    assert "c 195:1 rwm" in text and "/dev/nvidia0 " not in text and "c 195:0 " not in text
    assert converge(driver, base(gpus=(1,))) == frozenset()
    assert converge(driver, base()) == {"gpus"}
    assert "nvidia" not in node.conf_text(300)

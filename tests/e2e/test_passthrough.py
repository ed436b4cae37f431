"""Mount points, volumes and GPU passthrough on real LXC guests.

Mounts: a guest writes into a bind mount and a volume, the host reads the files with the
shifted owner; a read-only mount refuses writes; a re-converge changes nothing; dropping
the mounts keeps the data. GPUs (no GPU here): device nodes are made with mknod using the
majors of a real H200 host's /proc/devices (tests/fixtures/nvidia-h200), and the guest
sees exactly its assigned nodes, which the device cgroup admits, and nothing else.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, MountSettings
from phoenix.drivers.lxc import LxcDriver, idmap
from phoenix.drivers.lxc.config import BASE_DEVICE_RULES
from phoenix.drivers.lxc.hostprep import HostSetup
from phoenix.inventory.idcompose import compose
from phoenix.inventory.models import IdMap
from phoenix.runners.local import LocalRunner
from tests.e2e.conftest import LxcHost, open_for_guests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

H200 = Path(__file__).parents[1] / "fixtures" / "nvidia-h200"


def run(driver: LxcDriver, ctid: int, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    res = driver.exec(ctid, ["sh", "-c", script, "sh", *args], timeout=60)
    return subprocess.CompletedProcess([script], res.returncode, res.stdout, res.stderr)


def ok(driver: LxcDriver, ctid: int, script: str, *args: str) -> str:
    res = run(driver, ctid, script, *args)
    assert res.returncode == 0, f"{script!r}: {res.stdout}{res.stderr}"
    return res.stdout.strip()


def converge(driver: LxcDriver, ctid: int, wanted: GuestSettings) -> frozenset[str]:
    seen = driver.observe(ctid).settings
    assert seen is not None
    changed = frozenset(wanted.diff(seen))
    if changed:
        driver.configure(ctid, wanted, changed)
    return changed


def owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


def test_mounts_write_read_only_reconverge_and_removal(
    lxc_host: LxcHost, lxc_driver: LxcDriver, tmp_path: Path
) -> None:
    ctid = 7741
    share = open_for_guests(tmp_path / "share")  # missing: Phoenix creates it (uid 1000)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "hello").write_text("from the host\n")
    mounts = (
        MountSettings("/data", pool="local", size_gb=1, name="data"),
        MountSettings("/ro", host_path=str(ro), read_only=True),
        MountSettings("/share", host_path=str(share), owner_uid=1000, owner_gid=1000),
    )
    wanted = lxc_host.settings("phxt-mounts", 41, mounts=mounts)
    lxc_driver.create(ctid, lxc_host.template, wanted)
    lxc_driver.start(ctid)

    assert owner(share) == (101_000, 101_000)
    ok(
        lxc_driver,
        ctid,
        "setpriv --reuid 1000 --regid 1000 --clear-groups sh -c 'echo u > /share/by-1000'",
    )
    ok(lxc_driver, ctid, "echo r > /share/by-root && echo v > /data/on-volume")
    assert (share / "by-1000").read_text() == "u\n"
    assert owner(share / "by-1000") == (101_000, 101_000)
    assert owner(share / "by-root") == (100_000, 100_000)
    volume = lxc_driver.defs.volume_root / str(ctid) / "data"
    assert (volume / "on-volume").read_text() == "v\n"
    assert owner(volume / "on-volume") == (100_000, 100_000)

    assert ok(lxc_driver, ctid, "cat /ro/hello") == "from the host"
    denied = run(lxc_driver, ctid, "echo x > /ro/new")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    denied = run(lxc_driver, ctid, "mount -o remount,rw /ro")
    assert denied.returncode != 0
    assert not (ro / "new").exists()

    # A re-converge finds nothing to do and the data is where it was.
    driver = lxc_host.driver()
    assert converge(driver, ctid, wanted) == frozenset()
    assert driver.log.mutations() == []
    assert ok(driver, ctid, "cat /share/by-root /data/on-volume") == "r\nv"

    # Dropping the mounts restarts the guest without them; their data stays on the host.
    assert converge(driver, ctid, dataclasses.replace(wanted, mounts=())) == {"mounts"}
    assert ok(driver, ctid, "ls -A /share /data | tr '\\n' ' '").split() == ["/data:", "/share:"]
    assert (share / "by-1000").read_text() == "u\n"
    assert (volume / "on-volume").read_text() == "v\n"
    assert converge(driver, ctid, dataclasses.replace(wanted, mounts=())) == frozenset()


def _mknod(dev: Path, name: str, major: int, minor: int) -> None:
    os.mknod(dev / name, 0o666 | 0o020000, os.makedev(major, minor))
    (dev / name).chmod(0o666)


def test_gpu_nodes_are_exactly_the_assigned_ones(lxc_host: LxcHost, tmp_path: Path) -> None:
    ctid = 7742
    dev = tmp_path / "dev"
    dev.mkdir()
    for name, major, minor in (
        ("nvidia0", 195, 0), ("nvidia1", 195, 1), ("nvidiactl", 195, 255),
        ("nvidia-uvm", 238, 0), ("nvidia-uvm-tools", 238, 1),
    ):  # fmt: skip
        _mknod(dev, name, major, minor)
    idmap.make_traversable(dev, Path("/"))  # as /dev is: the guest's root must reach it
    proc_devices = tmp_path / "proc-devices"
    shutil.copy(H200 / "proc-devices.txt", proc_devices)
    driver = LxcDriver(
        lxc_host.lxc_path, lxc_host.template_cache, state_dir=lxc_host.state_dir,
        fw_table=lxc_host.fw_table, proc_devices=proc_devices, dev_dir=dev,
    )  # fmt: skip
    # GPU 0's node is bind-mounted too, by a raw option, but not assigned: the device cgroup
    # must refuse it (the "nothing else").
    unassigned = ("lxc.mount.entry", f"{dev}/nvidia0 dev/nvidia0 none bind,create=file 0 0")
    wanted = lxc_host.settings("phxt-gpu", 42, gpus=(1,), raw_lxc=(unassigned,))
    try:
        driver.create(ctid, lxc_host.template, wanted)
        driver.start(ctid)
        listing = ok(driver, ctid, "stat -c '%n %t:%T' /dev/nvidia*")
        assert sorted(listing.splitlines()) == [
            "/dev/nvidia-uvm ee:0", "/dev/nvidia-uvm-tools ee:1", "/dev/nvidia0 c3:0",
            "/dev/nvidia1 c3:1", "/dev/nvidiactl c3:ff",
        ]  # fmt: skip
        # Present but not assigned: refused by the device cgroup, not by a missing driver.
        refused = run(driver, ctid, "head -c1 /dev/nvidia0")
        assert "Operation not permitted" in refused.stderr, refused.stderr
        # The base devices still work, and the guest's systemd came up.
        assert ok(driver, ctid, "echo x > /dev/null && head -c1 /dev/urandom | wc -c") == "1"
        # Admitted by the device cgroup: opening reaches the (absent) driver, ENXIO/ENODEV,
        # not the cgroup's EPERM.
        opened = run(driver, ctid, "head -c1 /dev/nvidia1")
        assert "Operation not permitted" not in opened.stderr, opened.stderr
        assert "No such device" in opened.stderr, opened.stderr
        # The config denies all, then admits LXC's base devices and exactly these nodes
        # (LXC's userns.conf would leave an unprivileged guest's device cgroup open); the
        # kernel's own device list for the guest says the same.
        assert _configured_rules(lxc_host, driver, ctid) == [
            *BASE_DEVICE_RULES, "c 195:1 rwm", "c 195:255 rwm", "c 238:0 rwm", "c 238:1 rwm"
        ]  # fmt: skip
        if driver.cgroup.version == 1:
            listed = ok(driver, ctid, "cat /sys/fs/cgroup/devices/devices.list").splitlines()
            assert listed == [*BASE_DEVICE_RULES, "c 195:1 rwm", "c 195:255 rwm",
                              "c 238:0 rwm", "c 238:1 rwm"]  # fmt: skip
        made = run(driver, ctid, "mknod /dev/nvidia2 c 195 2")
        assert made.returncode != 0 and "Operation not permitted" in made.stderr
        assert converge(driver, ctid, wanted) == frozenset()
    finally:
        driver.destroy(ctid)


def _configured_rules(host: LxcHost, driver: LxcDriver, ctid: int) -> list[str]:
    key = f"{driver.cgroup.prefix}.devices.allow"
    text = (host.lxc_path / str(ctid) / "config").read_text()
    return [
        line.split("=", 1)[1].strip()
        for line in text.splitlines()
        if line.split("=", 1)[0].strip() == key
    ]


# Guest 0..999 -> host 100000..100999, guest 1000..65534 -> host 101001..165535: inside the
# default delegation (root:100000:65536), but every id from 1000 up lands one higher than the
# default map would put it, so the owners below prove the guest runs with this map.
CUSTOM_MAP = (
    ("lxc.idmap", "u 0 100000 1000"),
    ("lxc.idmap", "g 0 100000 1000"),
    ("lxc.idmap", "u 1000 101001 64535"),
    ("lxc.idmap", "g 1000 101001 64535"),
)


def test_a_custom_id_map_is_the_guests_map(
    lxc_host: LxcHost, lxc_driver: LxcDriver, tmp_path: Path
) -> None:
    ctid = 7743
    share = open_for_guests(tmp_path / "share")
    mounts = (MountSettings("/share", host_path=str(share), owner_uid=1000, owner_gid=1000),)
    wanted = lxc_host.settings("phxt-idmap", 43, raw_lxc=CUSTOM_MAP, mounts=mounts)
    lxc_driver.create(ctid, lxc_host.template, wanted)
    lxc_driver.start(ctid)

    assert ok(lxc_driver, ctid, "cat /proc/self/uid_map").split() == [
        "0", "100000", "1000", "1000", "101001", "64535",
    ]  # fmt: skip
    assert owner(share) == (101_001, 101_001)  # uid 1000 through this map, not 101000
    ok(
        lxc_driver,
        ctid,
        "setpriv --reuid 1000 --regid 1000 --clear-groups sh -c 'echo u > /share/by-1000'",
    )
    ok(lxc_driver, ctid, "echo r > /share/by-root && echo x > /root/in-rootfs")
    assert owner(share / "by-1000") == (101_001, 101_001)
    assert owner(share / "by-root") == (100_000, 100_000)
    rootfs = lxc_host.lxc_path / str(ctid) / "rootfs"
    assert owner(rootfs / "root" / "in-rootfs") == (100_000, 100_000)
    # The rootfs was unpacked through the map: the guest sees root-owned system files.
    assert ok(lxc_driver, ctid, "stat -c '%u:%g' /etc/passwd /usr/bin") == "0:0\n0:0"
    assert converge(lxc_host.driver(), ctid, wanted) == frozenset()


def test_a_clone_with_its_own_map_is_reowned_from_its_sources(
    lxc_host: LxcHost, lxc_driver: LxcDriver
) -> None:
    source, clone = 7744, 7745
    lxc_driver.create(source, lxc_host.template, lxc_host.settings("phxt-idsrc", 44))
    lxc_driver.start(source)
    ok(
        lxc_driver,
        source,
        "useradd -u 1000 -m alice && echo a > /home/alice/note && chown alice: /home/alice/note",
    )
    lxc_driver.stop(source)
    home = lxc_host.lxc_path / str(source) / "rootfs" / "home" / "alice"
    assert owner(home / "note") == (101_000, 101_000)  # the default map
    lxc_driver.snapshot(source, "base")
    wanted = lxc_host.settings("phxt-idclone", 45, raw_lxc=CUSTOM_MAP)
    lxc_driver.clone(source, clone, "base", wanted)  # another map: a full copy, re-owned
    lxc_driver.start(clone)
    copied = lxc_host.lxc_path / str(clone) / "rootfs" / "home" / "alice" / "note"
    assert owner(copied) == (101_001, 101_001)
    assert ok(lxc_driver, clone, "stat -c '%U:%G %u' /home/alice/note /etc/passwd") == (
        "alice:alice 1000\nroot:root 0"
    )


def test_the_original_tools_gid_pass_through_keeps_a_shared_files_group(
    lxc_host: LxcHost, lxc_driver: LxcDriver, tmp_path: Path
) -> None:
    """The original tool's `{"type": "gid", "container_id": 33, "host_id": 33, "size": 1}`
    (nginx's log mount): host gid 33 is www-data's gid 33 inside, and every other gid keeps
    the default map (host 100034 is gid 34). `phoenix setup` gives root gid 33 first."""
    ctid = 7746
    entry = IdMap.model_validate({"type": "gid", "container_id": 33, "host_id": 33, "size": 1})
    ranges = compose([entry])
    raw = tuple(("lxc.idmap", r.line) for r in ranges)
    # Its own ledger: the lines it adds go with this test, whatever other labs rely on.
    setup = HostSetup(
        LocalRunner(),
        tmp_path / "state",
        subid_ledger=tmp_path / "subids.json",
        subid_ranges=tuple((r.kind, r.host, r.count) for r in ranges),
    )
    had_line = "root:33:1" in Path("/etc/subgid").read_text().splitlines()
    try:
        done = setup.apply([])
        assert done == ([] if had_line else ["add root:33:1 to /etc/subgid"])
        assert setup.plan([]) == []  # a second setup changes nothing
        logs = open_for_guests(tmp_path / "logs")
        logs.mkdir()
        (logs / "by-host-33").write_text("a\n")
        os.chown(logs / "by-host-33", 0, 33)
        (logs / "by-host-100034").write_text("b\n")
        os.chown(logs / "by-host-100034", 0, 100_034)
        mounts = (MountSettings("/var/log/nginx", host_path=str(logs), owner_gid=33),)
        wanted = lxc_host.settings("phxt-gid33", 46, raw_lxc=raw, mounts=mounts)
        lxc_driver.create(ctid, lxc_host.template, wanted)
        lxc_driver.start(ctid)

        assert ok(lxc_driver, ctid, "cat /proc/self/gid_map").split() == [
            "0", "100000", "33", "33", "33", "1", "34", "100034", "65502",
        ]  # fmt: skip
        assert ok(lxc_driver, ctid, "cat /proc/self/uid_map").split() == ["0", "100000", "65536"]
        shown = ok(
            lxc_driver,
            ctid,
            "stat -c '%n %g %G' /var/log/nginx/by-host-33 /var/log/nginx/by-host-100034",
        )
        assert shown.splitlines() == [
            "/var/log/nginx/by-host-33 33 www-data",
            "/var/log/nginx/by-host-100034 34 backup",  # Debian's gid 34
        ]
        assert owner(logs)[1] == 33  # the mount's owner_gid 33, through the same map
        ok(lxc_driver, ctid, "setpriv --regid 33 --clear-groups sh -c 'echo w > /var/log/nginx/w'")
        assert owner(logs / "w") == (100_000, 33)  # written by root as gid 33: host gid 33
        assert ok(lxc_driver, ctid, "stat -c '%u:%g' /etc/passwd") == "0:0"
        assert converge(lxc_host.driver(), ctid, wanted) == frozenset()
    finally:
        lxc_driver.destroy(ctid)
        removed = setup.subids.release(setup.state_dir)  # teardown's part for subids
        assert removed == ([] if had_line else ["/etc/subgid: root:33:1"])
    assert ("root:33:1" in Path("/etc/subgid").read_text().splitlines()) == had_line

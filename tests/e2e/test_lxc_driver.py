"""The LXC driver on real containers: every setting is observed inside or on the guest.

Runs as root on the lab from `conftest.lxc_host` (own bridge, subnet, LXC path, nft tables).
The template guest is built from `debootstrap:bookworm` (cached across runs).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, GuestSettings
from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.lxc.hostprep import BridgeSpec, HostSetup, SetupError
from phoenix.errors import DriverError
from phoenix.runners.local import LocalRunner
from tests.e2e.conftest import LxcHost, nft_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MIB = 1024 * 1024
TEMPLATE_ID = 7710
SNAPSHOT = "final-form"
LISTENER = (
    "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => $ARGV[0], "
    "Listen => 5, ReuseAddr => 1) or die $!; "
    'while (my $c = $s->accept) { print $c "hello from $ARGV[1]\\n"; close $c }'
)


def sh(driver: LxcDriver, ctid: int, script: str, *args: str) -> str:
    """Run a fixed script in the guest (values go in as $1.., never into the script)."""
    res = driver.exec(ctid, ["sh", "-c", script, "sh", *args], timeout=120)
    assert res.ok, f"guest {ctid}: {script!r} failed: {res.stdout}{res.stderr}"
    return res.stdout.strip()


def memory_limit(host: LxcHost, driver: LxcDriver, ctid: int) -> int:
    """The memory limit of the guest's cgroup: v1 as the guest sees it inside, v2 (where a
    namespace root shows no memory.max) as LXC reads it on the host."""
    if driver.cgroup.version == 2:
        return int(lxc_cgroup(host, ctid, "memory.max"))
    return int(sh(driver, ctid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"))


def lxc_cgroup(host: LxcHost, ctid: int, key: str) -> str:
    """A cgroup value of the running guest, read by LXC from its real cgroup on the host."""
    argv = ["lxc-cgroup", "-P", str(host.lxc_path), "-n", str(ctid), key]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def config_lines(host: LxcHost, ctid: int) -> list[str]:
    return (host.lxc_path / str(ctid) / "config").read_text().splitlines()


@pytest.fixture(scope="module")
def template_guest(lxc_host: LxcHost) -> Iterator[int]:
    """A stopped template guest with a `final-form` snapshot (clones come from it)."""
    driver = lxc_host.driver()
    settings = lxc_host.settings("phxt-template", 10, features=(("keyctl", "1"), ("nesting", "1")))
    try:
        driver.create(TEMPLATE_ID, lxc_host.template, settings)
        driver.snapshot(TEMPLATE_ID, SNAPSHOT)
        yield TEMPLATE_ID
    finally:
        driver.destroy(TEMPLATE_ID)


def clone_settings(host: LxcHost, name: str, n: int, **overrides: object) -> GuestSettings:
    return host.settings(name, n, **overrides)


def test_template_is_created_and_snapshotted(lxc_host: LxcHost, template_guest: int) -> None:
    driver = lxc_host.driver()
    seen = driver.observe(template_guest)
    assert seen.state == "stopped"
    assert seen.snapshots == (SNAPSHOT,)
    # the snapshot (idempotent) does not run lxc-snapshot again
    driver.snapshot(template_guest, SNAPSHOT)
    assert driver.log.mutations() == []
    rootfs = lxc_host.lxc_path / str(template_guest) / "rootfs"
    assert os.stat(rootfs / "etc/hostname").st_uid == 100_000
    assert os.stat(rootfs / "usr/bin/passwd").st_uid == 100_000
    assert (rootfs / "usr/bin/passwd").stat().st_mode & 0o4000, "setuid bit kept"


def test_clone_applies_every_setting(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    ctid = 7711
    mac = "02:AA:BB:CC:DD:11"
    want = clone_settings(
        lxc_host,
        "phxt-clone",
        11,
        memory_mb=384,
        swap_mb=128,
        cores=1,
        features=(("keyctl", "1"), ("nesting", "1")),
        onboot=True,
        boot_order=5,
        boot_delay=2,
    )
    assert want.net is not None
    want = replace(want, net=replace(want.net, mac=mac))
    lxc_driver.clone(template_guest, ctid, SNAPSHOT, want)
    observed = lxc_driver.observe(ctid)
    assert observed.state == "stopped"
    assert observed.settings is not None
    assert want.diff(observed.settings) == {}

    # start order (while stopped, as at boot): LXC's own autostart reads auto=1 and delay 2 from the config
    listed = subprocess.run(
        ["lxc-autostart", "-P", str(lxc_host.lxc_path), "-L"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed[:2] == [str(ctid), "2"]
    assert "lxc.start.order = 5" in config_lines(lxc_host, ctid)

    lxc_driver.start(ctid)
    assert lxc_driver.observe(ctid).ip_addresses == (lxc_host.ip(11),)
    # memory limit (and swap), seen by the guest in its own cgroup
    assert memory_limit(lxc_host, lxc_driver, ctid) == 384 * MIB
    if lxc_driver.cgroup.version == 2:
        assert int(lxc_cgroup(lxc_host, ctid, "memory.swap.max")) == 128 * MIB
    elif lxc_driver.cgroup.memsw:
        memsw = sh(lxc_driver, ctid, "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        assert int(memsw) == (384 + 128) * MIB
    # cores: one CPU visible (the host has more) and a one-CPU quota
    assert sh(lxc_driver, ctid, "nproc") == "1"
    if lxc_driver.cgroup.version == 2:
        assert lxc_cgroup(lxc_host, ctid, "cpu.max") == "100000 100000"
    else:
        assert lxc_cgroup(lxc_host, ctid, "cpu.cfs_quota_us") == "100000"
    assert lxc_cgroup(lxc_host, ctid, "cpuset.cpus") == str(ctid % lxc_driver.cgroup.cpus)
    # IP, gateway, MAC, hostname
    assert f"inet {lxc_host.address(11)}" in sh(lxc_driver, ctid, "ip -4 -o addr show dev eth0")
    assert f"default via {lxc_host.gateway}" in sh(lxc_driver, ctid, "ip -4 route")
    assert sh(lxc_driver, ctid, "cat /sys/class/net/eth0/address") == mac.lower()
    assert sh(lxc_driver, ctid, "hostname") == "phxt-clone"
    # hardware/module units the template masked for containers stay masked in its clones,
    # and the boot they are left out of is clean
    masked = sh(
        lxc_driver, ctid, "systemctl is-enabled e2scrub_reap.service modprobe@drm.service || true"
    )
    assert masked.split() == ["masked", "masked"]
    assert sh(lxc_driver, ctid, "systemctl is-system-running || true") == "running"
    # logind is not started at boot but on first use, through D-Bus
    assert sh(lxc_driver, ctid, "systemctl is-active systemd-logind || true") == "inactive"
    assert sh(lxc_driver, ctid, "loginctl list-sessions --no-legend | wc -l") == "0"
    assert sh(lxc_driver, ctid, "systemctl is-active systemd-logind || true") == "active"
    assert "dhcp" not in sh(lxc_driver, ctid, "cat /etc/network/interfaces")
    # unprivileged: root in the guest is uid 100000 on the host
    assert sh(lxc_driver, ctid, "cat /proc/self/uid_map").split() == ["0", "100000", "65536"]
    pid = subprocess.run(
        ["lxc-info", "-P", str(lxc_host.lxc_path), "-n", str(ctid), "-p", "-H"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    assert any(line.split()[:2] == ["Uid:", "100000"] for line in status.splitlines())
    # nesting: proc and sys are mounted where a nested container manager finds them
    mounts = sh(lxc_driver, ctid, "cat /proc/self/mounts")
    assert " /dev/.lxc/proc proc " in mounts and " /dev/.lxc/sys sysfs " in mounts

    # converged: observe + configure(nothing) change nothing
    lxc_driver.log.entries.clear()
    again = lxc_driver.observe(ctid)
    assert again.settings is not None and want.diff(again.settings) == {}
    lxc_driver.configure(ctid, want, frozenset())
    lxc_driver.start(ctid)
    assert lxc_driver.log.mutations() == []


def test_changing_memory_changes_only_memory(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    ctid = 7712
    before_settings = clone_settings(lxc_host, "phxt-mem", 12, memory_mb=256, swap_mb=64)
    lxc_driver.clone(template_guest, ctid, SNAPSHOT, before_settings)
    lxc_driver.start(ctid)
    before = config_lines(lxc_host, ctid)

    want = replace(before_settings, memory_mb=320)
    observed = lxc_driver.observe(ctid).settings
    assert observed is not None
    changed = frozenset(want.diff(observed))
    assert changed == {"memory_mb"}
    lxc_driver.log.entries.clear()
    lxc_driver.configure(ctid, want, changed)

    after = config_lines(lxc_host, ctid)
    diff = sorted(set(before) ^ set(after))
    if lxc_driver.cgroup.version == 2:
        expected = {"lxc.cgroup2.memory.max"}
    else:
        expected = {"lxc.cgroup.memory.limit_in_bytes"}
        if lxc_driver.cgroup.memsw:  # memsw = memory + swap moves with memory
            expected.add("lxc.cgroup.memory.memsw.limit_in_bytes")
    assert {line.split(" = ")[0] for line in diff} == expected
    # applied live, without a restart
    assert memory_limit(lxc_host, lxc_driver, ctid) == 320 * MIB
    mutated = {argv[0] for argv in lxc_driver.log.mutations()}
    assert mutated <= {"write", "lxc-cgroup"}
    assert not any("lxc-start" in a or "lxc-stop" in a for a in lxc_driver.log.mutations())
    settled = lxc_driver.observe(ctid).settings
    assert settled is not None and want.diff(settled) == {}


def test_stop_start_destroy_are_idempotent(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    ctid = 7713
    lxc_driver.clone(template_guest, ctid, SNAPSHOT, clone_settings(lxc_host, "phxt-life", 13))
    lxc_driver.start(ctid)
    assert lxc_driver.observe(ctid).running
    lxc_driver.stop(ctid)
    lxc_driver.log.entries.clear()
    lxc_driver.stop(ctid)
    assert lxc_driver.log.mutations() == []
    assert lxc_driver.observe(ctid).state == "stopped"
    lxc_driver.start(ctid)
    assert sh(lxc_driver, ctid, "hostname") == "phxt-life"
    # a running dir-backed guest is snapshotted by stop/snapshot/start, and is running after
    lxc_driver.snapshot(ctid, "pre-configured")
    assert lxc_driver.list_snapshots(ctid) == ["pre-configured"]
    assert lxc_driver.observe(ctid).running
    lxc_driver.destroy(ctid)
    assert lxc_driver.observe(ctid).state == "missing"
    assert not (lxc_host.lxc_path / str(ctid)).exists()
    lxc_driver.destroy(ctid)  # already gone: no error


def test_exec(lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int) -> None:
    ctid = 7714
    lxc_driver.clone(template_guest, ctid, SNAPSHOT, clone_settings(lxc_host, "phxt-exec", 14))
    lxc_driver.start(ctid)
    res = lxc_driver.exec(
        ctid,
        ["sh", "-c", 'cat; echo "$GREETING"; exit 3'],
        env={"GREETING": "hi there"},
        stdin=b"from stdin\n",
    )
    assert (res.returncode, res.stdout) == (3, "from stdin\nhi there\n")
    slow = lxc_driver.exec(ctid, ["sleep", "10"], timeout=1)
    assert slow.returncode == 124  # timed out: a result, as the Runner contract says
    # The guest's hard limit of open files is what the driver gave lxc-start: raised to a
    # Proxmox guest's 524,288 where this host allows it (a sandbox may cap it lower).
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limits = lxc_driver.exec(ctid, ["grep", "Max open files", "/proc/1/limits"]).stdout.split()
    assert limits[4] == str(hard) and min(hard, 524288) == min(int(limits[4]), 524288), limits


def test_apt_inside_a_guest_works_through_nat(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    ctid = 7715
    lxc_driver.clone(template_guest, ctid, SNAPSHOT, clone_settings(lxc_host, "phxt-apt", 15))
    lxc_driver.start(ctid)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    update = lxc_driver.exec(ctid, ["apt-get", "update"], env=env, timeout=300)
    assert update.ok, update.stdout + update.stderr
    install = lxc_driver.exec(
        ctid,
        ["apt-get", "install", "-y", "--no-install-recommends", "hello"],
        env=env,
        timeout=300,
    )
    assert install.ok, install.stdout + install.stderr
    assert lxc_driver.exec(ctid, ["hello"]).stdout.strip() == "Hello, world!"


def _listen(driver: LxcDriver, ctid: int, port: int, name: str) -> None:
    driver.exec(
        ctid,
        [
            "sh",
            "-c",
            'setsid perl -e "$1" "$2" "$3" >/dev/null 2>&1 < /dev/null &',
            "sh",
            LISTENER,
            str(port),
            name,
        ],
    )


def _connect(driver: LxcDriver, ctid: int, ip: str, port: int) -> str | None:
    script = 'exec 3<>"/dev/tcp/$1/$2" && read -r line <&3 && echo "$line"'
    res = driver.exec(ctid, ["timeout", "4", "bash", "-c", script, "bash", ip, str(port)])
    return res.stdout.strip() if res.ok else None


def test_firewall_allows_one_source_and_blocks_another(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    server, allowed, other = 7720, 7721, 7722
    for ctid, n in ((server, 20), (allowed, 21), (other, 22)):
        lxc_driver.clone(template_guest, ctid, SNAPSHOT, clone_settings(lxc_host, f"phxt-fw{n}", n))
        lxc_driver.start(ctid)
    _listen(lxc_driver, server, 8080, "server")
    server_ip = lxc_host.ip(20)
    # without a firewall both clients get through (so a later failure is the firewall's)
    deadline_ok = any(_connect(lxc_driver, allowed, server_ip, 8080) for _ in range(10))
    assert deadline_ok
    assert _connect(lxc_driver, other, server_ip, 8080) == "hello from server"

    rule = FirewallRule("in", "ACCEPT", source=lxc_host.ip(21), proto="tcp", port="8080")
    observed = lxc_driver.observe(server).settings
    assert observed is not None
    want = replace(observed, firewall_enabled=True, firewall_rules=(rule,))
    lxc_driver.configure(server, want, frozenset(want.diff(observed)))
    settled = lxc_driver.observe(server).settings
    assert settled is not None and want.diff(settled) == {}

    assert _connect(lxc_driver, allowed, server_ip, 8080) == "hello from server"
    assert _connect(lxc_driver, other, server_ip, 8080) is None
    # the firewalled guest still reaches out (replies come back in)
    _listen(lxc_driver, other, 9090, "other")
    assert any(_connect(lxc_driver, server, lxc_host.ip(22), 9090) for _ in range(10))

    lxc_driver.destroy(server)
    chains = {
        item["chain"]["name"]
        for item in nft_json("list", "table", "bridge", lxc_host.fw_table).get("nftables", [])
        if "chain" in item
    }
    assert f"in_{server}" not in chains and f"out_{server}" not in chains


def test_mark_template_and_clone_without_snapshot(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    base, clone = 7730, 7731
    lxc_driver.clone(template_guest, base, SNAPSHOT, clone_settings(lxc_host, "phxt-base", 30))
    lxc_driver.mark_template(base)
    assert lxc_driver.observe(base).is_template
    lxc_driver.log.entries.clear()
    lxc_driver.mark_template(base)
    assert lxc_driver.log.mutations() == []
    privileged = clone_settings(lxc_host, "phxt-priv", 31, unprivileged=False)
    lxc_driver.clone(base, clone, None, privileged)
    rootfs = lxc_host.lxc_path / str(clone) / "rootfs"
    assert os.stat(rootfs / "etc/passwd").st_uid == 0  # ids shifted back for a privileged clone
    seen = lxc_driver.observe(clone).settings
    assert seen is not None and privileged.diff(seen) == {}
    lxc_driver.snapshot(clone, "pre-configured")
    assert lxc_driver.list_snapshots(clone) == ["pre-configured"]


def tree_fingerprint(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """(mode, uid, size, mtime) of every entry: any write into the tree changes it."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns)
    return out


def linked_spec(host: LxcHost, ctid: int) -> tuple[Path, Path]:
    """(lower, upper) of a linked clone, from its LXC config."""
    lines = config_lines(host, ctid)
    value = next(line.split(" = ", 1)[1] for line in lines if line.startswith("lxc.rootfs.path"))
    assert value.startswith("overlay:"), value
    assert "lxc.rootfs.options = userxattr" in lines
    lower, _, upper = value[len("overlay:") :].rpartition(":")
    return Path(lower), Path(upper)


def test_linked_clone_boots_and_writes_only_its_upper_layer(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    ctid = 7740
    want = clone_settings(lxc_host, "phxt-linked", 40)
    snap_rootfs = lxc_host.lxc_path / str(template_guest) / "snaps" / "snap0" / "rootfs"
    lower_before = tree_fingerprint(snap_rootfs)
    lxc_driver.clone(template_guest, ctid, SNAPSHOT, want)
    lower, upper = linked_spec(lxc_host, ctid)
    assert lower == snap_rootfs
    assert upper.parent.parent == lxc_host.lxc_path / str(ctid)
    assert not (lxc_host.lxc_path / str(ctid) / "rootfs").exists()  # nothing was copied
    for name in ("hostname", "hosts", "resolv.conf", "machine-id", "network/interfaces"):
        assert (upper / "etc" / name).is_file(), f"{name} is in the clone's own layer"

    lxc_driver.start(ctid)  # waits for systemd and the address
    assert sh(lxc_driver, ctid, "findmnt -no FSTYPE /") == "overlay"
    assert sh(lxc_driver, ctid, "hostname") == "phxt-linked"
    assert f"inet {lxc_host.address(40)}" in sh(lxc_driver, ctid, "ip -4 -o addr show dev eth0")
    assert f"default via {lxc_host.gateway}" in sh(lxc_driver, ctid, "ip -4 route")
    assert sh(lxc_driver, ctid, "systemctl is-system-running || true") in ("running", "degraded")
    # writes, deletions (whiteouts) and a deleted-then-recreated lower dir (opaque, which
    # needs user.* overlay xattrs inside the user namespace) all work and stay in the upper
    sh(
        lxc_driver,
        ctid,
        "echo linked > /root/phxt-marker && rm /etc/issue.net && rm -rf /usr/share/doc/dash "
        "&& mkdir /usr/share/doc/dash && echo new > /usr/share/doc/dash/only && "
        "dpkg-divert --local --rename --add /usr/bin/phxt-none >/dev/null && "
        "ls /usr/share/doc/dash",
    )
    assert sh(lxc_driver, ctid, "ls /usr/share/doc/dash") == "only"
    assert (upper / "root" / "phxt-marker").read_text() == "linked\n"
    assert os.stat(upper / "root" / "phxt-marker").st_uid == 100_000
    whiteout = os.lstat(upper / "etc" / "issue.net")
    assert whiteout.st_rdev == 0 and (whiteout.st_mode & 0o170000) == 0o020000
    assert os.getxattr(upper / "usr/share/doc/dash", "user.overlay.opaque") == b"y"
    assert "phxt-none" in (upper / "var/lib/dpkg/diversions").read_text()

    # the snapshot (the shared lower) is untouched, and the clone observes as converged
    assert tree_fingerprint(snap_rootfs) == lower_before
    observed = lxc_driver.observe(ctid).settings
    assert observed is not None and observed.net is not None and want.net is not None
    assert replace(want, net=replace(want.net, mac=observed.net.mac)).diff(observed) == {}
    again = lxc_host.driver()
    again.observe(ctid)
    assert again.log.mutations() == []

    # a live hostname change goes in through the guest, not under the mounted overlay
    lxc_driver.configure(ctid, replace(want, hostname="phxt-linked2"), frozenset({"hostname"}))
    assert sh(lxc_driver, ctid, "cat /etc/hostname; hostname") == "phxt-linked2\nphxt-linked2"
    lxc_driver.stop(ctid)
    assert (upper / "etc" / "hostname").read_text() == "phxt-linked2\n"

    lxc_driver.destroy(ctid)
    assert not (lxc_host.lxc_path / str(ctid)).exists()
    assert tree_fingerprint(snap_rootfs) == lower_before


def test_two_linked_clones_of_one_snapshot_are_independent(
    lxc_host: LxcHost, lxc_driver: LxcDriver, template_guest: int
) -> None:
    a, b = 7741, 7742
    lxc_driver.clone(template_guest, a, SNAPSHOT, clone_settings(lxc_host, "phxt-la", 41))
    lxc_driver.clone(template_guest, b, SNAPSHOT, clone_settings(lxc_host, "phxt-lb", 42))
    assert linked_spec(lxc_host, a)[0] == linked_spec(lxc_host, b)[0]
    lxc_driver.start(a)
    lxc_driver.start(b)
    sh(lxc_driver, a, "echo a > /etc/phxt-who && rm /etc/motd")
    assert sh(lxc_driver, b, "cat /etc/phxt-who 2>/dev/null || echo none") == "none"
    assert sh(lxc_driver, b, "test -f /etc/motd && echo kept") == "kept"
    assert sh(lxc_driver, a, "hostname") == "phxt-la" and sh(lxc_driver, b, "hostname") == "phxt-lb"
    ids = {sh(lxc_driver, c, "cat /etc/machine-id") for c in (a, b)}
    assert len(ids) == 2, "each clone has its own machine-id"
    # each has its own network: a reaches a listener in b over the bridge
    _listen(lxc_driver, b, 8080, "lb")
    assert any(_connect(lxc_driver, a, lxc_host.ip(42), 8080) == "hello from lb" for _ in range(10))
    lxc_driver.destroy(a)
    assert sh(lxc_driver, b, "test -f /etc/motd && echo kept") == "kept"


def test_base_of_linked_clones_cannot_be_deleted_until_they_are(
    lxc_host: LxcHost, lxc_driver: LxcDriver
) -> None:
    source, clones = 7745, (7746, 7747)
    try:
        lxc_driver.create(source, lxc_host.template, lxc_host.settings("phxt-src", 45))
        lxc_driver.snapshot(source, SNAPSHOT)
        lxc_driver.snapshot(source, "spare")
        for n, ctid in enumerate(clones):
            settings = clone_settings(lxc_host, f"phxt-dep{n}", 46 + n)
            lxc_driver.clone(source, ctid, SNAPSHOT, settings)
        assert lxc_driver.dependents(source) == list(clones)
        with pytest.raises(DriverError, match="7746, 7747"):
            lxc_driver.destroy(source)
        assert lxc_driver.list_snapshots(source) == [SNAPSHOT, "spare"]
        assert lxc_driver.observe(source).exists
        lxc_driver.start(clones[0])  # the refusals broke nothing
        lxc_driver.destroy(clones[0])
        with pytest.raises(DriverError, match="7747"):
            lxc_driver.destroy(source)
        lxc_driver.destroy(clones[1])
        lxc_driver.destroy(source)
        assert not (lxc_host.lxc_path / str(source)).exists()
    finally:
        for ctid in (*clones, source):
            lxc_host.driver().destroy(ctid)


def test_full_clone_mode_copies(lxc_host: LxcHost, template_guest: int) -> None:
    driver = LxcDriver(
        lxc_host.lxc_path,
        lxc_host.template_cache,
        LocalRunner(),
        lxc_host.state_dir,
        fw_table=lxc_host.fw_table,
        clone_mode="full",
    )
    ctid = 7748
    try:
        driver.clone(template_guest, ctid, SNAPSHOT, clone_settings(lxc_host, "phxt-full", 48))
        assert f"lxc.rootfs.path = dir:{lxc_host.lxc_path / str(ctid) / 'rootfs'}" in (
            config_lines(lxc_host, ctid)
        )
        assert driver.dependents(template_guest) == []
    finally:
        driver.destroy(ctid)


def test_missing_template_is_a_clear_error(lxc_driver: LxcDriver) -> None:
    with pytest.raises(DriverError, match=re.escape("/nonexistent/rootfs.tar.zst")):
        lxc_driver.create(
            7740,
            "/nonexistent/rootfs.tar.zst",
            GuestSettings("phxt-x", 256, 0, 1, 4, "local", True, None),
        )
    assert lxc_driver.observe(7740).state == "missing"


def test_setup_refuses_a_bridge_overlapping_a_host_route(lxc_host: LxcHost) -> None:
    routes = subprocess.run(
        ["ip", "-j", "-4", "route"], capture_output=True, text=True, check=True
    ).stdout
    taken = next(r["dst"] for r in json.loads(routes) if r.get("dst", "default") != "default")
    net = ipaddress.IPv4Network(taken if "/" in taken else f"{taken}/32", strict=False)
    spec = BridgeSpec(
        "phxtbrx", ipaddress.IPv4Interface(f"{net.network_address + 1}/{net.prefixlen}")
    )
    setup = HostSetup(LocalRunner(), lxc_host.state_dir / "refuse", nat_table="phoenix_nat_phxtx")
    with pytest.raises(SetupError, match="overlaps"):
        setup.apply([spec])
    assert subprocess.run(["ip", "link", "show", "phxtbrx"], capture_output=True).returncode != 0


def test_setup_is_idempotent(lxc_host: LxcHost) -> None:
    setup = HostSetup(LocalRunner(), lxc_host.state_dir, nat_table=lxc_host.nat_table)
    spec = BridgeSpec(
        lxc_host.bridge, ipaddress.IPv4Interface(f"{lxc_host.gateway}/{lxc_host.subnet.prefixlen}")
    )
    assert setup.apply([spec]) == []
    assert setup.log.mutations() == []
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"

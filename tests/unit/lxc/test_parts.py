"""cgroup keys, firewall scripts, templates, id maps and guest files (pure, no root)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule
from phoenix.drivers.lxc import cgroups, firewall, guestfiles, idmap, templates
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult

HERE = Path(__file__).parent


def test_cgroup_detect(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    assert cgroups.detect(tmp_path).version == 1
    assert not cgroups.detect(tmp_path).memsw
    (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("0")
    assert cgroups.detect(tmp_path).memsw
    (tmp_path / "cgroup.controllers").write_text("cpu memory")
    assert cgroups.detect(tmp_path).version == 2


@pytest.mark.parametrize(("spec", "count"), [("0", 1), ("0-3", 4), ("0-1,4,6-7", 5)])
def test_count_cpus(spec: str, count: int) -> None:
    assert cgroups.count_cpus(spec) == count


@pytest.mark.parametrize(
    ("ctid", "cores", "host_cpus", "spec"),
    [
        (7870, 1, 2, "0"),
        (7871, 1, 2, "1"),
        (7869, 2, 4, "1-2"),
        (7871, 2, 4, "0,3"),
        (7, 3, 4, "0-1,3"),
        (101, 8, 2, "0-1"),
    ],
)
def test_cpuset_rotates_by_ctid(ctid: int, cores: int, host_cpus: int, spec: str) -> None:
    """Guests are spread over the host's CPUs (a 1-core lab must not share CPU 0 while the
    others idle), always with exactly min(cores, host CPUs) of them, stable per CTID."""
    assert cgroups.cpuset(ctid, cores, host_cpus) == spec
    assert cgroups.count_cpus(spec) == min(cores, host_cpus)


def test_consecutive_one_core_guests_use_every_cpu() -> None:
    used = {cgroups.cpuset(ctid, 1, 4) for ctid in range(801, 805)}
    assert used == {"0", "1", "2", "3"}


def test_cores_fall_back_to_cpuset_without_quota() -> None:
    assert cgroups.parse_limits({"lxc.cgroup.cpuset.cpus": "0-2"}).cores == 3
    assert cgroups.parse_limits({}).memory_mb is None


def test_port_and_rule_expressions() -> None:
    assert firewall.port_expr("80") == "80"
    assert firewall.port_expr("8000:8010") == "8000-8010"
    assert firewall.port_expr("80,443") == "{ 80, 443 }"
    rule = FirewallRule("in", "ACCEPT", "10.0.0.10", "10.0.0.2", "tcp", "80,8000:8010")
    assert firewall.rule_expr(rule) == (
        "ip saddr 10.0.0.10 ip daddr 10.0.0.2 tcp dport { 80, 8000-8010 } accept"
    )
    assert firewall.rule_expr(FirewallRule("in", "REJECT", proto="icmp")) == (
        "meta l4proto icmp reject"
    )
    no_reject = firewall.NftCaps(conntrack=True, reject=False)
    assert firewall.rule_expr(FirewallRule("in", "REJECT"), no_reject) == "drop"


def test_guest_script_defaults_and_order() -> None:
    rule = FirewallRule("in", "ACCEPT", "10.0.0.10", proto="tcp", port="22")
    lines = firewall.guest_script("phoenix_fw", 101, "veth101i0", (rule,)).splitlines()
    t = "bridge phoenix_fw"
    accept = f"add rule {t} in_101 ip saddr 10.0.0.10 tcp dport 22 accept"
    assert lines.index(f"add rule {t} in_101 ct state established,related accept") < lines.index(
        accept
    )
    assert lines.index(accept) < lines.index(f"add rule {t} in_101 drop")
    assert f"add rule {t} in_101 ether type arp accept" in lines
    assert f"add rule {t} out_101 drop" not in lines  # outbound default is ACCEPT
    assert lines[-2] == f'add element {t} in_ports {{ "veth101i0" : jump in_101 }}'


def test_guest_script_without_bridge_conntrack_is_stateless() -> None:
    caps = firewall.NftCaps(conntrack=False, reject=True)
    text = firewall.guest_script("phoenix_fw", 101, "veth101i0", (), caps)
    assert "ct state" not in text
    assert "tcp flags & (syn | ack) != syn accept" in text


def test_parse_listing_of_real_nft_output() -> None:
    state = firewall.parse_listing((HERE / "nft_list_table.json").read_text())
    assert state.exists
    assert {"in_101", "out_101", "forward", "input", "output"} <= state.chains
    assert state.in_ports == {"veth101i0"} and state.out_ports == {"veth101i0"}
    rules = (FirewallRule("in", "ACCEPT", "10.1.2.3", None, "tcp", "80"),)
    assert state.applied_marker(101) == firewall.marker(rules)
    assert state.applied_marker(102) is None
    script = firewall.remove_script("phoenix_fwunit", 101, "veth101i0", state)
    assert 'delete element bridge phoenix_fwunit in_ports { "veth101i0" }' in script
    assert "delete chain bridge phoenix_fwunit in_101" in script
    assert firewall.remove_script("phoenix_fwunit", 102, "veth102i0", state) == ""


def test_rules_hash_changes_with_rules() -> None:
    a = (FirewallRule("in", "ACCEPT", "10.0.0.1"),)
    b = (FirewallRule("in", "ACCEPT", "10.0.0.2"),)
    assert firewall.rules_hash(a) != firewall.rules_hash(b)
    assert firewall.rules_hash(a) == firewall.rules_hash(tuple(a))


def test_debootstrap_names() -> None:
    assert templates.debootstrap_suite("debootstrap:bookworm") == "bookworm"
    assert templates.debootstrap_suite("/x/debian-12.tar.zst") is None
    with pytest.raises(DriverError, match="suite"):
        templates.debootstrap_suite("debootstrap:../etc")


def test_apt_mirror_from_deb822_and_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir(parents=True)
    assert templates.apt_mirror(tmp_path) == templates.DEFAULT_MIRROR
    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian bookworm main\n")
    assert templates.apt_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://ftp.example/debian/\nSuites: bookworm\n"
    )
    assert templates.apt_mirror(tmp_path) == "http://ftp.example/debian"


def test_missing_template_names_what_was_looked_for(tmp_path: Path) -> None:
    def never(argv: object) -> CommandResult:
        raise AssertionError("nothing may run for a missing tarball")

    with pytest.raises(DriverError) as err:
        templates.resolve_template("debian-12.tar.zst", tmp_path, never)
    assert "debian-12.tar.zst" in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(DriverError, match="neither a rootfs tarball"):
        templates.resolve_template("ubuntu", tmp_path, never)
    tarball = tmp_path / "debian-12.tar.zst"
    tarball.write_bytes(b"")
    assert templates.resolve_template("debian-12.tar.zst", tmp_path, never) == tarball


def test_cached_debootstrap_template_is_not_rebuilt(tmp_path: Path) -> None:
    cached = templates.cached_tarball(tmp_path, "bookworm", "amd64")
    cached.write_bytes(b"x")
    calls: list[object] = []

    def run(argv: object) -> CommandResult:
        calls.append(argv)
        return CommandResult(0, "", "")

    assert templates.resolve_template("debootstrap:bookworm", tmp_path, run) == cached
    assert calls == []


def test_subid_ranges() -> None:
    assert idmap.has_subids("root:100000:65536\n")
    assert idmap.has_subids("root:100000:200000\n")
    assert not idmap.has_subids("root:100000:1000\n")
    assert not idmap.has_subids("lxd:100000:65536\n")
    assert not idmap.has_subids("")


def test_shift_tree_keeps_modes_and_hard_links(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    tool = root / "bin" / "su"
    tool.write_text("x")
    tool.chmod(0o4755)
    os.link(tool, root / "bin" / "su2")
    (root / "link").symlink_to("/bin/su")
    idmap.shift_tree(root, 100_000)
    assert os.stat(tool).st_uid == 100_000
    assert tool.stat().st_mode & 0o7777 == 0o4755
    assert os.lstat(root / "link").st_uid == 100_000
    idmap.shift_tree(root, -100_000)
    assert os.stat(tool).st_uid == 0


def test_resolv_conf_drops_loopback_stubs() -> None:
    host = "nameserver 127.0.0.53\nsearch lab\nnameserver 9.9.9.9\noptions edns0\n"
    text = guestfiles.resolv_conf(host)
    assert "127.0.0.53" not in text
    assert "nameserver 9.9.9.9" in text and "search lab" in text
    assert "nameserver 10.0.0.1" in guestfiles.resolv_conf("nameserver 127.0.0.1\n", "10.0.0.1")


def test_guest_file_write_never_follows_symlinks(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.write_text("host file")
    (rootfs / "etc" / "hostname").symlink_to(outside)
    guestfiles.write(rootfs, "etc/hostname", "guest\n", os.geteuid())
    assert outside.read_text() == "host file"
    assert (rootfs / "etc" / "hostname").read_text() == "guest\n"
    (rootfs / "net").symlink_to(tmp_path)
    with pytest.raises(DriverError, match="not a directory"):
        guestfiles.write(rootfs, "net/interfaces", "x", os.geteuid())


def test_interfaces_never_ask_for_dhcp() -> None:
    assert "dhcp" not in guestfiles.INTERFACES.format(nic="eth0")
    assert json.dumps(guestfiles.hosts("gw.lab")).count("gw") == 2


def _shipped(rootfs: Path, *names: str) -> None:
    lib = rootfs / "usr/lib/systemd/system"
    gen = rootfs / "usr/lib/systemd/system-generators"
    lib.mkdir(parents=True, exist_ok=True)
    gen.mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    for name in names:
        (gen if name.endswith("-generator") else lib).joinpath(name).write_text("")


def test_container_masks_only_what_the_template_ships(tmp_path: Path) -> None:
    _shipped(tmp_path, "modprobe@.service", "e2scrub_reap.service", "systemd-gpt-auto-generator")
    masked = guestfiles.mask_for_container(tmp_path, os.getuid())
    assert "modprobe@drm.service" in masked and "e2scrub_reap.service" in masked
    assert "systemd-gpt-auto-generator" in masked
    assert "sys-kernel-debug.mount" not in masked  # not shipped: no dangling mask
    unit = tmp_path / "etc/systemd/system/modprobe@drm.service"
    assert os.readlink(unit) == "/dev/null"
    assert (
        os.readlink(tmp_path / "etc/systemd/system-generators/systemd-gpt-auto-generator")
        == "/dev/null"
    )


def test_container_masks_keep_the_templates_own_choices(tmp_path: Path) -> None:
    _shipped(tmp_path, "e2scrub_reap.service")
    own = tmp_path / "etc/systemd/system/e2scrub_reap.service"
    own.write_text("[Service]\nExecStart=/bin/true\n")
    assert "e2scrub_reap.service" not in guestfiles.mask_for_container(tmp_path, os.getuid())
    assert own.read_text().startswith("[Service]")


def test_container_masks_never_write_through_a_link(tmp_path: Path) -> None:
    _shipped(tmp_path, "e2scrub_reap.service")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "etc/systemd/system").rmdir()
    (tmp_path / "etc/systemd/system").symlink_to(outside)
    with pytest.raises(DriverError, match="not a directory"):
        guestfiles.mask_for_container(tmp_path, os.getuid())
    assert list(outside.iterdir()) == []


def test_logind_starts_on_demand_not_at_boot(tmp_path: Path) -> None:
    _shipped(tmp_path)
    wants = tmp_path / "usr/lib/systemd/system/multi-user.target.wants"
    wants.mkdir()
    (wants / "systemd-logind.service").symlink_to("../systemd-logind.service")
    assert guestfiles.mask_for_container(tmp_path, os.getuid()) == []  # not D-Bus activatable
    bus = tmp_path / "usr/share/dbus-1/system-services"
    bus.mkdir(parents=True)
    (bus / "org.freedesktop.login1.service").write_text("")
    masked = guestfiles.mask_for_container(tmp_path, os.getuid())
    assert masked == ["multi-user.target.wants/systemd-logind.service"]
    link = tmp_path / "etc/systemd/system/multi-user.target.wants/systemd-logind.service"
    assert os.readlink(link) == "/dev/null"
    assert not (tmp_path / "etc/systemd/system/systemd-logind.service").exists()  # not masked


def test_an_empty_listing_is_an_existing_table_with_nothing_in_it() -> None:
    state = firewall.parse_listing("")
    assert state == firewall.TableState(exists=True)

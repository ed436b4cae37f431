"""LXC config render/parse round trip: a converged guest must diff to nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, GuestSettings, NetSettings
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, RenderContext
from phoenix.errors import DriverError, ParseError
from phoenix.inventory.models import LxcGuest
from phoenix.plan.desired import guest_settings

V1 = CgroupHost(1, memsw=True, cpus=2)
V1_NO_SWAP = CgroupHost(1, memsw=False, cpus=2)
V2 = CgroupHost(2, memsw=False, cpus=8)

SETTINGS = GuestSettings(
    hostname="gw.lab",
    memory_mb=2048,
    swap_mb=512,
    cores=4,
    disk_gb=16,
    storage="local-lvm",
    unprivileged=True,
    net=NetSettings("eth0", "vmbr0", "10.0.0.153/24", "10.0.0.1", "52:54:00:AA:BB:CC"),
    features=(("keyctl", "1"), ("nesting", "1")),
    raw_lxc=(("lxc.cgroup2.devices.allow", "c 195:* rwm"), ("lxc.mount.auto", "sys:rw")),
    apparmor_profile="unconfined",
    onboot=True,
    boot_order=2,
    boot_delay=5,
    firewall_enabled=True,
    firewall_rules=(FirewallRule("in", "ACCEPT", "10.0.0.10", None, "tcp", "443"),),
)


def round_trip(settings: GuestSettings, host: CgroupHost, apparmor: bool = True) -> GuestSettings:
    ctx = RenderContext(Path("/var/lib/lxc/101/rootfs"), host, apparmor)
    text = lxcconf.render(101, settings, ctx)
    meta = GuestMeta.from_json(GuestMeta.of(settings).to_json())
    return lxcconf.to_settings(lxcconf.parse(text), meta)


@pytest.mark.parametrize("host", [V1, V1_NO_SWAP, V2], ids=["v1", "v1-no-memsw", "v2"])
@pytest.mark.parametrize("apparmor", [True, False])
def test_round_trip_is_lossless(host: CgroupHost, apparmor: bool) -> None:
    assert SETTINGS.diff(round_trip(SETTINGS, host, apparmor)) == {}


def test_desired_from_inventory_diffs_to_nothing_after_render() -> None:
    guest = LxcGuest.model_validate(
        {
            "name": "model-a",
            "memory_mb": 4096,
            "cores": 2,
            "network_config": {"bridge": "vmbr0", "ip": "10.0.0.154/24", "gw": "10.0.0.1"},
            "mac_address": "",
            "pct_options": ["nesting=1", "keyctl=0"],
            "lxc_options": ["lxc.apparmor.profile=unconfined", "lxc.cap.drop=sys_time"],
            "firewall": {"enabled": True, "rules": [{"type": "in", "action": "ACCEPT"}]},
            "start_at_boot": True,
            "boot_order": 3,
        }
    )
    desired = guest_settings(guest)
    assert desired.net is not None and desired.net.mac is None
    applied = replace(desired, net=replace(desired.net, mac="02:00:00:00:00:01"))
    observed = round_trip(applied, V1)
    assert desired.diff(observed) == {}  # mac=None keeps whatever was assigned
    assert dict(observed.features) == {"keyctl": "0", "nesting": "1"}


def test_config_keys_for_v1_host() -> None:
    text = lxcconf.render(101, SETTINGS, RenderContext(Path("/r"), V1, apparmor=False))
    lines = text.splitlines()
    assert "lxc.cgroup.memory.limit_in_bytes = 2147483648" in lines
    assert "lxc.cgroup.memory.memsw.limit_in_bytes = 2684354560" in lines
    assert "lxc.cgroup.cpuset.cpus = 0-1" in lines  # at most the host's CPUs
    assert "lxc.cgroup.cpu.cfs_quota_us = 400000" in lines  # but the quota says 4 cores
    assert not any(line.startswith("lxc.cgroup2.memory") for line in lines)
    assert "lxc.idmap = u 0 100000 65536" in lines
    assert "lxc.net.0.ipv4.address = 10.0.0.153/24 10.0.0.255" in lines
    assert "lxc.net.0.veth.pair = veth101i0" in lines
    assert "lxc.start.auto = 1" in lines and "lxc.start.order = 2" in lines
    assert "lxc.include = /usr/share/lxc/config/nesting.conf" in lines
    # AppArmor absent: recorded, not enforced (no lxc.apparmor.* key LXC would act on)
    assert not any(line.startswith("lxc.apparmor") for line in lines)


def test_config_keys_for_v2_host_with_apparmor() -> None:
    text = lxcconf.render(101, SETTINGS, RenderContext(Path("/r"), V2, apparmor=True))
    lines = text.splitlines()
    assert "lxc.cgroup2.memory.max = 2147483648" in lines
    assert "lxc.cgroup2.memory.swap.max = 536870912" in lines
    assert "lxc.cgroup2.cpu.max = 400000 100000" in lines
    assert "lxc.apparmor.profile = unconfined" in lines
    assert "lxc.apparmor.allow_nesting = 1" in lines


def test_raw_options_come_last_and_parse_back_as_raw() -> None:
    text = lxcconf.render(101, SETTINGS, RenderContext(Path("/r"), V1, True))
    assert text.splitlines()[-1] == "lxc.mount.auto = sys:rw"
    parsed = lxcconf.parse(text)
    assert ("lxc.mount.auto", "sys:rw") in parsed.raw
    assert ("lxc.mount.auto", "sys:rw") not in parsed.managed


def test_no_network_renders_an_empty_nic_and_parses_to_none() -> None:
    settings = replace(SETTINGS, net=None)
    assert "lxc.net.0.type = empty" in lxcconf.render(
        7, settings, RenderContext(Path("/r"), V1, True)
    )
    assert round_trip(settings, V1).net is None


def test_privileged_guest_has_no_idmap() -> None:
    settings = replace(SETTINGS, unprivileged=False)
    text = lxcconf.render(7, settings, RenderContext(Path("/r"), V1, True))
    assert "lxc.idmap" not in text and "userns.conf" not in text
    assert round_trip(settings, V1).unprivileged is False


def test_unsupported_feature_is_a_driver_error() -> None:
    settings = replace(SETTINGS, features=(("mknod", "1"),))
    with pytest.raises(DriverError, match="mknod"):
        lxcconf.render(7, settings, RenderContext(Path("/r"), V1, True))


def test_render_needs_a_resolved_mac() -> None:
    assert SETTINGS.net is not None
    settings = replace(SETTINGS, net=replace(SETTINGS.net, mac=None))
    with pytest.raises(ValueError, match="MAC"):
        lxcconf.render(7, settings, RenderContext(Path("/r"), V1, True))


def test_rootfs_spec_and_meta_json() -> None:
    parsed = lxcconf.parse("lxc.rootfs.path = dir:/var/lib/lxc/9/rootfs\n")
    spec = lxcconf.rootfs_spec(parsed)
    assert spec is not None and spec.path == Path("/var/lib/lxc/9/rootfs")
    meta = GuestMeta.of(SETTINGS, template=True, source="900@final-form")
    assert GuestMeta.from_json(meta.to_json()) == meta
    assert lxcconf.veth_name(999_999_999) == "veth999999999i0"
    assert len(lxcconf.veth_name(999_999_999)) <= 15


def test_nesting_with_apparmor_uses_the_generated_profile() -> None:
    settings = replace(SETTINGS, apparmor_profile=None)
    text = lxcconf.render(7, settings, RenderContext(Path("/r"), V1, apparmor=True))
    lines = text.splitlines()
    assert lines.index("lxc.apparmor.profile = generated") > lines.index(
        "lxc.include = /usr/share/lxc/config/nesting.conf"
    )
    assert round_trip(settings, V1, apparmor=True).apparmor_profile is None


def test_a_full_config_in_the_order_lxc_reads_it() -> None:
    """Every key a guest's behaviour depends on, once, with the raw options last (a later
    line wins in LXC, so the inventory's own lxc_options override Phoenix's)."""
    settings = replace(SETTINGS, features=(("fuse", "1"), ("keyctl", "1"), ("nesting", "1")))
    text = lxcconf.render(101, settings, RenderContext(Path("/var/lib/lxc/101/rootfs"), V1, True))
    inc = "lxc.include = /usr/share/lxc/config"
    assert text == "\n".join(
        [
            "# Written by Phoenix from the inventory: change the inventory, not this file.",
            f"{inc}/debian.common.conf",
            f"{inc}/debian.userns.conf",
            "lxc.arch = linux64",
            "lxc.uts.name = gw.lab",
            "lxc.rootfs.path = dir:/var/lib/lxc/101/rootfs",
            "lxc.idmap = u 0 100000 65536",
            "lxc.idmap = g 0 100000 65536",
            "lxc.net.0.type = veth",
            "lxc.net.0.name = eth0",
            "lxc.net.0.link = vmbr0",
            "lxc.net.0.flags = up",
            "lxc.net.0.hwaddr = 52:54:00:AA:BB:CC",
            "lxc.net.0.veth.pair = veth101i0",
            "lxc.net.0.ipv4.address = 10.0.0.153/24 10.0.0.255",
            "lxc.net.0.ipv4.gateway = 10.0.0.1",
            "lxc.cgroup.memory.limit_in_bytes = 2147483648",
            "lxc.cgroup.memory.memsw.limit_in_bytes = 2684354560",
            "lxc.cgroup.cpuset.cpus = 0-1",
            "lxc.cgroup.cpu.cfs_period_us = 100000",
            "lxc.cgroup.cpu.cfs_quota_us = 400000",
            "lxc.start.auto = 1",
            "lxc.start.order = 2",
            "lxc.start.delay = 5",
            "#phoenix.features = fuse=1,keyctl=1,nesting=1",
            f"{inc}/nesting.conf",
            "lxc.apparmor.allow_nesting = 1",
            "lxc.mount.entry = /dev/fuse dev/fuse none bind,create=file,optional 0 0",
            "#phoenix.apparmor_profile = unconfined",
            "lxc.apparmor.profile = unconfined",
            "# phoenix.raw_lxc: the inventory's lxc_options follow",
            "lxc.cgroup2.devices.allow = c 195:* rwm",
            "lxc.mount.auto = sys:rw",
            "",
        ]
    )
    assert round_trip(settings, V1) == settings


def test_a_linked_privileged_guest_without_apparmor_or_gateway() -> None:
    assert SETTINGS.net is not None
    settings = replace(
        SETTINGS,
        unprivileged=False,
        onboot=False,
        features=(("nesting", "1"),),
        raw_lxc=(),
        net=replace(SETTINGS.net, gw=None, mac="52:54:00:aa:bb:cc"),
    )
    ctx = RenderContext(Path("/up"), V1, apparmor=False, lower=Path("/low"))
    lines = lxcconf.render(7, settings, ctx).splitlines()
    assert "lxc.rootfs.path = overlay:/low:/up" in lines
    assert "lxc.rootfs.options = userxattr" in lines
    assert "lxc.net.0.hwaddr = 52:54:00:AA:BB:CC" in lines  # LXC's own spelling
    assert not any(line.startswith("lxc.net.0.ipv4.gateway") for line in lines)
    assert "lxc.start.auto = 0" in lines
    # no AppArmor on the host: the profile is only recorded, nesting sets no apparmor key
    assert "#phoenix.apparmor_profile = unconfined" in lines
    assert not any(line.startswith("lxc.apparmor") for line in lines)
    assert lines[-1] == "# phoenix.raw_lxc: the inventory's lxc_options follow"
    back = lxcconf.to_settings(lxcconf.parse("\n".join(lines)), GuestMeta.of(settings))
    assert settings.net is not None
    assert back.net == replace(settings.net, mac="52:54:00:AA:BB:CC")
    assert back.onboot is False and back.unprivileged is False


def test_dhcp_is_refused_with_the_way_out() -> None:
    assert SETTINGS.net is not None
    settings = replace(SETTINGS, net=replace(SETTINGS.net, ip="dhcp"))
    with pytest.raises(DriverError, match=r"guest 7: 'ip': 'dhcp' needs the Proxmox driver"):
        lxcconf.render(7, settings, RenderContext(Path("/r"), V1, True))


def test_unsupported_features_are_named_with_the_supported_ones() -> None:
    settings = replace(SETTINGS, features=(("mknod", "1"), ("bogus", "1"), ("fuse", "1")))
    with pytest.raises(DriverError) as caught:
        lxcconf.render(7, settings, RenderContext(Path("/r"), V1, True))
    assert str(caught.value) == (
        "guest 7: the lxc driver does not support feature(s) bogus, mknod "
        "(supported: fuse, keyctl, nesting)"
    )


def test_parsing_keeps_lxcs_reading_rules() -> None:
    """A later line wins, comments and lines without '=' are not keys, values keep their
    inner spaces, and only "\\n" ends a line (as in LXC)."""
    parsed = lxcconf.parse(
        "# a comment\n"
        "lxc.uts.name = first\n"
        "  lxc.uts.name=second  \n"
        "not a key\n"
        "\n"
        "#phoenix.gpus = 0,1\n"
        "lxc.idmap = u 0 100000 65536\n"
        "lxc.net.0.ipv4.address = 10.0.0.5/24 10.0.0.255\r\n"
        "# phoenix.raw_lxc: the inventory's lxc_options follow\n"
        "lxc.idmap = g 0 100000 65536\n"
        "lxc.uts.name = raw\n"
    )
    assert parsed.get("lxc.uts.name") == "second"
    assert parsed.get("missing") is None
    assert parsed.all("lxc.uts.name") == ["first", "second"]
    assert parsed.get("#phoenix.gpus") == "0,1"
    assert parsed.raw == [("lxc.idmap", "g 0 100000 65536"), ("lxc.uts.name", "raw")]
    assert parsed.idmap_values() == ["u 0 100000 65536", "g 0 100000 65536"]
    assert parsed.get("lxc.net.0.ipv4.address") == "10.0.0.5/24 10.0.0.255"
    assert len(parsed.managed) == 5


def test_settings_from_a_config_written_by_hand() -> None:
    """What a guest observes as when its config says less than Phoenix writes."""
    parsed = lxcconf.parse(
        "lxc.net.0.type = veth\n"
        "lxc.net.0.hwaddr = 52:54:00:aa:bb:cc\n"
        "lxc.start.order = x\n"
        "#phoenix.features = keyctl=1,fuse=0,mknod=yes\n"
        "#phoenix.gpus = 0,x,2\n"
        "# phoenix.raw_lxc: the inventory's lxc_options follow\n"
        "lxc.apparmor.profile = generated\n"
        "lxc.mount.auto = proc\n"
    )
    meta = GuestMeta(storage="tank", disk_gb=9, swap_mb=64, firewall_enabled=False,
                     firewall_rules=SETTINGS.firewall_rules)  # fmt: skip
    got = lxcconf.to_settings(parsed, meta)
    assert got.net == NetSettings("eth0", "", "", None, "52:54:00:AA:BB:CC")
    assert got.hostname == "" and got.memory_mb == 0 and got.cores == 0
    assert got.swap_mb == 64 and got.disk_gb == 9 and got.storage == "tank"
    assert got.boot_order == 0 and got.boot_delay == 0 and got.onboot is False
    assert got.features == (("fuse", "0"), ("keyctl", "1"), ("mknod", "1"))
    assert got.gpus == (0, 2)
    assert got.raw_lxc == (("lxc.mount.auto", "proc"),)
    assert got.firewall_enabled is False and got.firewall_rules == ()
    assert got.unprivileged is False
    nested = lxcconf.parse("lxc.include = /usr/share/lxc/config/nesting.conf\n")
    assert lxcconf.to_settings(nested, meta).features == (("nesting", "1"),)
    declared = lxcconf.parse("#phoenix.features = nesting=1\n")  # the include is gone
    assert lxcconf.to_settings(declared, meta).features == (("nesting", "0"),)
    no_mac = lxcconf.parse("lxc.net.0.type = veth\nlxc.net.0.name = eth1\n")
    net = lxcconf.to_settings(no_mac, meta).net
    assert net is not None and net.mac is None and net.name == "eth1"


@pytest.mark.parametrize(
    ("config", "spec"),
    [
        ("", None),
        ("lxc.rootfs.path = /srv/7\n", lxcconf.RootfsSpec(Path("/srv/7"))),
        ("lxc.rootfs.path = dir:/a:b\n", lxcconf.RootfsSpec(Path("/a:b"))),
        (
            "lxc.rootfs.path = overlay:/low:er:/up\nlxc.rootfs.options = userxattr\n",
            lxcconf.RootfsSpec(Path("/up"), Path("/low:er"), "userxattr"),
        ),
        ("lxc.rootfs.path = overlay:/low:/up\n", lxcconf.RootfsSpec(Path("/up"), Path("/low"))),
    ],
)
def test_the_rootfs_a_config_names(config: str, spec: lxcconf.RootfsSpec | None) -> None:
    found = lxcconf.rootfs_spec(lxcconf.parse(config))
    assert found == spec
    if found is not None:
        assert found.linked is (found.lower is not None)


@pytest.mark.parametrize("value", ["overlay:/up", "overlay::/up", "overlay:/low:"])
def test_an_unreadable_overlay_is_refused(value: str) -> None:
    with pytest.raises(DriverError, match="unreadable overlay rootfs"):
        lxcconf.rootfs_spec(lxcconf.parse(f"lxc.rootfs.path = {value}\n"))


@pytest.mark.parametrize(
    "text", ['["a list"]', '{"firewall_rules": [{"nope": 1}]}', '{"firewall_rules": ["x"]}']
)
def test_a_damaged_guest_record_is_a_parse_error_naming_it(text: str) -> None:
    with pytest.raises(ParseError, match=r"^/x/phoenix.json: not a Phoenix guest record"):
        GuestMeta.from_json(text, "/x/phoenix.json")


def test_a_guest_record_keeps_every_field_and_ignores_unknown_ones() -> None:
    meta = GuestMeta.of(SETTINGS, template=True, source="900@s")
    data = json.loads(meta.to_json())
    assert data == {
        "storage": "local-lvm",
        "disk_gb": 16,
        "swap_mb": 512,
        "firewall_enabled": True,
        "firewall_rules": [
            {"direction": "in", "action": "ACCEPT", "source": "10.0.0.10", "dest": None,
             "proto": "tcp", "port": "443", "comment": None}
        ],
        "template": True,
        "template_source": "900@s",
    }  # fmt: skip
    assert GuestMeta.from_json(json.dumps({**data, "later": 1})) == meta
    assert GuestMeta.from_json("{}") == GuestMeta()

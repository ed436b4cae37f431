"""LXC config render/parse round trip: a converged guest must diff to nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, GuestSettings, NetSettings
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, RenderContext
from phoenix.errors import DriverError
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

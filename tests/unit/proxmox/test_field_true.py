"""Edits that keep every line Phoenix does not own, on a fake node that keeps what Proxmox
keeps: `pct set --net0`/`--mpN` replace the whole value (pve-container
`src/PVE/LXC/Config.pm`, `update_pct_config`), the `.fw` file is the administrator's too
(pve-firewall `src/PVE/Firewall.pm` reads ipsets, aliases, groups, macros and options
Phoenix never writes), `devN` entries are deleted only by `--delete`, and a guest without
`startup` order starts after every ordered one (pve-manager `PVE/API2/Nodes.pm`,
`get_start_stop_list`: `order // LONG_MAX`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, GuestSettings, MountSettings, NetSettings
from phoenix.drivers.proxmox import firewall
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.drivers.proxmox.properties import parse_property_string
from tests.unit.proxmox.conftest import data
from tests.unit.proxmox.fakenode import FakeNode, options

CONF_960 = data("conf_960_vlan_gpu_bind.conf")
FW_960 = data("fw_960_custom.fw")
TO_VLLM = FirewallRule("in", "ACCEPT", source="10.0.0.153", proto="tcp", port="8000")
NET0_KEPT = ("tag=20", "mtu=9000", "rate=50", "ip6=fd00::60/64", "gw6=fd00::1", "type=veth")

# What the original tool's inventory says of guest 960 (no gpu_assignment: the default).
DESIRED_960 = GuestSettings(
    hostname="llm",
    memory_mb=8192,
    swap_mb=512,
    cores=4,
    disk_gb=32,
    storage="local-zfs",
    unprivileged=True,
    net=NetSettings("eth0", "vmbr0", "10.0.0.60/24", "10.0.0.1"),
    onboot=True,
    firewall_enabled=True,
    firewall_rules=(TO_VLLM,),
    mounts=(MountSettings("/models", host_path="/srv/models"),),
)


def node_with_960(tmp_path: Path) -> FakeNode:
    node = FakeNode(tmp_path / "node")
    node.put_conf(960, CONF_960)
    node.path("/etc/pve/firewall").mkdir(parents=True)
    node.path("/etc/pve/firewall/960.fw").write_text(FW_960)
    node.path("/srv/models").mkdir(parents=True)
    for index in (0, 1):
        node.add_device(f"/dev/nvidia{index}")
    node.running.add(960)
    return node


def driver_for(node: FakeNode, tmp_path: Path) -> ProxmoxDriver:
    """A new Phoenix process: the ownership record is read back from the state dir."""
    owned = OwnedRaw(tmp_path / "state" / "proxmox-owned-raw.json")
    return ProxmoxDriver(node, "localhost", sleep=lambda _: None, owned=owned)


def converge(driver: ProxmoxDriver, ctid: int, desired: GuestSettings) -> frozenset[str]:
    seen = driver.observe(ctid)
    assert seen.settings is not None
    changed = frozenset(desired.diff(seen.settings)) - {"disk_gb"}
    if changed:
        driver.configure(ctid, desired, changed)
    driver.resize(ctid, desired.disk_gb)
    return changed


def in_order(lines: list[str], text: str) -> list[str]:
    """The lines of `lines` not found in `text` in the same order (a subsequence check)."""
    rest = text.splitlines()
    missing = []
    for line in lines:
        if line in rest:
            rest = rest[rest.index(line) + 1 :]
        else:
            missing.append(line)
    return missing


def net0(node: FakeNode, ctid: int) -> str:
    conf = node.conf(ctid)
    assert conf is not None
    return options(conf.main)["net0"]


def test_a_memory_change_keeps_the_vlan_tag_and_every_net0_key(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    driver = driver_for(node, tmp_path)
    driver.configure(
        960, dataclasses.replace(DESIRED_960, memory_mb=16384), frozenset({"memory_mb"})
    )
    kept = net0(node, 960).split(",")
    assert [key for key in NET0_KEPT if key not in kept] == []
    assert parse_property_string(net0(node, 960))["hwaddr"] == "52:54:00:12:34:56"


def test_a_rule_change_keeps_every_fw_line_phoenix_does_not_own(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    driver = driver_for(node, tmp_path)
    more = FirewallRule("in", "ACCEPT", source="10.0.0.153", proto="tcp", port="8080")
    wanted = dataclasses.replace(DESIRED_960, firewall_rules=(TO_VLLM, more))
    driver.configure(960, wanted, frozenset({"firewall_rules"}))
    text = node.path("/etc/pve/firewall/960.fw").read_text()
    theirs = [ln for ln in FW_960.splitlines() if ln != firewall.render_rule(TO_VLLM)]
    assert in_order(theirs, text) == []
    assert "IN ACCEPT -source 10.0.0.153 -p tcp -dport 8080" in text.splitlines()
    # The rule Phoenix dropped goes; the administrator's look-alike with -i stays.
    driver.configure(960, DESIRED_960, frozenset({"firewall_rules"}))
    text = node.path("/etc/pve/firewall/960.fw").read_text()
    assert "8080" not in text and "IN ACCEPT -i net0 -p tcp -dport 8001" in text
    assert text == FW_960.replace("policy_in: DROP\n", "policy_in: DROP\npolicy_out: ACCEPT\n")


def test_rules_phoenix_does_not_own_are_not_its_settings() -> None:
    parsed = firewall.parse(FW_960)
    assert parsed.enabled and parsed.rules == (TO_VLLM,)


def test_switching_the_firewall_off_keeps_the_file_but_enable(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    driver_for(node, tmp_path).configure(
        960,
        dataclasses.replace(DESIRED_960, firewall_enabled=False, firewall_rules=()),
        frozenset({"firewall_enabled", "firewall_rules"}),
    )
    text = node.path("/etc/pve/firewall/960.fw").read_text()
    assert "enable: 0" in text.splitlines()
    # Phoenix owns only the rule it was asked for: with no record of it, the rule stays.
    assert in_order([ln for ln in FW_960.splitlines() if ln != "enable: 1"], text) == []


def test_gpu_entries_phoenix_never_wrote_are_never_deleted(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    driver = driver_for(node, tmp_path)
    seen = driver.observe(960)
    assert seen.settings is not None and seen.settings.gpus == ()  # not Phoenix's: not drift
    driver.configure(960, DESIRED_960, frozenset({"gpus"}))
    conf = node.conf_text(960)
    assert "dev0: /dev/nvidia0" in conf and "dev1: /dev/nvidia1" in conf
    assert not any("--delete" in c for c in node.mutations())


def test_gpu_entries_the_inventory_named_go_when_it_stops_naming_them(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    for extra in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"):
        node.add_device(f"/dev/{extra}")
    driver = driver_for(node, tmp_path)
    with_gpu1 = dataclasses.replace(DESIRED_960, gpus=(1,))
    driver.configure(960, with_gpu1, frozenset({"gpus"}))
    seen = driver.observe(960)
    assert seen.settings is not None and seen.settings.gpus == (1,)
    driver = driver_for(node, tmp_path)
    driver.configure(960, DESIRED_960, frozenset({"gpus"}))
    conf = node.conf_text(960)
    assert "dev0: /dev/nvidia0" in conf  # never Phoenix's
    assert "/dev/nvidia1" not in conf and "/dev/nvidiactl" not in conf


@pytest.mark.parametrize(
    ("order", "delay", "startup"),
    [(0, 0, None), (2, 0, "order=2"), (0, 30, "up=30"), (3, 5, "order=3,up=5")],
)
def test_startup_carries_only_what_the_inventory_sets(
    tmp_path: Path, order: int, delay: int, startup: str | None
) -> None:
    node = node_with_960(tmp_path)
    wanted = dataclasses.replace(DESIRED_960, boot_order=order, boot_delay=delay)
    driver_for(node, tmp_path).configure(960, wanted, frozenset({"boot_order", "boot_delay"}))
    conf = node.conf(960)
    assert conf is not None and options(conf.main).get("startup") == startup


def test_an_order_phoenix_wrote_goes_when_the_inventory_drops_it(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    node.put_conf(960, CONF_960.replace("swap: 512", "startup: order=0,up=0\nswap: 512"))
    driver_for(node, tmp_path).configure(960, DESIRED_960, frozenset({"memory_mb"}))
    conf = node.conf(960)
    assert conf is not None and "startup" not in options(conf.main)


def test_a_rewritten_mount_keeps_the_keys_phoenix_does_not_write(tmp_path: Path) -> None:
    node = node_with_960(tmp_path)
    read_only = dataclasses.replace(
        DESIRED_960, mounts=(MountSettings("/models", host_path="/srv/models", read_only=True),)
    )
    driver = driver_for(node, tmp_path)
    driver.configure(960, read_only, frozenset({"mounts"}))
    conf = node.conf(960)
    assert conf is not None
    assert options(conf.main)["mp0"] == "/srv/models,mp=/models,ro=1,backup=0,replicate=0"


def test_adopted_vlan_gpu_bind_guest_resized_and_converged_twice_loses_nothing(
    tmp_path: Path,
) -> None:
    """The original tool's guest: VLAN tag, a custom .fw, two NVIDIA devN entries, a bind
    mount. Adopted, resized and re-converged twice: every line it had is still there and the
    second run changes nothing."""
    node = node_with_960(tmp_path)
    resized = dataclasses.replace(DESIRED_960, disk_gb=40, memory_mb=12288)
    converge(driver_for(node, tmp_path), 960, resized)
    conf = node.conf_text(960)
    for line in (
        "dev0: /dev/nvidia0",
        "dev1: /dev/nvidia1",
        "lxc.cgroup2.devices.allow: c 195:* rwm",
    ):
        assert line in conf.splitlines()
    assert options(node.conf(960).main)["mp0"] == "/srv/models,mp=/models,backup=0,replicate=0"  # type: ignore[union-attr]
    assert [key for key in NET0_KEPT if key not in net0(node, 960).split(",")] == []
    assert "size=40G" in options(node.conf(960).main)["rootfs"]  # type: ignore[union-attr]
    assert "startup" not in conf
    fw = node.path("/etc/pve/firewall/960.fw").read_text()
    assert in_order(FW_960.splitlines(), fw) == []
    for _ in range(2):  # two more runs, each a new process reading the record back
        before = len(node.mutations())
        assert converge(driver_for(node, tmp_path), 960, resized) == frozenset()
        assert node.mutations()[before:] == []
    assert node.conf_text(960) == conf
    assert node.path("/etc/pve/firewall/960.fw").read_text() == fw

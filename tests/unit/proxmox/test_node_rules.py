"""The findings of issue 12, each on a fake node that enforces the rule Proxmox applies."""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, GuestSettings
from phoenix.drivers.proxmox import pvesh
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import DriverError, PhoenixError
from tests.unit.proxmox.fakenode import FakeNode

ALL = frozenset(f.name for f in fields(GuestSettings))
TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
STORE = "local-zfs"
OPEN_WEB = (FirewallRule("in", "ACCEPT", proto="tcp", port="80,443"),)


def settings(**changes: object) -> GuestSettings:
    base = GuestSettings(
        hostname="web",
        memory_mb=1024,
        swap_mb=512,
        cores=2,
        disk_gb=8,
        storage=STORE,
        unprivileged=True,
        net=None,
        raw_lxc=(("lxc.mount.auto", "sys:rw"),),
        apparmor_profile="unconfined",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path)


def driver_on(node: FakeNode) -> ProxmoxDriver:
    return ProxmoxDriver(node, "localhost", sleep=lambda _: None)


def test_fresh_node_without_firewall_dir_gets_the_guest_firewall(node: FakeNode) -> None:
    """Finding 2: pmxcfs has no /etc/pve/firewall until a firewall setting is saved."""
    assert not node.path("/etc/pve/firewall").exists()
    driver_on(node).create(101, TEMPLATE, settings(firewall_enabled=True, firewall_rules=OPEN_WEB))
    assert "IN ACCEPT -p tcp -dport 80,443" in node.path("/etc/pve/firewall/101.fw").read_text()


def test_firewall_write_is_checked_against_what_was_read(node: FakeNode) -> None:
    """Finding 12: the .fw write had no digest check and could clobber a GUI edit."""
    driver = driver_on(node)
    wanted = settings(firewall_enabled=True, firewall_rules=OPEN_WEB)
    driver.create(101, TEMPLATE, wanted)
    fw = node.path("/etc/pve/firewall/101.fw")
    fw.write_text(fw.read_text() + "IN ACCEPT -p tcp -dport 22\n")  # edited in the GUI
    real_read = node.run

    def edit_between_read_and_write(argv, **kw):  # type: ignore[no-untyped-def]
        result = real_read(argv, **kw)
        if argv[:2] == ["cat", "/etc/pve/firewall/101.fw"] or tuple(argv[:2]) == (
            "cat",
            "/etc/pve/firewall/101.fw",
        ):
            fw.write_text(fw.read_text() + "IN ACCEPT -p tcp -dport 8006\n")
        return result

    driver.runner = type("R", (), {"run": staticmethod(edit_between_read_and_write)})()
    more = FirewallRule("in", "ACCEPT", proto="tcp", port="8080")
    wanted = dataclasses.replace(wanted, firewall_rules=(*OPEN_WEB, more))
    with pytest.raises(PhoenixError, match="changed since Phoenix read it"):
        driver.configure(101, wanted, frozenset({"firewall_rules"}))
    assert "8006" in fw.read_text()


def test_template_with_snapshots_is_refused_before_anything_runs(node: FakeNode) -> None:
    """Finding 3: `pct template` refuses a container with snapshots."""
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings())
    driver.snapshot(900, "final-form")
    before = len(node.mutations())
    with pytest.raises(DriverError, match=r"has snapshots \(final-form\).*not both"):
        driver.mark_template(900)
    assert node.mutations()[before:] == []


def test_snapshot_on_storage_without_snapshots_is_explained(node: FakeNode) -> None:
    """Finding 4: dir/NFS/CIFS/LVM-thick storage cannot snapshot a container."""
    node.storages["local"] = "dir"
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings(storage="local"))
    with pytest.raises(
        PhoenixError, match=r"cannot be snapshotted.*on storage that snapshots.*ZFS, LVM-thin"
    ):
        driver.snapshot(900, "final-form")


def test_clone_with_other_unprivileged_is_refused_before_cloning(node: FakeNode) -> None:
    """Finding 5: a clone copies `unprivileged` from its source; read-only afterwards."""
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings(unprivileged=True))
    before = len(node.mutations())
    with pytest.raises(DriverError, match=r"must be privileged.*clone source 900 is unprivileged"):
        driver.clone(900, 101, None, settings(unprivileged=False, disk_gb=16))
    assert node.mutations()[before:] == []
    assert node.conf(101) is None


def test_clone_smaller_than_its_source_is_refused_before_cloning(node: FakeNode) -> None:
    """Finding 6: `pct resize` cannot shrink; the clone was left half-done."""
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings(disk_gb=16))
    before = len(node.mutations())
    with pytest.raises(DriverError, match=r"8 GiB disk.*source 900 has 16 GiB.*at least 16"):
        driver.clone(900, 101, None, settings(disk_gb=8))
    assert node.mutations()[before:] == []


@pytest.mark.parametrize("name", ["current", "vzdump"])
def test_reserved_snapshot_names_are_refused(node: FakeNode, name: str) -> None:
    """Finding 7."""
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings())
    with pytest.raises(DriverError, match=f"'{name}' is reserved by Proxmox"):
        driver.snapshot(900, name)
    assert not any(c[:2] == ("pct", "snapshot") for c in node.calls)


def test_writes_to_a_locked_guest_are_refused(node: FakeNode) -> None:
    """Finding 12: the raw-key file write ignored `lock: backup` (pct set would refuse)."""
    driver = driver_on(node)
    driver.create(101, TEMPLATE, settings())
    node.put_conf(101, node.conf_text(101).replace("arch: amd64", "arch: amd64\nlock: backup"))
    before_text = node.conf_text(101)
    before = len(node.mutations())
    with pytest.raises(DriverError, match=r"locked \(backup\).*changes nothing"):
        driver.configure(101, settings(raw_lxc=()), frozenset({"raw_lxc", "memory_mb"}))
    assert node.mutations()[before:] == []
    assert node.conf_text(101) == before_text


def test_resize_whose_worker_failed_is_an_error(node: FakeNode) -> None:
    """Finding 14: `pct resize` exits 0 when its worker task fails."""
    driver = driver_on(node)
    driver.create(101, TEMPLATE, settings(disk_gb=8))
    node.resize_worker_fails = True
    with pytest.raises(DriverError, match=r"exited 0 but the disk is 8 GiB, not 20 GiB"):
        driver.resize(101, 20)


def test_template_whose_worker_failed_is_an_error(node: FakeNode) -> None:
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings())
    node.template_worker_fails = True
    with pytest.raises(DriverError, match=r"exited 0 but the guest is not a template"):
        driver.mark_template(900)


def test_template_and_resize_that_work_are_confirmed(node: FakeNode) -> None:
    driver = driver_on(node)
    driver.create(900, TEMPLATE, settings())
    driver.resize(900, 12)
    driver.mark_template(900)
    assert "size=12G" in node.conf_text(900) and "template: 1" in node.conf_text(900)


@pytest.mark.parametrize(
    ("version", "key", "says"),
    [
        ("8.4.1", "lxc.init.cwd", "pve-container 5.2.7 does not know this key"),
        ("8.4.1", "lxc.environment.runtime", "pve-container 5.2.7 does not know this key"),
        ("9.0.5", "lxc.environment.hooks", "kept from pve-container 6.0.15 on"),
        ("9.0.5", "lxc.environment.runtime", "kept from pve-container 6.0.15 on"),
        ("9.1.3", "lxc.environment.runtime", "9.1 moves it into the container's `env`"),
    ],
)
def test_raw_keys_the_version_does_not_keep_are_refused(
    tmp_path: Path, version: str, key: str, says: str
) -> None:
    """Finding 11: PVE 8 drops the key, PVE 9.0 (pve-container before 6.0.15) drops
    `lxc.environment.runtime`/`.hooks`, PVE 9.1 moves the first into env: drift and a restart
    on every run. Refused with the reason instead."""
    node = FakeNode(tmp_path, version=version)
    wanted = settings(raw_lxc=((key, "x=1" if "environment" in key else "/srv"),))
    with pytest.raises(DriverError, match=says):
        driver_on(node).create(101, TEMPLATE, wanted)


@pytest.mark.parametrize(
    ("version", "container", "key"),
    [
        ("9.0.5", "6.0.15", "lxc.environment.hooks"),  # pve-container upgraded alone
        ("9.0.5", "6.0.9", "lxc.init.uid"),
        ("9.1.3", "6.0.15", "lxc.init.groups"),
    ],
)
def test_raw_keys_go_by_the_nodes_pve_container_release(
    tmp_path: Path, version: str, container: str, key: str
) -> None:
    node = FakeNode(tmp_path, version=version, container=container)
    wanted = settings(raw_lxc=((key, "1"),))
    driver = driver_on(node)
    driver.create(101, TEMPLATE, wanted)
    seen = driver.observe(101)
    assert seen.settings is not None and wanted.diff(seen.settings) == {}


def test_raw_keys_pve9_keeps_converge(tmp_path: Path) -> None:
    node = FakeNode(tmp_path, version="9.1.3")
    wanted = settings(raw_lxc=(("lxc.init.cwd", "/srv"),))
    driver = driver_on(node)
    driver.create(101, TEMPLATE, wanted)
    seen = driver.observe(101)
    assert seen.settings is not None and wanted.diff(seen.settings) == {}


def test_interfaces_null_and_current_field(node: FakeNode) -> None:
    """Smaller: pvesh prints `null` for no interfaces; `inet` is deprecated."""
    assert pvesh.parse_interfaces(None) == ()
    current = [
        {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "inet"}]},
        {
            "name": "eth0",
            "ip-addresses": [
                {"ip-address": "10.0.0.5", "ip-address-type": "inet", "prefix": 24},
                {"ip-address": "fe80::1", "ip-address-type": "inet6", "prefix": 64},
            ],
        },
    ]
    assert pvesh.parse_interfaces(current) == ("10.0.0.5",)


def test_offline_clone_to_the_same_size_prints_no_resize() -> None:
    """Smaller: `pct resize` to the size a clone already has dies on a node."""
    from phoenix.drivers.proxmox.preview import Preview

    preview = Preview()
    preview.create(900, TEMPLATE, settings(disk_gb=16))
    preview.clone(900, 101, None, settings(disk_gb=16))
    preview.clone(900, 102, None, settings(disk_gb=32))
    resizes = [c.argv for c in preview.commands if c.argv[:2] == ("pct", "resize")]
    assert resizes == [("pct", "resize", "102", "rootfs", "32G")]


def test_exec_drops_the_callers_environment_where_the_node_can(tmp_path: Path) -> None:
    """Smaller: `pct exec` keeps the caller's environment by default (--keep-env 1)."""
    node = FakeNode(tmp_path, version="8.4.1")
    driver = driver_on(node)
    driver.create(101, TEMPLATE, settings())
    node.running.add(101)
    driver.exec(101, ["true"])
    assert node.calls[-1] == (
        "pct",
        "exec",
        "101",
        "--keep-env",
        "0",
        "--",
        "env",
        "HOME=/root",
        "LANG=C.UTF-8",
        "true",
    )


def test_firewall_port_range_with_a_dash_is_refused(node: FakeNode) -> None:
    """Finding 8: pve-firewall only reads a:b; `8000-8010` skips the rule (port closed)."""
    rules = (FirewallRule("in", "ACCEPT", proto="tcp", port="8000-8010"),)
    with pytest.raises(DriverError, match=r"'8000-8010'.*'8000:8010'"):
        driver_on(node).create(101, TEMPLATE, settings(firewall_enabled=True, firewall_rules=rules))


def test_firewall_rule_with_more_than_15_ports_is_refused(node: FakeNode) -> None:
    port = ",".join(str(8000 + i) for i in range(14)) + ",9000:9010"
    rules = (FirewallRule("in", "ACCEPT", proto="tcp", port=port),)
    with pytest.raises(DriverError, match=r"names 16 ports.*15 per rule"):
        driver_on(node).create(101, TEMPLATE, settings(firewall_enabled=True, firewall_rules=rules))


def test_node_commands_run_in_the_c_locale(node: FakeNode) -> None:
    """Smaller: "No such file" was matched in the locale's language."""
    seen: list[object] = []
    real = node.run

    def spy(argv, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw.get("env"))
        return real(argv, **kw)

    driver = ProxmoxDriver(type("R", (), {"run": staticmethod(spy)})(), "localhost")
    driver.observe(101)
    assert seen and all(env == {"LC_ALL": "C"} for env in seen)

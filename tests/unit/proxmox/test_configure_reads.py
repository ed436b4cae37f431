"""The configure half of the Proxmox driver: it reads from the node only what the change
needs, and when the node does not do what `pct` said it did (a resize worker that failed,
a guest or volume gone under it) the error says what happened and where to look."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, GuestSettings, MountSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin
from tests.unit.proxmox.fakenode import FakeNode

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
BASE = GuestSettings("web", 1024, 512, 2, 8, "local-zfs", True, None)
VOLUME = MountSettings("/data", pool="local-zfs", size_gb=4)
WAY_OUT = "the node's resize task failed (see its task log; is the storage full?)"


@dataclasses.dataclass
class Meanwhile:
    """The node, where something else happens right after a command `when` picks."""

    node: FakeNode
    when: Callable[[tuple[str, ...]], bool]
    then: Callable[[], None]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        result = self.node.run(argv, input=input, env=env, timeout=timeout)
        if self.when(tuple(argv)):
            self.then()
        return result


def created(tmp_path: Path, settings: GuestSettings = BASE) -> FakeNode:
    node = FakeNode(tmp_path)
    ProxmoxDriver(node, "localhost", sleep=lambda _: None).create(100, TEMPLATE, settings)
    return node


def fresh_driver(runner: FakeNode | Meanwhile) -> ProxmoxDriver:
    """A new Phoenix process: nothing asked of the node yet."""
    return ProxmoxDriver(runner, "localhost", sleep=lambda _: None)


def resize(argv: tuple[str, ...]) -> bool:
    return argv[:2] == ("pct", "resize")


def test_a_root_disk_resize_whose_worker_failed_names_the_way_out(tmp_path: Path) -> None:
    node = created(tmp_path)
    node.resize_worker_fails = True
    with pytest.raises(DriverError) as raised:
        fresh_driver(node).resize(100, 12)
    assert str(raised.value) == (
        f"guest 100: `pct resize 100 rootfs 12G` exited 0 but the disk is 8 GiB, not 12 GiB: "
        f"{WAY_OUT}"
    )


def test_a_guest_gone_during_its_resize_is_said_gone(tmp_path: Path) -> None:
    node = created(tmp_path)
    gone = Meanwhile(node, resize, lambda: node.conf_path(100).unlink())
    with pytest.raises(DriverError, match=r"exited 0 but the disk is gone, not 12 GiB: "):
        fresh_driver(gone).resize(100, 12)


def test_a_volume_resize_whose_worker_failed_names_the_way_out(tmp_path: Path) -> None:
    wanted = dataclasses.replace(BASE, mounts=(VOLUME,))
    node = created(tmp_path, wanted)
    node.resize_worker_fails = True
    grown = dataclasses.replace(wanted, mounts=(dataclasses.replace(VOLUME, size_gb=6),))
    with pytest.raises(DriverError) as raised:
        fresh_driver(node).configure(100, grown, frozenset({"mounts"}))
    assert str(raised.value) == (
        f"guest 100: `pct resize 100 mp0 6G` exited 0 but mp0 is 4 GiB, not 6 GiB: {WAY_OUT}"
    )


def test_a_volume_gone_during_its_resize_is_said_gone(tmp_path: Path) -> None:
    wanted = dataclasses.replace(BASE, mounts=(VOLUME,))
    node = created(tmp_path, wanted)

    def detach() -> None:
        node.put_conf(100, re.sub(r"(?m)^mp0:.*\n", "", node.conf_text(100)))

    grown = dataclasses.replace(wanted, mounts=(dataclasses.replace(VOLUME, size_gb=6),))
    with pytest.raises(DriverError, match=r"exited 0 but mp0 is gone, not 6 GiB: "):
        fresh_driver(Meanwhile(node, resize, detach)).configure(100, grown, frozenset({"mounts"}))


def test_a_config_gone_before_its_raw_keys_are_read_is_an_error_that_says_so(
    tmp_path: Path,
) -> None:
    node = created(tmp_path)
    conf = node.conf_path(100)
    text = conf.read_text()

    def config_read(argv: tuple[str, ...]) -> bool:
        return argv[:2] == ("pvesh", "get") and argv[2].endswith("/lxc/100/config")

    gone = Meanwhile(node, config_read, lambda: conf.unlink(missing_ok=True))
    wanted = dataclasses.replace(BASE, raw_lxc=(("lxc.apparmor.profile", "unconfined"),))
    with pytest.raises(DriverError) as raised:
        fresh_driver(gone).configure(100, wanted, frozenset({"raw_lxc"}))
    assert str(raised.value) == (
        "guest 100: /etc/pve/lxc/100.conf does not exist; create the guest first"
    )
    assert not conf.exists() and text  # nothing written in its place


def test_a_firewall_change_reads_only_the_config_and_the_firewall_file(tmp_path: Path) -> None:
    node = created(tmp_path)
    node.path("/etc/pve/firewall").mkdir(parents=True, exist_ok=True)
    rule = FirewallRule("in", "ACCEPT", proto="tcp", port="22")
    wanted = dataclasses.replace(BASE, firewall_enabled=True, firewall_rules=(rule,))
    driver = fresh_driver(node)
    before = len(node.calls)
    driver.configure(100, wanted, frozenset({"firewall_enabled", "firewall_rules"}))
    reads = [c for c in node.calls[before:] if c not in node.mutations()]
    assert not any("/version" in c or c[0] == "pveversion" for c in reads), reads
    assert ("cat", "/etc/pve/firewall/100.fw") in reads
    assert not any(c == ("cat", "/etc/pve/lxc/100.conf") for c in reads), reads

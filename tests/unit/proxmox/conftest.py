"""Helpers for Proxmox driver tests: the seed inventory, recorded pvesh output, a node."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.desired import desired_settings
from phoenix.runners.recorded import RecordedRunner
from tests.conftest import shared_fixture

DATA = Path(__file__).parent / "data"
NODE = "pve"


def data(name: str) -> str:
    return (DATA / name).read_text()


def pvesh(path: str, *options: str) -> list[str]:
    return ["pvesh", "get", path, *options, "--output-format", "json"]


def config_argv(ctid: int) -> list[str]:
    return pvesh(f"/nodes/{NODE}/lxc/{ctid}/config", "--current", "1")


def status_argv(ctid: int) -> list[str]:
    return pvesh(f"/nodes/{NODE}/lxc/{ctid}/status/current")


def snapshot_argv(ctid: int) -> list[str]:
    return pvesh(f"/nodes/{NODE}/lxc/{ctid}/snapshot")


def interfaces_argv(ctid: int) -> list[str]:
    return pvesh(f"/nodes/{NODE}/lxc/{ctid}/interfaces")


def guest_on_node(
    runner: RecordedRunner,
    ctid: int,
    config: str,
    status: str,
    snapshots: str = "snapshot_none.json",
    fw: str | None = None,
) -> None:
    """Make `runner` answer pvesh/cat like a node holding this guest (PVE 8.4)."""
    runner.respond(pvesh("/version"), '{"version": "8.4.1", "release": "8.4"}')
    runner.respond(["pveversion", "--verbose"], data("pveversion_verbose.txt"))
    runner.respond(config_argv(ctid), data(config))
    runner.respond(status_argv(ctid), data(status))
    runner.respond(snapshot_argv(ctid), data(snapshots))
    runner.respond(interfaces_argv(ctid), data("interfaces_101.json"))
    if fw is None:
        runner.respond(
            ["cat", f"/etc/pve/firewall/{ctid}.fw"],
            returncode=1,
            stderr=f"cat: /etc/pve/firewall/{ctid}.fw: No such file or directory\n",
        )
    else:
        runner.respond(["cat", f"/etc/pve/firewall/{ctid}.fw"], data(fw))


def missing_on_node(runner: RecordedRunner, ctid: int) -> None:
    err = f"Configuration file 'nodes/{NODE}/lxc/{ctid}.conf' does not exist\n"
    for argv in (config_argv(ctid), status_argv(ctid), snapshot_argv(ctid)):
        runner.respond(argv, returncode=2, stderr=err)
    runner.respond(pvesh("/cluster/resources", "--type", "vm"), "[]")  # nowhere in the cluster


@pytest.fixture(scope="session")
def seed() -> Inventory:
    return load_inventory(shared_fixture("phoenix-etc-seed"))


@pytest.fixture(scope="session")
def s900(seed: Inventory) -> GuestSettings:
    return desired_settings(seed, 900)


@pytest.fixture(scope="session")
def s101(seed: Inventory) -> GuestSettings:
    return desired_settings(seed, 101)


@pytest.fixture
def runner() -> RecordedRunner:
    return RecordedRunner()


@pytest.fixture
def driver(runner: RecordedRunner) -> ProxmoxDriver:
    return ProxmoxDriver(runner, NODE, sleep=lambda _: None, version=(8, 4))


# The rule of fw_101.fw, written by Phoenix for 101's inventory entry.
FW_101_RULES = ["IN ACCEPT -p tcp -dport 80,443"]


def owning(
    driver: ProxmoxDriver,
    ctid: int,
    lines: list[tuple[str, str]],
    fw_rules: list[str] | None = None,
) -> ProxmoxDriver:
    """Record `lines` (and `.fw` rules: 101's by default) as written by Phoenix earlier (a
    guest it already manages)."""
    driver.owned.set(ctid, lines)
    driver.owned.set_fw_rules(ctid, FW_101_RULES if fw_rules is None and ctid == 101 else [])
    return driver

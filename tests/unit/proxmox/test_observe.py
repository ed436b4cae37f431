"""Observed state from recorded pvesh JSON: running, stopped, missing, locked; diffs."""

from __future__ import annotations

import dataclasses
import json

from phoenix.drivers.base import GuestSettings, NetSettings
from phoenix.drivers.proxmox import firewall, pvesh
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.runners.recorded import RecordedRunner
from tests.unit.proxmox.conftest import data, guest_on_node, missing_on_node, owning

WRITTEN_101 = [("lxc.apparmor.profile", "unconfined"), ("lxc.mount.auto", "sys:rw")]


def test_running_guest(driver: ProxmoxDriver, runner: RecordedRunner, s101: GuestSettings) -> None:
    guest_on_node(
        runner,
        101,
        "config_101_running.json",
        "status_101_running.json",
        "snapshot_101.json",
        fw="fw_101.fw",
    )
    seen = owning(driver, 101, WRITTEN_101).observe(101)
    assert seen.state == "running"
    assert seen.snapshots == ("pre-gateway",)
    assert seen.ip_addresses == ("10.0.0.153",)
    assert seen.locked is None and not seen.is_template
    assert seen.settings is not None
    assert seen.settings.net == NetSettings(
        "eth0", "vmbr0", "10.0.0.153/24", "10.0.0.1", "BC:24:11:5E:7A:01"
    )
    assert seen.settings.apparmor_profile == "unconfined"
    assert seen.settings.raw_lxc == (("lxc.mount.auto", "sys:rw"),)
    # Converged: the desired state (MAC "assign, then keep") diffs to nothing.
    assert s101.diff(seen.settings) == {}
    assert all(kind == "observe" for kind, _ in driver.log.entries)


def test_stopped_template_source(
    driver: ProxmoxDriver, runner: RecordedRunner, s900: GuestSettings
) -> None:
    guest_on_node(
        runner, 900, "config_900_stopped.json", "status_101_stopped.json", "snapshot_900.json"
    )
    seen = owning(driver, 900, [("lxc.apparmor.profile", "unconfined")]).observe(900)
    assert seen.state == "stopped" and seen.ip_addresses == ()
    assert seen.snapshots == ("final-form",)
    assert seen.settings is not None
    assert s900.diff(seen.settings) == {}
    # No interfaces query for a stopped guest.
    assert not any("interfaces" in " ".join(argv) for _, argv in driver.log.entries)


def test_missing_guest(driver: ProxmoxDriver, runner: RecordedRunner) -> None:
    missing_on_node(runner, 101)
    seen = driver.observe(101)
    assert seen.state == "missing" and seen.settings is None and not seen.exists


def test_missing_guest_500_form(driver: ProxmoxDriver, runner: RecordedRunner) -> None:
    runner.respond(
        ["pvesh", "get", "/nodes/pve/lxc/101/config"],
        returncode=255,
        stderr="500 Configuration file 'nodes/pve/lxc/101.conf' does not exist\n",
    )
    runner.respond(
        ["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"], "[]"
    )
    assert driver.observe(101).state == "missing"


def test_locked_guest(driver: ProxmoxDriver, runner: RecordedRunner, s101: GuestSettings) -> None:
    guest_on_node(runner, 101, "config_101_locked.json", "status_101_locked.json", fw="fw_101.fw")
    seen = owning(driver, 101, WRITTEN_101).observe(101)
    assert seen.locked == "backup" and seen.state == "running"
    assert seen.settings is not None and s101.diff(seen.settings) == {}


def test_drifted_guest_diffs_exactly_the_drift(s101: GuestSettings) -> None:
    facts = pvesh.parse_config(
        json.loads(data("config_101_drifted.json")), firewall.parse(data("fw_101.fw"))
    )
    assert s101.diff(facts.settings) == {
        "cores": (2, 4),
        "features": ((("keyctl", "1"), ("nesting", "1")), (("nesting", "1"),)),
    }


def test_firewall_needs_file_and_nic_flag(s101: GuestSettings) -> None:
    config = json.loads(data("config_101_running.json"))
    missing_file = s101.diff(pvesh.parse_config(config, None).settings)
    assert missing_file["firewall_enabled"] == (False, True)
    assert set(missing_file) == {"firewall_enabled", "firewall_rules"}
    config["net0"] = config["net0"].replace("firewall=1", "firewall=0")
    facts = pvesh.parse_config(config, firewall.parse(data("fw_101.fw")))
    assert set(s101.diff(facts.settings)) == {"firewall_enabled", "firewall_rules"}


def test_duplicated_raw_keys_show_as_drift(s101: GuestSettings) -> None:
    config = json.loads(data("config_101_running.json"))
    config["lxc"].append(["lxc.mount.auto", "sys:rw"])
    facts = pvesh.parse_config(config, firewall.parse(data("fw_101.fw")))
    assert set(s101.diff(facts.settings)) == {"raw_lxc"}


def test_snapshots_sorted_without_current() -> None:
    snaps = [*json.loads(data("snapshot_900.json")), {"name": "older", "snaptime": 1}]
    assert pvesh.parse_snapshots(snaps) == ("older", "final-form")


def test_unknown_mac_in_desired_state_matches_observed_mac(s101: GuestSettings) -> None:
    assert s101.net is not None and s101.net.mac is None
    pinned = dataclasses.replace(s101, net=dataclasses.replace(s101.net, mac="BC:24:11:00:00:01"))
    facts = pvesh.parse_config(
        json.loads(data("config_101_running.json")), firewall.parse(data("fw_101.fw"))
    )
    assert set(pinned.diff(facts.settings)) == {"net"}


def test_raw_lines_phoenix_did_not_write_are_not_its_settings(
    driver: ProxmoxDriver, runner: RecordedRunner, s101: GuestSettings
) -> None:
    """A guest Phoenix has not written raw keys to yet: its lines are not reported (so they
    are never drift to remove); the inventory's lines show as to be taken over."""
    guest_on_node(runner, 101, "config_101_running.json", "status_101_running.json", fw="fw_101.fw")
    seen = driver.observe(101)
    assert seen.settings is not None
    assert seen.settings.raw_lxc == () and seen.settings.apparmor_profile is None
    # So are its .fw rules: Phoenix takes them over (a write that changes no byte).
    assert set(s101.diff(seen.settings)) == {"raw_lxc", "apparmor_profile", "firewall_rules"}

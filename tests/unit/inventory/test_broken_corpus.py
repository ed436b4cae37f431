"""Every broken inventory under tests/inventories/broken fails validation with a clear,
located message, exit 1, and no traceback.

A case file replaces the LXC inventory of the minimal valid dir, or, when its name starts
with `hypervisor__` or `vm__`, the hypervisor config or the VM inventory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from tests.conftest import INVENTORIES

BROKEN = INVENTORIES / "broken"

# case -> (FILE: JSON.PATH, fragment of the message)
EXPECTED: dict[str, tuple[str, str]] = {
    "malformed_trailing_comma": (
        "phoenix_lxc_configs.json: $",
        "invalid JSON at line 17, column 9",
    ),
    "malformed_truncated": ("phoenix_lxc_configs.json: $", "invalid JSON at line 8, column 30"),
    "empty_file": ("phoenix_lxc_configs.json: $", "file is empty"),
    "whitespace_only": ("phoenix_lxc_configs.json: $", "file is empty"),
    "top_level_list": ("phoenix_lxc_configs.json: $", "expected a JSON object, got list"),
    "missing_lxc_configs": ("phoenix_lxc_configs.json: lxc_configs", "required field is missing"),
    "lxc_configs_is_list": (
        "phoenix_lxc_configs.json: lxc_configs",
        "expected an object keyed by CTID",
    ),
    "non_numeric_ctid": (
        "phoenix_lxc_configs.json: lxc_configs.gateway",
        "'gateway' is not a container id",
    ),
    "ctid_out_of_range": ("phoenix_lxc_configs.json: lxc_configs.42", "'42' is not a container id"),
    "duplicate_ctid_key": (
        "phoenix_lxc_configs.json: lxc_configs.101",
        "duplicate key '101' at lines 12 and 18 with different values",
    ),
    "memory_as_string": ("lxc_configs.101.memory_mb", "expected an integer, got '2048'"),
    "memory_huge": ("lxc_configs.101.memory_mb", "must be less than or equal to 16777216"),
    "cores_zero": ("lxc_configs.101.cores", "must be greater than or equal to 1, got 0"),
    "cores_boolean": ("lxc_configs.101.cores", "expected an integer, got true"),
    "name_shell_metacharacters": (
        "lxc_configs.101.name",
        "'gw; rm -rf /' is not a valid host name",
    ),
    "name_missing": ("lxc_configs.101.name", "required field is missing"),
    "ip_invalid_octet": ("lxc_configs.101.network_config.ip", "'10.0.0.300/24' is not an IPv4"),
    "ip_without_prefix": ("lxc_configs.101.network_config.ip", "needs a prefix length"),
    "gateway_outside_subnet": (
        "lxc_configs.101.network_config.gw",
        "gateway 192.168.1.1 is outside the guest's subnet 10.0.0.0/24",
    ),
    "duplicate_ip": ("lxc_configs.102.network_config.ip", "10.0.0.153 is also used by guest 101"),
    "duplicate_mac": (
        "lxc_configs.900.mac_address",
        "52:54:00:00:00:01 is also used by container 101",
    ),
    "mac_invalid": ("lxc_configs.102.mac_address", "is not a MAC address"),
    "clone_source_missing": (
        "lxc_configs.101.clone_from_ctid",
        "clone source 555 is not a container",
    ),
    "clone_source_not_template": (
        "lxc_configs.102.clone_from_ctid",
        "clone source 101 is neither a template",
    ),
    "dependency_cycle": ("lxc_configs.101", "dependency cycle: 101 -> 102 -> 101"),
    "dependency_cycle_via_clone": ("lxc_configs.101", "dependency cycle: 101 -> 900 -> 102 -> 101"),
    "dependency_unknown": ("lxc_configs.102.dependencies[1]", "depends on 777"),
    "dependency_on_self": ("lxc_configs.102.dependencies[0]", "cannot depend on itself"),
    "application_script_absolute": ("lxc_configs.102.application_script", "is absolute"),
    "application_script_escapes": (
        "lxc_configs.102.application_script",
        "escapes the scripts folder",
    ),
    "pct_option_unknown": (
        "lxc_configs.102.pct_options[1]",
        "'superpowers' is not a container feature Proxmox knows",
    ),
    "pct_option_bad_value": ("lxc_configs.102.pct_options[0]", "nesting='maybe': expected 0 or 1"),
    "lxc_option_malformed": ("lxc_configs.102.lxc_options[0]", "is not a raw LXC option"),
    "firewall_bad_action": (
        "lxc_configs.102.firewall.rules[0].action",
        "expected 'ACCEPT', 'DROP' or 'REJECT', got 'ALLOW'",
    ),
    "firewall_port_without_proto": (
        "lxc_configs.102.firewall.rules[0]",
        "needs proto 'tcp' or 'udp'",
    ),
    "firewall_source_not_ip": (
        "lxc_configs.102.firewall.rules[0].source",
        "'gateway.local' is not an IPv4 address or network",
    ),
    "features_not_a_list": ("lxc_configs.102.features", "expected a list, got 'base_setup'"),
    "snapshot_name_invalid": (
        "lxc_configs.900.template_snapshot_name",
        "not a valid snapshot name",
    ),
    "interface_name_too_long": (
        "lxc_configs.102.network_config.name",
        "not a valid interface name",
    ),
    "boot_order_negative": ("lxc_configs.102.boot_order", "must be greater than or equal to 0"),
    "gateway_route_unknown_guest": (
        "lxc_configs.101.gateway.path_routes[0].ctid",
        "route target 999 is not a container",
    ),
    "gateway_route_without_port": ("lxc_configs.101.gateway.path_routes[0]", "needs its 'port'"),
    "health_check_without_command": (
        "lxc_configs.102.health_check.command",
        "required field is missing",
    ),
    "several_mistakes": ("lxc_configs.101.memory_mb", "expected an integer, got 'lots'"),
    "hypervisor__malformed": (
        "phoenix_hypervisor_config.json: $",
        "invalid JSON at line 3, column 15",
    ),
    "hypervisor__timezone_not_string": (
        "phoenix_hypervisor_config.json: timezone",
        "expected a string",
    ),
    "hypervisor__unknown_driver": (
        "phoenix_hypervisor_config.json: phoenix.driver",
        "expected 'lxc' or 'proxmox', got 'docker'",
    ),
    "vm__clone_source_missing": ("phoenix_vm_configs.json: vms[0].clone_from_vmid", "9000"),
    "vm__vmid_not_number": ("phoenix_vm_configs.json: vms[0].vmid", "expected a container id"),
}

FILES = {
    "hypervisor": "phoenix_hypervisor_config.json",
    "vm": "phoenix_vm_configs.json",
}


def _config_dir(case: Path, tmp_path: Path) -> Path:
    target = tmp_path / "etc"
    shutil.copytree(INVENTORIES / "valid" / "minimal", target)
    prefix, sep, _ = case.stem.partition("__")
    name = FILES[prefix] if sep else "phoenix_lxc_configs.json"
    shutil.copy(case, target / name)
    return target


def test_corpus_is_large_and_every_case_has_an_expectation() -> None:
    cases = {p.stem for p in BROKEN.glob("*.json")}
    assert len(cases) >= 30
    assert cases == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_inventory_is_reported(case: str, tmp_path: Path) -> None:
    config_dir = _config_dir(BROKEN / f"{case}.json", tmp_path)
    result = CliRunner().invoke(app, ["--config-dir", str(config_dir), "validate"])
    where, message = EXPECTED[case]
    # CliRunner catches an uncaught exception (exit code 1, no traceback in the output): the
    # proof that none escaped is that the only exception is the CLI's own exit.
    assert isinstance(result.exception, SystemExit) and result.exception.code == 1, (
        repr(result.exception),
        result.output,
    )
    lines = [line for line in result.output.splitlines() if where in line and message in line]
    assert lines, f"expected a line with {where!r} and {message!r}, got:\n{result.output}"


def test_several_mistakes_are_all_reported_at_once(tmp_path: Path) -> None:
    config_dir = _config_dir(BROKEN / "several_mistakes.json", tmp_path)
    result = CliRunner().invoke(app, ["--config-dir", str(config_dir), "validate", "--json"])

    problems = json.loads(result.stdout)
    found = {(p["path"], p["severity"]) for p in problems}
    assert ("lxc_configs.101.memory_mb", "error") in found
    assert ("lxc_configs.900.network_config.ip", "error") in found
    assert ("lxc_configs.102.dependencies[1]", "error") in found


@pytest.mark.parametrize("case", ["malformed_truncated", "name_shell_metacharacters", "empty_file"])
def test_real_process_prints_no_traceback(case: str, tmp_path: Path) -> None:
    """The installed entry point, in a real process: exit 1 and one-line problems."""
    config_dir = _config_dir(BROKEN / f"{case}.json", tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "phoenix", "--config-dir", str(config_dir), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert EXPECTED[case][1] in proc.stderr

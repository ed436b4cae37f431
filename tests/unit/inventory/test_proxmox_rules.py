"""Rules Proxmox enforces late (pve-container, pve-firewall) are checked by validate, with
errors that name the guest, so a plan never starts that can never converge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import load_inventory
from tests.unit.inventory.helpers import edit_guest as _edit
from tests.unit.inventory.helpers import validate_json

HYP = "phoenix_hypervisor_config.json"


def _phoenix(config_dir: Path, **changes: Any) -> None:
    path = config_dir / HYP
    data = json.loads(path.read_text())
    data.setdefault("phoenix", {}).update(changes)
    path.write_text(json.dumps(data, indent=4))


def _error_at(config_dir: Path, path: str) -> str:
    code, problems, _ = validate_json(config_dir)
    assert code == 1, problems
    found = [p for p in problems if p["severity"] == "error" and p["path"] == path]
    assert found, f"no error at {path}: {problems}"
    return found[0]["message"]


# -- pve-container ---------------------------------------------------------------------------


def test_a_clone_cannot_change_unprivileged(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", unprivileged=False)
    message = _error_at(minimal_dir, "lxc_configs.102.unprivileged")
    assert "900" in message


def test_a_clone_of_a_privileged_source_must_say_so(minimal_dir: Path) -> None:
    _edit(minimal_dir, "900", unprivileged=False)
    message = _error_at(minimal_dir, "lxc_configs.101.unprivileged")
    assert "900" in message


@pytest.mark.parametrize("name", ["current", "vzdump"])
def test_reserved_snapshot_names(minimal_dir: Path, name: str) -> None:
    _edit(minimal_dir, "900", template_snapshot_name=name)
    message = _error_at(minimal_dir, "lxc_configs.900.template_snapshot_name")
    assert "reserved" in message


def test_hostname_label_longer_than_63_is_an_error(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", name="a" * 64)
    assert "64 characters; at most 63" in _error_at(minimal_dir, "lxc_configs.102.name")
    _edit(minimal_dir, "102", name="a" * 63)
    assert validate_json(minimal_dir)[0] == 0


def test_hostname_longer_than_253_is_an_error(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", name=".".join(["a" * 63] * 4))  # 255 characters
    assert "255 characters; at most 253" in _error_at(minimal_dir, "lxc_configs.102.name")
    _edit(minimal_dir, "102", name=".".join(["a" * 63] * 3 + ["a" * 61]))  # 253
    assert validate_json(minimal_dir)[0] == 0


def test_dotted_hostname_is_a_warning(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", name="model-a.lab.local")
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    (warning,) = [p for p in problems if p["path"] == "lxc_configs.102.name"]
    assert warning["severity"] == "warning"
    assert "'model-a'" in warning["message"]


# -- pve-firewall ----------------------------------------------------------------------------


def _rule(**fields: Any) -> dict[str, Any]:
    return {"type": "in", "action": "ACCEPT", "proto": "tcp", **fields}


def test_a_dash_port_range_is_an_error(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", firewall={"enabled": True, "rules": [_rule(port="8000-8010")]})
    message = _error_at(minimal_dir, "lxc_configs.102.firewall.rules[0].port")
    assert "8000:8010" in message


def test_a_reversed_port_range_is_an_error(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", firewall={"enabled": True, "rules": [_rule(port="8010:8000")]})
    message = _error_at(minimal_dir, "lxc_configs.102.firewall.rules[0].port")
    assert "runs backwards; write 8000:8010" in message


def test_at_most_15_port_numbers(minimal_dir: Path) -> None:
    fifteen = ",".join(str(8000 + i) for i in range(13)) + ",9000:9010"
    _edit(minimal_dir, "102", firewall={"enabled": True, "rules": [_rule(port=fifteen)]})
    code, *_ = validate_json(minimal_dir)
    assert code == 0
    sixteen = fifteen + ",9100"
    _edit(minimal_dir, "102", firewall={"enabled": True, "rules": [_rule(port=sixteen)]})
    message = _error_at(minimal_dir, "lxc_configs.102.firewall.rules[0].port")
    assert "15" in message


def test_a_rule_comment_is_kept(minimal_dir: Path) -> None:
    rule = _rule(port="8000", comment="the gateway # only")
    _edit(minimal_dir, "102", firewall={"enabled": True, "rules": [rule]})
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0, problems
    assert not [p for p in problems if "comment" in p["path"]]
    kept = load_inventory(minimal_dir).guests[102].firewall.rules[0]
    assert kept.comment == "the gateway # only"


# -- values that reach a command line --------------------------------------------------------


@pytest.mark.parametrize("pool", ["local-lvm:1,ro=1", "local lvm", "-local", "local,x"])
def test_storage_pool_must_be_a_storage_id(minimal_dir: Path, pool: str) -> None:
    _edit(minimal_dir, "102", storage_pool=pool)
    message = _error_at(minimal_dir, "lxc_configs.102.storage_pool")
    assert f"{pool!r} is not a Proxmox storage id" in message


@pytest.mark.parametrize("pool", ["local-lvm", "quickOS-lxc-disks", "tank_2.ssd"])
def test_storage_ids_of_the_field_are_valid(minimal_dir: Path, pool: str) -> None:
    _edit(minimal_dir, "102", storage_pool=pool)
    assert validate_json(minimal_dir)[0] == 0


@pytest.mark.parametrize("host", ["-oProxyCommand=x", "root@-oProxyCommand=x", "a b", "x@", "@x"])
def test_ssh_host_must_be_a_host(minimal_dir: Path, host: str) -> None:
    _phoenix(minimal_dir, ssh_host=host)
    message = _error_at(minimal_dir, "phoenix.ssh_host")
    assert message.startswith(repr(host))
    assert "is not a host, or user@host" in message or "is not a user name" in message


@pytest.mark.parametrize("host", ["pve", "root@pve.lab.local", "root@10.0.0.2", "admin_1@pve-1"])
def test_ssh_hosts_that_are_hosts_are_valid(minimal_dir: Path, host: str) -> None:
    _phoenix(minimal_dir, ssh_host=host)
    assert validate_json(minimal_dir)[0] == 0


def test_a_bad_ssh_host_no_longer_crashes_plan(minimal_dir: Path) -> None:
    _phoenix(minimal_dir, ssh_host="-oProxyCommand=x", driver="proxmox")
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "plan"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "phoenix.ssh_host" in result.output


@pytest.mark.parametrize("key", ["state_dir", "lxc_path", "template_cache"])
def test_phoenix_paths_must_be_absolute(minimal_dir: Path, key: str) -> None:
    _phoenix(minimal_dir, **{key: "relative/dir"})
    assert _error_at(minimal_dir, f"phoenix.{key}") == "'relative/dir' must be an absolute path"


@pytest.mark.parametrize("command", ["curl 'http://x", '"', "   "])
def test_health_check_command_must_split_into_words(minimal_dir: Path, command: str) -> None:
    _edit(minimal_dir, "102", health_check={"command": command})
    message = _error_at(minimal_dir, "lxc_configs.102.health_check.command")
    assert "cannot be split into words" in message or message == "the command is empty"


def test_model_names_must_fit_nginx(minimal_dir: Path) -> None:
    engine = {"ServerConfig": {"served_model_name": "m" * 5000}}
    _edit(minimal_dir, "102", vllm_engine_config=engine)
    path = "lxc_configs.102.vllm_engine_config.ServerConfig.served_model_name"
    assert "5000 characters; the gateway takes at most 256" in _error_at(minimal_dir, path)
    _edit(minimal_dir, "102", vllm_engine_config=None, vllm_served_model_name="m" * 5000)
    message = _error_at(minimal_dir, "lxc_configs.102.vllm_served_model_name")
    assert "5000 characters; the gateway takes at most 256" in message
    _edit(minimal_dir, "102", vllm_served_model_name="m" * 256)
    assert validate_json(minimal_dir)[0] == 0


@pytest.mark.parametrize("template", ["-unprivileged=0", "--help"])
def test_a_template_cannot_look_like_an_option(minimal_dir: Path, template: str) -> None:
    """It is a positional argument of `pct create`: a leading '-' would be read as an
    option."""
    _edit(minimal_dir, "900", template=template)
    message = _error_at(minimal_dir, "lxc_configs.900.template")
    assert message == f"{template!r} starts with '-': a command would read it as an option"

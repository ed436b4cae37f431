"""Warnings do not fail validation; config-dir resolution; schema; graph output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import resolve_config_dir
from tests.unit.inventory.helpers import validate_json


def _edit(config_dir: Path, ctid: str, **changes: object) -> None:
    path = config_dir / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"][ctid].update(changes)
    path.write_text(json.dumps(data))


def test_minimal_dir_is_valid(minimal_dir: Path) -> None:
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    assert [p for p in problems if p["severity"] == "error"] == []


def test_unknown_key_is_a_warning(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", colour="blue")
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    assert {
        "file": "phoenix_lxc_configs.json",
        "path": "lxc_configs.102.colour",
        "message": "unknown key (ignored)",
        "severity": "warning",
    } in problems


def test_gpu_and_mount_keys_are_applied_not_flagged(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        gpu_assignment="0",
        mount_points=[{"host_path": "/srv/models", "guest_path": "/models"}],
    )
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    assert not [p for p in problems if "not applied" in p["message"]]


def test_two_mounts_on_one_target_are_an_error(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        mount_points=[{"host_path": "/srv/models", "guest_path": "/models/"}],
        zfs_volumes=[{"name": "m", "pool": "tank", "size_gb": 5, "mount_point": "/models"}],
    )
    code, problems, _ = validate_json(minimal_dir)
    assert code != 0
    errors = [p for p in problems if "one mount per path" in p["message"]]
    assert [p["path"] for p in errors] == ["lxc_configs.102.zfs_volumes[0]"]


def test_missing_application_script_warns_then_exists(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", application_script="serve.sh")
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    assert any(
        "'serve.sh' is not in" in p["message"] and p["severity"] == "warning" for p in problems
    )
    (minimal_dir / "scripts").mkdir()
    (minimal_dir / "scripts" / "serve.sh").write_text("#!/bin/sh\n")
    _code, problems, _ = validate_json(minimal_dir)
    assert not any("serve.sh" in p["message"] for p in problems)


def test_feature_without_recipe_says_where_phoenix_looked(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", features=["warp_drive"])
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    (warning,) = [p for p in problems if "warp_drive" in p["message"]]
    assert warning["severity"] == "warning"
    assert "phoenix_hypervisor_feature_install_warp_drive.sh" in warning["message"]
    assert "feature_warp_drive.sh" in warning["message"]


def test_user_feature_recipe_is_found(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", features=["warp_drive"])
    (minimal_dir / "scripts").mkdir()
    (minimal_dir / "scripts" / "phoenix_hypervisor_feature_install_warp_drive.sh").write_text("")
    _code, problems, _ = validate_json(minimal_dir)
    assert not any("warp_drive" in p["message"] for p in problems)


def test_apparmor_conflict_names_the_winner(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        apparmor_profile="generated",
        lxc_options=["lxc.apparmor.profile=unconfined"],
    )
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0
    (warning,) = [p for p in problems if p["path"] == "lxc_configs.102.apparmor_profile"]
    assert "'generated' wins" in warning["message"]


def test_config_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(tmp_path))
    assert resolve_config_dir("/explicit") == Path("/explicit")
    assert resolve_config_dir(None) == tmp_path
    monkeypatch.delenv("PHOENIX_CONFIG_DIR")
    monkeypatch.setattr("phoenix.inventory.loader.SYSTEM_CONFIG_DIR", tmp_path / "missing")
    assert resolve_config_dir(None) == Path("etc")


def test_env_var_selects_the_config_dir(minimal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(minimal_dir))
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 0
    assert str(minimal_dir) in result.output


def test_schema_describes_guests_and_the_gateway_block() -> None:
    result = CliRunner().invoke(app, ["schema"])
    schema = json.loads(result.stdout)
    guest = schema["$defs"]["LxcGuest"]["properties"]
    for key in (
        "memory_mb",
        "clone_from_ctid",
        "template_snapshot_name",
        "is_template",
        "lxc_options",
        "gateway",
        "vllm_engine_config",
        "firewall",
    ):
        assert key in guest
    assert "PathRoute" in schema["$defs"] and "HostRoute" in schema["$defs"]


def test_graph_prints_tree_and_order(minimal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "graph", "102"])
    assert result.exit_code == 0
    assert "102 model-a" in result.output
    assert "clones 900 tmpl" in result.output
    assert "needs 101 gw" in result.output
    assert "creation order: 900 101 102\n" in result.output
    assert result.output.strip().endswith("start order: 101 102 900")


def test_graph_formats(minimal_dir: Path) -> None:
    mermaid = CliRunner().invoke(app, ["-c", str(minimal_dir), "graph", "--format", "mermaid"])
    assert mermaid.stdout.startswith("graph TD")
    dot = CliRunner().invoke(app, ["-c", str(minimal_dir), "graph", "--format", "dot"])
    assert dot.stdout.startswith("digraph phoenix {")


def test_graph_rejects_unknown_id(minimal_dir: Path) -> None:
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "graph", "555"])
    assert result.exit_code == 1
    assert "guest 555 is not in the inventory" in result.output


def test_every_command_has_help() -> None:
    for args in (["--help"], ["validate", "--help"], ["schema", "--help"], ["graph", "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0
        assert "Usage" in result.output


def test_unwritable_output_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    lab = tmp_path / "lab"
    shutil.copytree(Path(__file__).resolve().parents[3] / "examples" / "lab", lab)
    data = json.loads((lab / "phoenix_hypervisor_config.json").read_text())
    data["phoenix"]["state_dir"] = str(tmp_path / "state")
    (lab / "phoenix_hypervisor_config.json").write_text(json.dumps(data))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "phoenix",
            "-c",
            str(lab),
            "gateway",
            "render",
            "--mode",
            "derived",
            "--out",
            "/proc/phoenix-nope/out",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "No such file or directory: /proc/phoenix-nope" in proc.stderr


def test_plan_has_no_not_applied_note_for_gpus(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", gpu_assignment="0,1")
    runner = CliRunner()
    result = runner.invoke(app, ["-c", str(minimal_dir), "plan", "--offline"])
    assert result.exit_code == 0, result.output
    assert "not applied" not in result.output

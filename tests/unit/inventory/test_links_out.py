"""Files Phoenix ships from the config dir (feature scripts, nginx sites and scripts) may not
be symlinks to files outside it: a link to a 0600 root file ended up 0644 in a render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from tests.unit.inventory.helpers import LXC, validate_json


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret"
    path.parent.mkdir()
    path.write_text("root's secret\n")
    path.chmod(0o600)
    return path


def _features(config_dir: Path, *names: str) -> None:
    path = config_dir / LXC
    data = json.loads(path.read_text())
    data["lxc_configs"]["102"]["features"] = list(names)
    path.write_text(json.dumps(data))


def test_a_feature_script_linked_outside_is_an_error(minimal_dir: Path, secret: Path) -> None:
    (minimal_dir / "scripts").mkdir()
    (minimal_dir / "scripts" / "phoenix_hypervisor_feature_install_steal.sh").symlink_to(secret)
    _features(minimal_dir, "steal")
    code, problems, _ = validate_json(minimal_dir)
    assert code == 1
    (error,) = [p for p in problems if p["severity"] == "error"]
    assert error["path"] == "lxc_configs.102.features[0]"
    assert "outside the config dir" in error["message"]


def test_a_feature_script_linked_inside_is_fine(minimal_dir: Path) -> None:
    (minimal_dir / "scripts" / "common").mkdir(parents=True)
    (minimal_dir / "scripts" / "common" / "setup.sh").write_text("#!/bin/sh\n")
    link = minimal_dir / "scripts" / "phoenix_hypervisor_feature_install_setup.sh"
    link.symlink_to("common/setup.sh")
    _features(minimal_dir, "setup")
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0, problems


@pytest.mark.parametrize("folder", ["sites-available", "scripts"])
def test_nginx_files_linked_outside_are_errors(
    minimal_dir: Path, secret: Path, folder: str, tmp_path: Path
) -> None:
    (minimal_dir / "nginx" / folder).mkdir(parents=True)
    (minimal_dir / "nginx" / folder / "leak").symlink_to(secret)
    code, problems, _ = validate_json(minimal_dir)
    assert code == 1
    (error,) = [p for p in problems if p["severity"] == "error"]
    assert error["file"] == f"nginx/{folder}/leak"
    assert "outside the config dir" in error["message"]
    out = tmp_path / "render"
    result = CliRunner().invoke(
        app, ["-c", str(minimal_dir), "gateway", "render", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert not list(out.rglob("leak"))


def test_a_linked_nginx_folder_pointing_outside_is_an_error(
    minimal_dir: Path, secret: Path
) -> None:
    (minimal_dir / "nginx").mkdir()
    (minimal_dir / "nginx" / "sites-available").symlink_to(secret.parent)
    code, problems, _ = validate_json(minimal_dir)
    assert code == 1
    assert any("outside the config dir" in p["message"] for p in problems)

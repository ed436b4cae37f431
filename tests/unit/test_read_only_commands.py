"""Commands that only show write nothing: no CA, no leaf keys, no state dir, no LXC path
(plan, plan --offline, gateway lint, validate, graph, schema); `gateway render --out`
writes only into a new directory and never through something planted in it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app

LAB = Path(__file__).resolve().parents[2] / "examples" / "lab"


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    shutil.copytree(LAB, etc)
    hyp = etc / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    data["phoenix"].update(
        state_dir=str(tmp_path / "state"),
        lxc_path=str(tmp_path / "lxc"),
        template_cache=str(tmp_path / "cache"),
    )
    hyp.write_text(json.dumps(data))
    return etc


def invoke(*args: str) -> object:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    "args",
    [
        ["plan"],
        ["plan", "--offline"],
        ["--driver", "proxmox", "plan", "--offline"],
        ["gateway", "lint"],
        ["validate"],
        ["graph"],
        ["schema"],
        ["gateway", "routes"],
    ],
)
def test_showing_commands_write_nothing(lab: Path, args: list[str]) -> None:
    before = sorted(p.name for p in lab.parent.iterdir())
    invoke("-c", str(lab), *args)
    assert sorted(p.name for p in lab.parent.iterdir()) == before


def test_render_writes_only_into_a_new_out_dir(lab: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["-c", str(lab), "gateway", "render", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "tree" / "nginx.conf").is_file()
    assert not (tmp_path / "state").exists()  # no CA made for an inspection
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".phoenix")] == []


def test_render_refuses_a_dir_with_anything_in_it(lab: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "tree").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, out / "tree" / "nginx.conf")
    result = CliRunner().invoke(app, ["-c", str(lab), "gateway", "render", "--out", str(out)])
    assert result.exit_code == 1
    assert "not an empty directory" in result.output
    assert victim.read_text() == "precious"


def test_render_refuses_a_symlinked_out(lab: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, tmp_path / "out")
    result = CliRunner().invoke(
        app, ["-c", str(lab), "gateway", "render", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert list(target.iterdir()) == []

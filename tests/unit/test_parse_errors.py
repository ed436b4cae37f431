"""Malformed text Phoenix reads (its own state files, a tool's JSON) is a PhoenixError that
names the source, never a bare ValueError/TypeError/JSONDecodeError; the CLI prints it as
one line, without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.drivers.lxc.config import GuestMeta
from phoenix.drivers.proxmox import pvesh
from phoenix.errors import ParseError, PhoenixError
from phoenix.files import parse_json
from phoenix.plan.journal import Journal

LAB = Path(__file__).resolve().parents[2] / "examples" / "lab"


@pytest.mark.parametrize("text", ["", "{", "[1,", "nan-sense", '"\\ud800"x'])
def test_bad_json_is_a_parse_error_naming_its_source(text: str) -> None:
    with pytest.raises(ParseError, match=r"^/x/state\.json: not valid JSON") as info:
        parse_json(text, "/x/state.json")
    assert isinstance(info.value, PhoenixError)
    assert isinstance(info.value, ValueError)  # what the pure parsers' callers catch


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"firewall_rules": [{"nope": 1}]}', '{"firewall_rules": 3}']
)
def test_a_damaged_guest_record_names_its_file(text: str) -> None:
    with pytest.raises(ParseError, match=r"^/lxc/101/phoenix\.json: "):
        GuestMeta.from_json(text, "/lxc/101/phoenix.json")


def test_pvesh_answers_that_are_not_json_or_no_version() -> None:
    with pytest.raises(ParseError, match="snapshots: pvesh did not return JSON"):
        pvesh.load_json("<html>proxy error</html>", "snapshots")
    with pytest.raises(ParseError, match="cannot read a version"):
        pvesh.parse_version({"version": "eight"})


def test_a_torn_journal_line_names_the_file_and_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "run1")
    journal.dir.mkdir(parents=True)
    journal.path.write_text('{"status": "done"}\n{"status": "sta')
    with pytest.raises(ParseError, match=r"run1\.jsonl, line 2: not valid JSON"):
        journal.records()


def test_the_cli_prints_a_damaged_state_file_as_one_line(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    shutil.copytree(LAB, etc)
    hyp = etc / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    lxc = tmp_path / "lxc"
    data["phoenix"].update(
        driver="lxc",
        state_dir=str(tmp_path / "state"),
        lxc_path=str(lxc),
        template_cache=str(tmp_path / "cache"),
    )
    hyp.write_text(json.dumps(data))
    (lxc / "900").mkdir(parents=True)
    (lxc / "900" / "config").write_text("lxc.uts.name = x\n")
    (lxc / "900" / "phoenix.json").write_text('{"storage": "local-lvm", "firewall_rul')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "phoenix", "-c", str(etc), "plan"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{lxc}/900/phoenix.json: not valid JSON" in proc.stderr

"""The fake node as commands (fakeshim.py): what the Proxmox install test's `phoenix`
process runs. Each call is a new process, so the node's state must survive between calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.proxmox.fakeshim import TOOLS, install, load, main, save

REPO = Path(__file__).resolve().parents[3]


def test_the_node_state_survives_between_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = load(tmp_path)
    node.ha[101] = "started"
    node.running.add(101)
    node.add_device("/dev/nvidia0")
    save(tmp_path, node)
    assert main(str(tmp_path), "pvesh", ["delete", "/cluster/ha/resources/ct:101"]) == 0
    again = load(tmp_path)
    assert again.ha == {} and again.ha_leaving == {101: "started"}
    assert again.running == {101} and again.devices == {"/dev/nvidia0": "c"}
    capsys.readouterr()
    assert main(str(tmp_path), "pveversion", ["--verbose"]) == 0
    assert "pve-manager: 8.4.1" in capsys.readouterr().out
    assert main(str(tmp_path), "pct", ["destroy", "999"]) == 2
    assert "999.conf' does not exist" in capsys.readouterr().err
    log = (tmp_path / "calls.log").read_text().splitlines()
    assert log == [
        "pvesh delete /cluster/ha/resources/ct:101",
        "pveversion --verbose",
        "pct destroy 999",
    ]


def test_the_installed_commands_answer_as_the_node(tmp_path: Path) -> None:
    install(tmp_path / "sys", sys.executable, str(REPO), str(tmp_path / "node"))
    pvesh = tmp_path / "sys" / TOOLS["pvesh"].lstrip("/")
    assert os.access(pvesh, os.X_OK)
    done = subprocess.run(
        [str(pvesh), "get", "/nodes/localhost/network", "--type", "any_bridge",
         "--output-format", "json"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"iface": "vmbr0", "type": "bridge", "active": 1}]

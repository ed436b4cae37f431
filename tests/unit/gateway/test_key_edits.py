"""`gateway key add` under pressure: concurrent adds all kept, compatibility mode refused
(its hand-written sites check no key), Ollama models served, and no empty model list."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import load_inventory

LAB = Path(__file__).resolve().parents[3] / "examples" / "lab"
runner = CliRunner()


def lab(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    shutil.copytree(LAB, etc)
    return etc


def keys_of(etc: Path) -> list[str]:
    gateway = load_inventory(etc).guests[101].gateway
    assert gateway is not None
    return sorted(k.name for k in gateway.api_keys)


def test_concurrent_key_adds_all_stick(tmp_path: Path) -> None:
    """Twelve at once used to print twelve keys and store three."""
    etc = lab(tmp_path)
    names = [f"k{i}" for i in range(12)]
    code = "from phoenix.cli.app import main; main()"

    def add(name: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", code, "-c", str(etc), "gateway", "key", "add", name]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(add, names))
    assert [r.returncode for r in results] == [0] * 12, [r.stderr for r in results]
    assert keys_of(etc) == sorted(names)


def test_compatibility_mode_refuses_keys_and_stays_open(tmp_path: Path) -> None:
    etc = lab(tmp_path)
    sites = etc / "nginx" / "sites-available"
    sites.mkdir(parents=True)
    (sites / "gateway").write_text("server { listen 80; location / { return 200; } }\n")
    before = (etc / "phoenix_lxc_configs.json").read_text()
    result = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "team"])
    assert result.exit_code == 1
    assert "compatibility mode" in result.output and "would not be enforced" in result.output
    assert (etc / "phoenix_lxc_configs.json").read_text() == before
    # Keys already in the inventory: validate still says the API is open.
    data = json.loads(before)
    data["lxc_configs"]["101"]["gateway"]["api_keys"] = [{"name": "k", "sha256": "a" * 64}]
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps(data))
    checked = runner.invoke(app, ["-c", str(etc), "validate"])
    assert "the gateway's API is open" in checked.output
    assert "compatibility mode" in checked.output


def test_models_must_name_something(tmp_path: Path) -> None:
    etc = lab(tmp_path)
    result = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "k", "--models", " , "])
    assert result.exit_code == 1 and "names no model" in result.output
    assert keys_of(etc) == []


def test_ollama_models_are_served_for_keys(tmp_path: Path) -> None:
    etc = lab(tmp_path)
    path = etc / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"]["802"]["features"] = ["ollama"]
    data["lxc_configs"]["802"]["ollama_models"] = ["llama3.2:1b"]
    path.write_text(json.dumps(data))
    result = runner.invoke(
        app, ["-c", str(etc), "gateway", "key", "add", "k", "--models", "llama3.2:1b"]
    )
    assert result.exit_code == 0, result.output
    checked = runner.invoke(app, ["-c", str(etc), "validate"])
    assert "which no guest serves" not in checked.output


def test_gateway_info_quotes_the_state_path_in_the_commands_it_suggests(tmp_path: Path) -> None:
    import shlex

    etc = lab(tmp_path)
    hyp = etc / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    data["phoenix"]["state_dir"] = "/srv/my lab/it's state"
    hyp.write_text(json.dumps(data))
    result = runner.invoke(app, ["-c", str(etc), "gateway", "info"])
    assert result.exit_code == 0, result.output
    curls = [line.strip() for line in result.output.splitlines() if "--cacert" in line]
    assert curls
    for line in curls:
        words = shlex.split(line)
        assert words[words.index("--cacert") + 1] == "/srv/my lab/it's state/gateway-ca/ca.crt"

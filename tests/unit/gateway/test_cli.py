from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from tests.unit.gateway.conftest import FIXTURES

runner = CliRunner()
SEED = FIXTURES / "phoenix-etc-seed"


def test_lint_reports_fixture_conflicts() -> None:
    result = runner.invoke(app, ["-c", str(SEED), "gateway", "lint"])
    assert result.exit_code == 1
    assert "nginx/sites-available/vllm_gateway:4: error: unknown directive '-'" in result.stdout
    assert "conflicting-server-name" in result.stdout


def test_ca_prints_certificate_never_key(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-c", str(SEED), "gateway", "ca", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in result.stdout
    again = runner.invoke(app, ["-c", str(SEED), "gateway", "ca", "--state-dir", str(tmp_path)])
    assert again.stdout == result.stdout


def test_render_derived_writes_the_bundle(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "-c",
            str(SEED),
            "gateway",
            "render",
            "--mode",
            "derived",
            "--out",
            str(out),
            "--state-dir",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 0, result.stdout
    assert (out / "setup_gateway.sh").stat().st_mode & 0o100
    assert (out / "tree" / "sites-enabled" / "phoenix-api").is_symlink()
    assert (out / "tree" / "ssl" / "phoenix-api.key").stat().st_mode & 0o077 == 0
    assert "PHOENIX_GATEWAY_MODE=derived" in (out / "gateway.env").read_text()


def test_render_auto_refuses_broken_hand_written_sites(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "-c",
            str(SEED),
            "gateway",
            "render",
            "--out",
            str(tmp_path / "o"),
            "--state-dir",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 1
    assert "vllm_gateway:4" in result.output


def test_routes_lists_models() -> None:
    result = runner.invoke(app, ["-c", str(SEED), "gateway", "routes"])
    assert result.exit_code == 0
    assert "ibm-granite/granite-embedding-english-r2 -> 10.0.0.141:8000, 10.0.0.151:8000" in (
        result.stdout
    )


def test_key_add_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    import hashlib
    import json
    import shutil

    from phoenix.inventory import load_inventory

    etc = tmp_path / "etc"
    shutil.copytree(Path(__file__).resolve().parents[3] / "examples" / "lab", etc)
    lxc = etc / "phoenix_lxc_configs.json"
    before = json.loads(lxc.read_text())
    result = runner.invoke(
        app,
        ["-c", str(etc), "gateway", "key", "add", "team-a", "--models", "demo-chat", "--rpm", "60"],
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("phx-") and len(key) > 40
    text = lxc.read_text()
    assert key not in text
    entry = load_inventory(etc).guests[101].gateway.api_keys[0]  # type: ignore[union-attr]
    assert entry.name == "team-a" and entry.models == ["demo-chat"] and entry.rpm == 60
    assert entry.sha256 == hashlib.sha256(key.encode()).hexdigest()
    after = json.loads(text)
    del after["lxc_configs"]["101"]["gateway"]["api_keys"]
    assert after == before  # nothing else changed
    again = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "team-a"])
    assert again.exit_code == 1 and "exists already" in again.output
    unknown = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "b", "--models", "nope"])
    assert unknown.exit_code == 1 and "no guest serves nope" in unknown.output
    bad = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "Bad Name"])
    assert bad.exit_code == 1 and "invalid key" in bad.output
    listed = runner.invoke(app, ["-c", str(etc), "gateway", "key", "list"])
    assert "team-a" in listed.stdout and key not in listed.stdout
    removed = runner.invoke(app, ["-c", str(etc), "gateway", "key", "remove", "team-a"])
    assert removed.exit_code == 0
    assert load_inventory(etc).guests[101].gateway.api_keys == []  # type: ignore[union-attr]


def test_validate_says_the_gateway_is_open_without_keys() -> None:
    result = runner.invoke(
        app, ["-c", str(Path(__file__).resolve().parents[3] / "examples" / "lab"), "validate"]
    )
    assert "the gateway's API is open" in result.output


def test_stats_shows_what_the_gateway_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from phoenix.drivers import factory
    from phoenix.runners.base import CommandResult

    report = {
        "status": "degraded",
        "config": "abc",
        "uptime_s": 5,
        "requests": {"2xx": 3},
        "models": [
            {
                "id": "demo-chat",
                "requests": {"2xx": 3, "5xx": 1},
                "backends": [
                    {"address": "10.1.1.1:8000", "state": "down", "answered": 3, "failed": 1}
                ],
            }
        ],
    }
    asked: list[list[str]] = []

    class Driver:
        def exec(self, ctid: int, argv: list[str], **_: object) -> CommandResult:
            asked.append(argv)
            return CommandResult(0, json.dumps(report), "")

    monkeypatch.setattr(factory, "make_driver", lambda *a, **k: Driver())
    lab = str(Path(__file__).resolve().parents[3] / "examples" / "lab")
    result = runner.invoke(app, ["-c", lab, "gateway", "stats"])
    assert result.exit_code == 1  # degraded
    assert "10.1.1.1:8000" in result.stdout and "down" in result.stdout
    assert asked[0][-1].endswith("/phoenix/status")
    as_json = runner.invoke(app, ["-c", lab, "gateway", "stats", "--json"])
    assert json.loads(as_json.stdout)["config"] == "abc"

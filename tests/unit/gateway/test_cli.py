from __future__ import annotations

from pathlib import Path

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

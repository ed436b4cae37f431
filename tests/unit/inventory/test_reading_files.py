"""Config files are read as bounded regular files: what is not one is a message, never a
hang, a MemoryError or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import load_inventory

LXC = "phoenix_lxc_configs.json"


def _validate(config_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["-c", str(config_dir), "validate"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _validate_process(config_dir: Path) -> tuple[int, str]:
    """In a real process with a deadline: a hang is a failure, not a stuck test run."""
    proc = subprocess.run(
        [sys.executable, "-m", "phoenix", "-c", str(config_dir), "validate"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


def test_a_fifo_in_place_of_a_config_file_is_an_error(minimal_dir: Path) -> None:
    (minimal_dir / LXC).unlink()
    os.mkfifo(minimal_dir / LXC)
    code, output = _validate_process(minimal_dir)
    assert code == 1
    assert "not a regular file" in output


def test_a_link_to_dev_zero_is_an_error(minimal_dir: Path) -> None:
    (minimal_dir / LXC).unlink()
    (minimal_dir / LXC).symlink_to("/dev/zero")
    code, output = _validate_process(minimal_dir)
    assert code == 1
    assert "not a regular file" in output


def test_a_link_to_a_regular_file_is_read(minimal_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    (minimal_dir / LXC).rename(real)
    (minimal_dir / LXC).symlink_to(real)
    assert sorted(load_inventory(minimal_dir).guests) == [101, 102, 900]


def test_a_directory_in_place_of_a_config_file_is_an_error(minimal_dir: Path) -> None:
    (minimal_dir / LXC).unlink()
    (minimal_dir / LXC).mkdir()
    code, output = _validate(minimal_dir)
    assert code == 1
    assert "is a directory" in output


def test_an_integer_with_5000_digits_is_an_error(minimal_dir: Path) -> None:
    text = (
        (minimal_dir / LXC).read_text().replace('"memory_mb": 1024', '"memory_mb": ' + "9" * 5000)
    )
    (minimal_dir / LXC).write_text(text)
    code, output = _validate(minimal_dir)
    assert code == 1
    assert "5000 digits" in output


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(minimal_dir: Path, literal: str) -> None:
    text = (minimal_dir / LXC).read_text().replace('"memory_mb": 1024', f'"memory_mb": {literal}')
    (minimal_dir / LXC).write_text(text)
    code, output = _validate(minimal_dir)
    assert code == 1
    assert f"{literal.lstrip('-')} is not a JSON value" in output


@pytest.mark.parametrize("depth", [100, 900, 100_000])
def test_deep_nesting_is_an_error(minimal_dir: Path, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    text = (minimal_dir / LXC).read_text().replace('"memory_mb": 1024', f'"tests": {{"x": {deep}}}')
    (minimal_dir / LXC).write_text(text)
    code, output = _validate(minimal_dir)
    assert code == 1
    assert "nested more than" in output


def test_a_utf8_bom_is_accepted(minimal_dir: Path) -> None:
    for name in (LXC, "phoenix_hypervisor_config.json"):
        path = minimal_dir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    code, output = _validate(minimal_dir)
    assert code == 0, output
    assert sorted(load_inventory(minimal_dir).guests) == [101, 102, 900]


def test_an_oversized_file_is_an_error(minimal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("phoenix.inventory.reading.MAX_FILE_BYTES", 100)
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "validate"])
    assert result.exit_code == 1
    assert "the limit is 100" in result.output

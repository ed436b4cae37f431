"""The next holder of the host lock ends what a killed run left working (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.plan import reaper
from phoenix.plan.lock import host_lock


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _sleeper(procs: list[subprocess.Popen[bytes]], tag: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, reaper.ENV: tag}
    proc = subprocess.Popen(["sleep", "60"], env=env)
    procs.append(proc)
    return proc


def test_taking_the_lock_ends_a_dead_runs_children_and_only_those(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    lock = tmp_path / "phoenix.lock"
    dead = _dead_pid()
    orphan = _sleeper(spawn, f"{lock}|{dead}")  # e.g. a tar whose Phoenix was killed
    other_lab = _sleeper(spawn, f"{tmp_path / 'other.lock'}|{dead}")
    live_owner = _sleeper(spawn, f"{lock}|{os.getpid()}")
    with host_lock(tmp_path):
        assert orphan.wait(timeout=10) == -9
        assert os.environ[reaper.ENV] == f"{lock}|{os.getpid()}"
    assert other_lab.poll() is None and live_owner.poll() is None


def test_children_inherit_the_tag_of_the_run_holding_the_lock(tmp_path: Path) -> None:
    with host_lock(tmp_path):
        out = subprocess.run(
            ["sh", "-c", f'echo "${reaper.ENV}"'], capture_output=True, text=True, check=True
        ).stdout.strip()
    assert out == f"{tmp_path / 'phoenix.lock'}|{os.getpid()}"

"""Bundle packing and applied-markers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import (
    MARKER_DIR,
    MARKER_FAILED,
    RUN_SCRIPT,
    START_SCRIPT,
    UNPACK_SCRIPT,
    WAIT_SCRIPT,
    is_applied,
    marker_name,
    pack,
    parse_markers,
)


def test_pack_contains_script_files_and_entry() -> None:
    bundle = Bundle("application", "app.sh", b"#!/bin/sh\n", {"conf/x.conf": b"x"}, {"ctid": 5})
    with tarfile.open(fileobj=io.BytesIO(pack(bundle)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"app.sh", "conf/x.conf", "guest.json"}
        assert members["app.sh"].mode == 0o755
        entry = tar.extractfile("guest.json")
        assert entry is not None and json.loads(entry.read()) == {"ctid": 5}
    assert pack(bundle) == pack(bundle), "packing is deterministic"


def test_parse_markers_ignores_noise() -> None:
    out = (
        f"{MARKER_DIR}/feature-base_setup:abc\n"
        f"{MARKER_DIR}/application:def\n"
        f"{MARKER_DIR}/application.tmp:zzz\n"
        "/elsewhere/x:1\n"
        "garbage\n"
    )
    assert parse_markers(out) == {"feature-base_setup": "abc", "application": "def"}


def test_marker_names_are_safe_and_applied_compares_digest() -> None:
    assert marker_name("../evil name") == ".._evil_name"
    bundle = Bundle("feature-x", "x.sh", b"a")
    assert is_applied({"feature-x": bundle.digest}, bundle)
    assert not is_applied({"feature-x": "old"}, bundle)


def _start(tmp_path: Path, script: bytes, marker_dir: Path) -> subprocess.CompletedProcess[str]:
    """The in-guest START_SCRIPT, run for real by the host's sh on a prepared run dir."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "app.sh").write_bytes(script)
    (run_dir / "app.sh").chmod(0o755)
    args = [str(run_dir), "app.sh", str(marker_dir), "d1g35t", "application", str(tmp_path / "st")]
    argv = ["sh", "-c", START_SCRIPT, "phoenix-application", *args, RUN_SCRIPT]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)


def _wait(tmp_path: Path, seconds: int = 10) -> subprocess.CompletedProcess[str]:
    argv = ["sh", "-c", WAIT_SCRIPT, "phoenix-wait", str(tmp_path / "st"), str(seconds)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def _run_script(tmp_path: Path, script: bytes, marker_dir: Path) -> tuple[int, str]:
    started = _start(tmp_path, script, marker_dir)
    assert started.returncode == 0, started.stderr
    waited = _wait(tmp_path)
    assert waited.returncode == 0, waited
    code, _, log = waited.stdout.partition("\n")
    return int(code), log


def test_run_script_success_writes_marker_and_removes_run_dir(tmp_path: Path) -> None:
    code, log = _run_script(tmp_path, b"#!/bin/sh\necho out; echo err >&2\n", tmp_path / "applied")
    assert code == 0 and log == "out\nerr\n"
    assert (tmp_path / "applied" / "application").read_text() == "d1g35t"
    assert not (tmp_path / "run").exists()


def test_run_script_failure_keeps_exit_code_and_output_and_writes_no_marker(
    tmp_path: Path,
) -> None:
    code, log = _run_script(
        tmp_path, b"#!/bin/sh\necho missing >&2\nexit 7\n", tmp_path / "applied"
    )
    assert code == 7 and log == "missing\n"
    assert MARKER_FAILED not in log
    assert not (tmp_path / "applied").exists()
    assert not (tmp_path / "run").exists()


def test_run_script_tells_a_marker_failure_apart(tmp_path: Path) -> None:
    blocker = tmp_path / "applied"
    blocker.write_text("a file where the marker dir should be")
    code, log = _run_script(tmp_path, b"#!/bin/sh\necho done\n", blocker)
    assert code == 97 and log.startswith("done\n")
    assert MARKER_FAILED in log


def test_a_started_recipe_runs_on_without_its_starter_and_holds_the_guest(
    tmp_path: Path,
) -> None:
    """What keeps dpkg whole when Phoenix is killed: START returns at once, the recipe runs
    detached (its own session, output to the log), a second START is refused while it runs,
    and WAIT reports 'still running' (75) until the exit code is there."""
    assert _wait(tmp_path, 0).returncode == 3  # nothing ran yet
    gate = tmp_path / "gate"
    script = f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\necho finished\n"
    began = time.monotonic()
    assert _start(tmp_path, script.encode(), tmp_path / "applied").returncode == 0
    assert time.monotonic() - began < 5
    assert _wait(tmp_path, 0).returncode == 75
    again = subprocess.run(
        [
            "sh",
            "-c",
            START_SCRIPT,
            "x",
            str(tmp_path / "r2"),
            "a",
            "m",
            "d",
            "n",
            str(tmp_path / "st"),
            RUN_SCRIPT,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    assert again.returncode == 75 and "still running" in again.stderr
    gate.touch()
    waited = _wait(tmp_path)
    assert waited.returncode == 0 and waited.stdout == "0\nfinished\n"
    assert (tmp_path / "applied" / "application").read_text() == "d1g35t"


def test_unpack_script_streams_the_bundle_from_stdin(tmp_path: Path) -> None:
    bundle = Bundle("application", "app.sh", b"#!/bin/sh\n", {"conf/x.conf": b"x"}, {"ctid": 5})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stale").write_text("from an interrupted run")
    argv = ["sh", "-c", UNPACK_SCRIPT, "phoenix-application", str(run_dir)]
    subprocess.run(argv, input=pack(bundle), check=True)
    assert sorted(p.name for p in run_dir.rglob("*")) == ["app.sh", "conf", "guest.json", "x.conf"]
    assert os.stat(run_dir).st_mode & 0o777 == 0o700

"""Bundle packing and applied-markers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import (
    MARKER_DIR,
    MARKER_FAILED,
    RUN_SCRIPT,
    UNPACK_SCRIPT,
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


def _run_script(
    tmp_path: Path, script: bytes, marker_dir: Path
) -> subprocess.CompletedProcess[str]:
    """The in-guest RUN_SCRIPT, run for real by the host's sh on a prepared run dir."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "app.sh").write_bytes(script)
    (run_dir / "app.sh").chmod(0o755)
    argv = [
        "sh",
        "-c",
        RUN_SCRIPT,
        "phoenix-application",
        str(run_dir),
        "app.sh",
        str(marker_dir),
        "d1g35t",
        "application",
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_run_script_success_writes_marker_and_removes_run_dir(tmp_path: Path) -> None:
    res = _run_script(tmp_path, b"#!/bin/sh\necho out; echo err >&2\n", tmp_path / "applied")
    assert res.returncode == 0 and res.stdout == "out\nerr\n" and res.stderr == ""
    assert (tmp_path / "applied" / "application").read_text() == "d1g35t"
    assert not (tmp_path / "run").exists()


def test_run_script_failure_keeps_exit_code_and_output_and_writes_no_marker(
    tmp_path: Path,
) -> None:
    res = _run_script(tmp_path, b"#!/bin/sh\necho missing >&2\nexit 7\n", tmp_path / "applied")
    assert res.returncode == 7 and res.stdout == "missing\n"
    assert MARKER_FAILED not in res.stderr
    assert not (tmp_path / "applied").exists()
    assert not (tmp_path / "run").exists()


def test_run_script_tells_a_marker_failure_apart(tmp_path: Path) -> None:
    blocker = tmp_path / "applied"
    blocker.write_text("a file where the marker dir should be")
    res = _run_script(tmp_path, b"#!/bin/sh\necho done\n", blocker)
    assert res.returncode == 1 and res.stdout == "done\n"
    assert MARKER_FAILED in res.stderr


def test_unpack_script_streams_the_bundle_from_stdin(tmp_path: Path) -> None:
    bundle = Bundle("application", "app.sh", b"#!/bin/sh\n", {"conf/x.conf": b"x"}, {"ctid": 5})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stale").write_text("from an interrupted run")
    argv = ["sh", "-c", UNPACK_SCRIPT, "phoenix-application", str(run_dir)]
    subprocess.run(argv, input=pack(bundle), check=True)
    assert sorted(p.name for p in run_dir.rglob("*")) == ["app.sh", "conf", "guest.json", "x.conf"]
    assert os.stat(run_dir).st_mode & 0o777 == 0o700

"""Commands that only show write nothing that lasts, anywhere: no CA, no leaf keys, no
state dir, no LXC path, no file changed (plan, plan --offline, gateway lint, validate,
graph, schema, gateway routes); `gateway render --out` writes only into a new directory
and never through something planted in it.

Every file operation of the process is seen through a Python audit hook (`open` for
writing, mkdir, rename, remove, symlink, chmod ...), wherever it points; what a command
creates and removes again (gateway lint's scratch tree under /tmp) is allowed. Programs
the command runs (lxc-ls ...) are outside the hook: they only read."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link"}
CHANGES |= {"os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree"}
_recording: list[list[tuple[str, str, bool]]] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _recording:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
        writes = writes or (isinstance(flags, int) and bool(flags & WRITE_FLAGS))
    else:
        path, writes = args[0] if args else None, event in CHANGES
    if not writes or not isinstance(path, (str, bytes, os.PathLike)):
        return  # reads, and operations on open descriptors (their open was seen)
    name = os.fsdecode(path)
    if "__pycache__" in name:  # Python caching bytecode of a module imported late
        return
    _recording[-1].append((event, os.path.abspath(name), os.path.lexists(name)))


sys.addaudithook(_hook)


@contextmanager
def recording_writes() -> Iterator[list[tuple[str, str, bool]]]:
    """(event, path, existed before) of every file change the block makes."""
    seen: list[tuple[str, str, bool]] = []
    _recording.append(seen)
    try:
        yield seen
    finally:
        _recording.pop()


def lasting_writes(run: Callable[[], object]) -> list[str]:
    """The changes `run` makes that outlive it: what it created and left, and any change
    to what was there before (wherever on the filesystem)."""
    with recording_writes() as seen:
        run()
    created: set[str] = set()
    out = set()
    for event, path, existed in seen:
        if any(path == c or path.startswith(c + "/") for c in created):
            continue  # inside what the command made itself
        if existed:
            out.add(f"{event} {path} (existed before)")
        else:
            created.add(path)
    out |= {f"created {path}" for path in created if os.path.lexists(path)}
    return sorted(out)


def invoke(*args: str) -> Any:
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
    before = sorted(str(p.relative_to(lab.parent)) for p in lab.parent.rglob("*"))
    results = []
    assert lasting_writes(lambda: results.append(invoke("-c", str(lab), *args))) == []
    assert results[0].exit_code == 0, results[0].output
    assert sorted(str(p.relative_to(lab.parent)) for p in lab.parent.rglob("*")) == before


def test_the_check_sees_lasting_writes_anywhere_and_spares_scratch(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    existing = tmp_path / "existing"
    existing.write_text("x")
    outside = Path("/tmp") / f"phoenix-test-outside-{os.getpid()}"

    def planted() -> None:
        (nested / "new").write_text("deep below the top")  # not at the top level
        existing.write_text("changed")  # same names, changed content
        outside.mkdir()  # outside the temp dir altogether
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        (scratch / "f").write_text("gone again")
        shutil.rmtree(scratch)

    try:
        assert lasting_writes(planted) == sorted(
            [f"created {nested / 'new'}", f"created {outside}", f"open {existing} (existed before)"]
        )
    finally:
        outside.rmdir()


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

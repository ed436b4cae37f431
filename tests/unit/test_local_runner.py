"""The Runner contract (runners/base.py) as LocalRunner keeps it: how a command ended is a
result, whatever it was; the caller decides what a failure means."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from phoenix.errors import CommandFailed, PhoenixError
from phoenix.runners.base import NOT_FOUND, TIMED_OUT
from phoenix.runners.local import LocalRunner


def test_a_failing_command_is_a_result_until_checked() -> None:
    res = LocalRunner().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.returncode, res.stdout, res.stderr, res.ok) == (3, "out\n", "err\n", False)
    assert res.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    with pytest.raises(CommandFailed, match=r"copying: command failed \(exit 3\)") as info:
        res.check("copying")
    assert info.value.returncode == 3


def test_a_missing_program_is_a_result_with_the_shells_code() -> None:
    res = LocalRunner().run(["phoenix-no-such-program", "x"])
    assert res.returncode == NOT_FOUND
    assert "phoenix-no-such-program: command not found" in res.stderr
    assert res.argv == ("phoenix-no-such-program", "x")


def test_a_timeout_is_a_result_that_says_so() -> None:
    res = LocalRunner().run(["sh", "-c", "echo started; exec sleep 30"], timeout=0.5)
    assert res.returncode == TIMED_OUT
    assert "timed out after 0.5s" in res.stderr
    assert res.stdout == "started\n"


def test_a_file_as_input_is_streamed_to_the_command(tmp_path: Path) -> None:
    """A Path is opened as the child's stdin (an NVIDIA runfile is ~400 MB: it is never
    read into Phoenix's memory); the command reads exactly the file."""
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    source = tmp_path / "blob"
    source.write_bytes(data)
    res = LocalRunner().run(["sha256sum"], input=source)
    assert res.ok
    assert res.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_a_missing_input_file_is_a_phoenix_error(tmp_path: Path) -> None:
    with pytest.raises(PhoenixError, match=r"cannot read .*/gone to send to cat"):
        LocalRunner().run(["cat"], input=tmp_path / "gone")

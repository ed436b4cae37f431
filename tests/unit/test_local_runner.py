"""The Runner contract (runners/base.py) as LocalRunner keeps it: how a command ended is a
result, whatever it was; the caller decides what a failure means."""

from __future__ import annotations

import pytest

from phoenix.errors import CommandFailed
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

"""A start after an interrupted one: the guest settles first, and one failed start
(the interrupted `lxc-start` still tearing down) is tried again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.drivers.base import CommandLog
from phoenix.drivers.lxc import starting
from phoenix.drivers.lxc.context import LxcContext
from phoenix.errors import CommandFailed
from phoenix.runners.base import CommandResult
from phoenix.runners.recorded import RecordedRunner

ABORTING = 'wait_on_daemonized_start: Received container state "ABORTING" instead of "RUNNING"'


def context(tmp_path: Path, runner: RecordedRunner) -> LxcContext:
    return LxcContext(lxc_path=tmp_path, runner=runner, log=CommandLog())


def states(runner: RecordedRunner, answers: list[str]) -> None:
    """lxc-info answers these states in turn, then the last one for ever."""
    it: Iterator[str] = iter(answers)
    last = answers[-1]

    def responder(argv: tuple[str, ...]) -> CommandResult | None:
        nonlocal last
        if argv[0] != "lxc-info":
            return None
        last = next(it, last)
        return CommandResult(0, last + "\n", "", argv)

    runner.responders.insert(0, responder)


def tools(runner: RecordedRunner) -> list[str]:
    return [argv[0] for argv in runner.calls]


def deadline() -> float:
    return time.monotonic() + 30


def test_a_guest_still_starting_is_waited_for_and_not_started_twice(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-wait"])
    states(runner, ["STARTING", "RUNNING"])
    starting.start(context(tmp_path, runner), 101, deadline())
    assert tools(runner) == ["lxc-info", "lxc-wait", "lxc-info"]
    wait = runner.calls[1]
    assert wait[wait.index("-s") + 1] == "RUNNING|STOPPED"


def test_a_start_that_meets_an_aborting_guest_is_tried_once_more(tmp_path: Path) -> None:
    runner = RecordedRunner()
    codes = iter([1, 0])

    def lxc_start(argv: tuple[str, ...]) -> CommandResult | None:
        return CommandResult(next(codes), "", ABORTING, argv) if argv[0] == "lxc-start" else None

    runner.responders.insert(0, lxc_start)
    states(runner, ["STOPPED"])
    starting.start(context(tmp_path, runner), 101, deadline())
    assert tools(runner).count("lxc-start") == 2


def test_a_failed_start_after_which_the_guest_runs_is_not_repeated(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-start"], returncode=1, stderr=ABORTING)
    states(runner, ["STOPPED", "RUNNING"])
    starting.start(context(tmp_path, runner), 101, deadline())
    assert tools(runner).count("lxc-start") == 1


def test_a_guest_that_cannot_start_fails_after_the_second_try(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-start"], returncode=1, stderr="no such bridge")
    states(runner, ["STOPPED"])
    with pytest.raises(CommandFailed, match="starting guest 101"):
        starting.start(context(tmp_path, runner), 101, deadline())
    assert tools(runner).count("lxc-start") == starting.START_TRIES


def test_a_guest_gets_room_for_open_files_whatever_the_shell_had(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under an `ulimit -Hn 4096` shell the gateway's nginx could not raise its limit."""
    import resource

    limits = {resource.RLIMIT_NOFILE: (1024, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits[which])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limits.update({which: value}))
    starting.room_for_open_files()
    assert limits[resource.RLIMIT_NOFILE] == (1024, 524288)
    limits[resource.RLIMIT_NOFILE] = (1024, 1 << 20)
    starting.room_for_open_files()  # never lowered
    assert limits[resource.RLIMIT_NOFILE] == (1024, 1 << 20)

"""A recipe an earlier (killed) run left running in a guest: the executor waits for it
before its own, then trusts what it applied, unless the step is forced (a failed health
check re-runs the application whatever the marker says)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from phoenix.plan.events import CollectingReporter
from phoenix.recipes import runner
from phoenix.runners.base import CommandResult

from .conftest import Lab, guest

MARKER = f"{runner.MARKER_DIR}/application"


class EarlierRecipe:
    """Wraps the fake driver's exec: the guest's WAIT says 'still running' (75) until the
    host has waited once, then the earlier recipe ends, writing `writes` (its marker)."""

    def __init__(self, env: Lab, ctid: int, writes: dict[str, bytes]) -> None:
        self.real = env.driver.exec
        self.files = env.driver.guests[ctid].files
        self.writes = writes
        self.running = True
        self.log: list[str] = []

    def __call__(self, ctid: int, argv: Sequence[str], **kw: Any) -> CommandResult:
        if list(argv[:3]) == ["sh", "-c", runner.WAIT_SCRIPT] and self.running:
            if argv[-1] == "0":
                self.log.append("busy")
                return CommandResult(runner.STILL_RUNNING, "", "still running")
            self.running = False
            self.files.update(self.writes)
            self.log.append("ended")
            return CommandResult(0, "0\nthe earlier run's recipe\n", "")
        if list(argv[:3]) == ["sh", "-c", runner.START_SCRIPT]:
            self.log.append("start")
        return self.real(ctid, argv, **kw)


def app_guest(**extra: Any) -> dict[str, Any]:
    return guest("phxt-app", 11, application_script="app.sh", **extra)


def test_a_recipe_left_running_that_applies_the_bundle_is_waited_for_and_not_run_twice(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_lab({"101": app_guest()})
    assert env.converge().result.ok
    files = env.driver.guests[101].files
    digest = files.pop(MARKER)  # the killed run's recipe has not written it yet
    earlier = EarlierRecipe(env, 101, {MARKER: digest})
    monkeypatch.setattr(env.driver, "exec", earlier)
    ran: list[str] = []

    def script_handler(
        c: int, s: str, e: Mapping[str, str], f: Mapping[str, bytes]
    ) -> CommandResult:
        ran.append(s)
        return CommandResult(0, "", "")

    env.driver.script_handler = script_handler
    reporter = CollectingReporter()
    outcome = env.converge(reporter=reporter)
    assert [s.kind for s in outcome.plan.steps] == ["application"]
    assert outcome.result.ok and ran == []
    assert earlier.log == ["busy", "ended"]
    assert "step_skipped" in reporter.kinds(101) and "step_done" not in reporter.kinds(101)
    assert files[MARKER] == digest


def test_a_forced_step_waits_for_a_recipe_left_running_then_runs_anyway(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The application's marker says applied, but its health check fails: the forced
    re-run must not be skipped because an earlier recipe (which re-wrote the same marker)
    was still running; it starts only once that one ended."""
    env = make_lab({"101": app_guest(health_check={"command": "probe-app", "retries": 1})})
    assert env.converge().result.ok
    broken = {"now": True}

    def exec_handler(ctid: int, argv: Sequence[str]) -> CommandResult:
        return CommandResult(1, "", "refused") if broken["now"] else CommandResult(0, "", "")

    def script_handler(
        c: int, s: str, e: Mapping[str, str], f: Mapping[str, bytes]
    ) -> CommandResult:
        broken["now"] = False
        return CommandResult(0, "", "")

    env.driver.exec_handler = exec_handler
    env.driver.script_handler = script_handler
    files = env.driver.guests[101].files
    earlier = EarlierRecipe(env, 101, {MARKER: files[MARKER]})
    monkeypatch.setattr(env.driver, "exec", earlier)
    outcome = env.converge()
    assert [(s.kind, getattr(s, "force", False)) for s in outcome.plan.steps] == [
        ("application", True),
        ("health_check", False),
    ]
    assert outcome.result.ok and not broken["now"]
    assert earlier.log[:2] == ["busy", "ended"] and earlier.log[-1] == "start"

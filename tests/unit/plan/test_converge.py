"""Converge with the fake driver: idempotency, single changes, failure and resume."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from phoenix.plan.journal import Journal
from phoenix.recipes.bundle import RUN_DIR
from phoenix.runners.base import CommandResult

from .conftest import Lab, lab


def test_second_converge_makes_no_mutating_call(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    first = env.converge()
    assert first.result.ok, first.result
    assert env.driver.log.mutations(), "the first run must have done something"

    second_mutations = env.mutations_during(lambda: env.converge())
    assert second_mutations == []
    again = env.converge()
    assert again.plan.up_to_date
    assert [g.up_to_date for g in again.plan.guests] == [True, True, True]


def test_clone_inherits_identical_feature_but_runs_its_own_application(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab()
    env.converge()
    pushes = [m for m in env.driver.log.mutations() if m[0] == "push"]
    assert pushes == [("push", "900", "/tmp/phoenix_run"), ("push", "101", "/tmp/phoenix_run")]
    assert set(env.driver.markers(101)) == {"feature-base_setup", "application"}
    assert "application" not in env.driver.markers(900)


def test_memory_change_changes_only_memory(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    guests = lab()
    guests["101"]["memory_mb"] = 1024
    env.write(guests)

    outcome_plan = env.converge
    mutations = env.mutations_during(outcome_plan)
    assert mutations == [("configure", "101", "memory_mb")]
    assert env.driver.guests[101].settings.memory_mb == 1024
    assert env.converge().plan.up_to_date


def test_memory_change_plan_shows_old_and_new(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    guests = lab()
    guests["101"]["memory_mb"] = 1024
    env.write(guests)
    from phoenix.plan.model import Configure
    from phoenix.plan.planner import plan

    the_plan = plan(env.inventory, env.driver)
    steps = the_plan.steps
    assert [(s.ctid, s.kind) for s in steps] == [(101, "configure")]
    assert isinstance(steps[0], Configure)
    change = steps[0].changes[0]
    assert (change.field, change.old, change.new) == ("memory_mb", 512, 1024)
    assert steps[0].detail == "configure memory_mb: 512 -> 1024"


def failing_app(
    ctid: int, script: str, env: Mapping[str, str], files: Mapping[str, bytes]
) -> CommandResult:
    if script == "app.sh":
        return CommandResult(3, "installing thing\nERROR: thing-server refused to start\n", "")
    return CommandResult(0, "ok\n", "")


def test_failing_application_fails_with_output_then_resumes(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab()
    env.driver.script_handler = failing_app
    first = env.converge()

    assert not first.result.ok
    assert set(first.result.failed) == {101}
    message = str(first.result.failed[101])
    assert "guest 101" in message and "app.sh" in message and "exit 3" in message
    assert "ERROR: thing-server refused to start" in message
    assert set(first.result.done) == {900, 102}
    # marker only on success; the run dir is removed even on failure
    assert "application" not in env.driver.markers(101)
    assert not [p for p in env.driver.guests[101].files if p.startswith(RUN_DIR)]
    inflight = Journal.read_inflight(env.state)
    assert inflight[101]["kind"] == "application" and inflight[101]["status"] == "failed"

    env.driver.script_handler = lambda *a: CommandResult(0, "fixed\n", "")
    second = env.converge()
    assert second.result.ok
    steps = [(s.ctid, s.kind) for s in second.plan.steps]
    assert steps == [(101, "application")], "completed steps must not be redone"
    assert Journal.read_inflight(env.state) == {}
    assert env.converge().plan.up_to_date


def test_journal_records_every_step(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    outcome = env.converge()
    records = Journal(env.state, outcome.result.run_id).records()
    started = [(r["ctid"], r["kind"]) for r in records if r["status"] == "started"]
    finished = [(r["ctid"], r["kind"]) for r in records if r["status"] in ("done", "skipped")]
    assert sorted(started) == sorted(finished)
    assert (900, "create") in started and (101, "clone") in started


def test_failed_source_blocks_its_clone_but_not_independent_guests(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab()

    def base_fails(
        ctid: int, script: str, e: Mapping[str, str], f: Mapping[str, bytes]
    ) -> CommandResult:
        return (
            CommandResult(1, "apt broke\n", "")
            if script.startswith("feature_")
            else CommandResult(0, "", "")
        )

    env.driver.script_handler = base_fails
    outcome = env.converge()
    assert set(outcome.result.failed) == {900}
    assert set(outcome.result.blocked) == {101}
    assert outcome.result.done == [102]
    assert 101 not in env.driver.guests

"""Executor mechanics: host lock, parallelism (bounded), dependency and boot order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from phoenix.errors import DriverError, LockBusy, PhoenixError, PlanError
from phoenix.plan.events import CollectingReporter, Event, Reporter
from phoenix.plan.executor import Executor, RunResult
from phoenix.plan.journal import Journal
from phoenix.plan.lock import host_lock
from phoenix.plan.model import Start
from phoenix.plan.planner import Planner
from phoenix.plan.run import converge, power_plan, run_plan
from phoenix.plan.stop import StopRequest
from phoenix.runners.base import CommandResult

from .conftest import Lab, guest


def independent(n: int) -> dict[str, dict[str, Any]]:
    return {str(200 + i): guest(f"phxt-g{i}", 20 + i) for i in range(n)}


def test_second_run_is_refused_while_the_lock_is_held(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    with host_lock(env.state), pytest.raises(LockBusy) as err:
        env.converge()
    assert str(env.state / "phoenix.lock") in str(err.value)
    assert env.driver.log.mutations() == []
    assert env.converge().result.ok  # released afterwards


def test_lock_is_held_across_threads_of_one_process(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    errors: list[BaseException] = []
    with host_lock(env.state):

        def other() -> None:
            try:
                env.converge()
            except LockBusy as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1


def test_independent_guests_converge_in_parallel(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(independent(4))
    barrier = threading.Barrier(4, timeout=10)

    def hook(op: str, ctid: int) -> None:
        if op == "create":
            barrier.wait()  # breaks (and the run fails) unless all four create at once

    env.driver.on_mutate = hook
    outcome = env.converge(parallel=4)
    assert outcome.result.ok, outcome.result
    assert env.driver.max_active == 4


def test_parallelism_is_bounded(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(independent(5))
    barrier = threading.Barrier(2, timeout=10)
    creates: list[int] = []
    lock = threading.Lock()

    def hook(op: str, ctid: int) -> None:
        if op != "create":
            return
        with lock:
            creates.append(ctid)
            first_two = len(creates) <= 2
        if first_two:
            barrier.wait()  # breaks (and the run fails) unless two create at once
        else:
            time.sleep(0.05)  # give a third worker, if there were one, time to overlap

    env.driver.on_mutate = hook
    outcome = env.converge(parallel=2)
    assert outcome.result.ok, outcome.result
    assert env.driver.max_active == 2


def test_clone_waits_for_its_source_snapshot(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    timeline = env.driver.timeline
    golden = next(e for e in timeline if e.op == "snapshot" and e.ctid == 900 and e.end)
    clone = next(e for e in timeline if e.op == "clone" and e.ctid == 101)
    assert clone.start >= golden.end


def test_starts_follow_boot_order(make_lab: Callable[..., Lab]) -> None:
    guests = {
        "301": guest("phxt-c", 31, boot_order=3),
        "302": guest("phxt-a", 32, boot_order=1),
        "303": guest("phxt-b", 33, boot_order=2),
        "304": guest("phxt-d", 34, boot_order=0),
    }
    env = make_lab(guests)
    outcome = env.converge(parallel=4)
    assert outcome.result.ok
    starts = [e.ctid for e in env.driver.timeline if e.op == "start"]
    assert starts == [304, 302, 303, 301]
    assert outcome.plan.start_order == (304, 302, 303, 301)


def test_boot_order_never_deadlocks_against_dependencies(make_lab: Callable[..., Lab]) -> None:
    # 401 must start first by boot order but needs 402, which boots last.
    guests = {
        "401": guest("phxt-x", 41, boot_order=1, dependencies=["402"]),
        "402": guest("phxt-y", 42, boot_order=9),
        "403": guest("phxt-z", 43, boot_order=5),
    }
    env = make_lab(guests)
    outcome = env.converge(parallel=2)
    assert outcome.result.ok
    starts = [e.ctid for e in env.driver.timeline if e.op == "start"]
    assert starts.index(402) < starts.index(401)
    assert starts.index(403) < starts.index(402)


def test_snapshot_of_running_guest_on_a_stop_only_backend_is_the_drivers_job(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab()
    env.driver.snapshot_needs_stop = True
    outcome = env.converge()
    assert outcome.result.ok, outcome.result
    ops = [(e.op, e.ctid) for e in env.driver.timeline if e.ctid == 900]
    # the driver stopped it for the snapshot and started it again, then the plan parked it
    # (a clone source not run at boot); the executor asked for one snapshot per name
    assert ops[-4:] == [("stop", 900), ("snapshot", 900), ("start", 900), ("stop", 900)]
    assert env.driver.guests[900].state == "stopped"
    assert set(env.driver.guests[900].snapshots) == {"pre-configured", "final-form", "golden"}
    assert env.converge().plan.up_to_date


def test_starting_a_guest_that_does_not_exist_says_how_to_create_it(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab()
    with pytest.raises(
        PlanError, match=r"guest 102 \(phxt-solo\) does not exist yet.*converge 102"
    ):
        power_plan(env.inventory, env.driver, [102], "start")
    assert power_plan(env.inventory, env.driver, [102], "stop").guests[0].steps == ()


class _Boom(Exception):
    """Stands for a broken pipe in a reporter (`phoenix converge --json | head`)."""


def _raising_reporter(kind: str, collect: CollectingReporter) -> Reporter:
    def reporter(event: Event) -> None:
        collect(event)
        if event.kind == kind:
            raise _Boom(kind)

    return reporter


@pytest.mark.parametrize("kind", ["guest_done", "step_done", "step_started", "guest_blocked"])
def test_a_reporter_that_raises_ends_the_run_with_its_error_and_frees_the_lock(
    make_lab: Callable[..., Lab], kind: str
) -> None:
    env = make_lab()
    if kind == "guest_blocked":  # 900 fails, so 101 is blocked and its report raises
        env.driver.script_handler = lambda c, s, e, f: CommandResult(1, "no\n", "")
    collect = CollectingReporter()
    result: list[object] = []

    def run() -> None:
        try:
            reporter = _raising_reporter(kind, collect)
            converge(env.inventory, env.driver, None, None, reporter, parallel=1)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the run hangs after its reporter raised"
    assert len(result) == 1 and isinstance(result[0], _Boom), result
    # the journal keeps what ended the run, traceback and all (the CLI shows one line)
    runs = sorted((env.state / "journal").glob("*.jsonl"))
    crashes = [r for r in Journal(env.state, runs[-1].stem).records() if r["status"] == "crashed"]
    assert len(crashes) == 1 and crashes[0]["error"] == f"_Boom: {kind}"
    assert "Traceback" in crashes[0]["traceback"] and "raise _Boom(kind)" in crashes[0]["traceback"]
    with host_lock(env.state):  # released: taking it does not raise LockBusy
        pass
    # nothing new was launched after the failure: no guest started after the raise
    raised_at = next(i for i, e in enumerate(collect.events) if e.kind == kind)
    later = [e for e in collect.events[raised_at + 1 :] if e.kind == "guest_started"]
    assert later == []


def test_a_worker_bug_is_one_guests_failure_with_the_traceback_in_the_journal(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab(independent(3))

    def hook(op: str, ctid: int) -> None:
        if op == "create" and ctid == 200:
            raise KeyError("bug")
        if op == "create" and ctid == 201:
            raise FileExistsError(17, "File exists", "/var/lib/lxc/201")

    env.driver.on_mutate = hook
    outcome = env.converge()
    assert set(outcome.result.failed) == {200, 201}
    assert "File exists: '/var/lib/lxc/201'" in str(outcome.result.failed[201])
    assert outcome.result.done == [202]
    assert "unexpected KeyError: 'bug'" in str(outcome.result.failed[200])
    records = Journal(env.state, outcome.result.run_id).records()
    traces = {r["ctid"]: r["traceback"] for r in records if r["status"] == "failed"}
    assert "Traceback" in traces[200] and "KeyError" in traces[200]


def test_dependents_of_a_failure_are_blocked_transitively(
    make_lab: Callable[..., Lab],
) -> None:
    guests = {
        "501": guest("phxt-a", 51),
        "502": guest("phxt-b", 52, dependencies=["501"]),
        "503": guest("phxt-c", 53, dependencies=["502"]),
        "504": guest("phxt-d", 54),
    }
    env = make_lab(guests)

    def hook(op: str, ctid: int) -> None:
        if op == "start" and ctid == 501:
            raise DriverError("501 does not boot")

    env.driver.on_mutate = hook
    outcome = env.converge()
    assert set(outcome.result.failed) == {501}
    assert set(outcome.result.blocked) == {502, 503}
    assert outcome.result.done == [504]
    assert 502 not in env.driver.guests and 503 not in env.driver.guests


def test_a_stop_request_launches_nothing_more_and_lists_what_was_left(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab(independent(3))
    stop = StopRequest()

    def hook(op: str, ctid: int) -> None:
        if op == "start" and ctid == 200:
            stop.set("SIGINT")

    env.driver.on_mutate = hook
    collect = CollectingReporter()
    outcome = converge(env.inventory, env.driver, None, None, collect, parallel=1, stop=stop)
    result = outcome.result
    assert result.interrupted == "SIGINT" and not result.ok
    # the running step (start of 200) ended; nothing else was launched
    assert [e.op for e in env.driver.timeline if e.ctid == 200] == ["create", "start"]
    assert {e.ctid for e in env.driver.timeline} == {200}
    assert set(result.left) == {200, 201, 202}
    assert result.left[201] == "not started"
    assert result.left[200].startswith("stopped before")
    assert collect.kinds()[-1] == "run_done"
    # the next run finishes the work, and the one after changes nothing
    assert env.converge().result.ok
    assert env.converge().plan.up_to_date


def test_a_stop_request_in_a_sequential_plan(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(independent(3))
    assert env.converge().result.ok
    stop = StopRequest()

    def hook(op: str, ctid: int) -> None:
        stop.set("SIGTERM")

    env.driver.on_mutate = hook
    the_plan = power_plan(env.inventory, env.driver, [200, 201, 202], "delete")
    result = run_plan(env.inventory, env.driver, the_plan, stop=stop)
    assert result.interrupted == "SIGTERM"
    assert len(result.done) == 1 and len(result.left) == 2


def test_stale_inflight_entries_are_resolved_not_reported(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(independent(2))
    assert env.converge().result.ok
    journal = Journal(env.state)
    journal.started(Start(200, "start"))  # a run killed during a start that finished
    collect = CollectingReporter()
    the_plan = power_plan(env.inventory, env.driver, [200, 201], "delete")
    run_plan(env.inventory, env.driver, the_plan, collect)
    assert "resume" not in collect.kinds()
    assert Journal.read_inflight(env.state) == {}


def test_what_an_interrupted_run_left_is_planned_away_by_delete_and_by_converge(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab(independent(2))
    env.driver.leftovers[200] = "/lxc/.deleting-200 (a delete that did not finish)"
    the_plan = power_plan(env.inventory, env.driver, [200, 201], "delete")
    steps = [(s.ctid, s.kind, s.detail) for s in the_plan.steps]
    assert steps == [(200, "destroy", "remove /lxc/.deleting-200 (a delete that did not finish)")]
    assert run_plan(env.inventory, env.driver, the_plan).ok
    assert env.driver.leftovers == {}
    env.driver.leftovers[201] = "/lxc/201 (a create or clone stopped before its config)"
    outcome = env.converge()
    assert "after removing /lxc/201" in outcome.plan.guest(201).steps[0].detail
    assert outcome.result.ok and env.driver.leftovers == {}


def test_a_sequential_plan_blocks_every_guest_after_a_failure(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab(independent(3))
    assert env.converge().result.ok
    destroyed: list[int] = []

    def hook(op: str, ctid: int) -> None:
        if op == "destroy":
            destroyed.append(ctid)
            if len(destroyed) == 1:
                raise DriverError(f"guest {ctid} is busy")

    env.driver.on_mutate = hook
    the_plan = power_plan(env.inventory, env.driver, [200, 201, 202], "delete")
    result = run_plan(env.inventory, env.driver, the_plan)
    first, *rest = [gp.ctid for gp in the_plan.guests]
    assert set(result.failed) == {first} and destroyed == [first]
    assert result.blocked == {c: "an earlier guest failed" for c in rest}
    assert set(env.driver.guests) >= {first, *rest}  # nothing after the failure was deleted


def test_a_failed_run_reports_each_guest_and_step_and_sums_up_every_failure(
    make_lab: Callable[..., Lab],
) -> None:
    """What the operator sees (the events the CLI prints) and the one error a failed run
    raises: every failed guest with its error, every blocked guest with why."""
    guests = {
        "501": guest("phxt-a", 51),
        "502": guest("phxt-b", 52, dependencies=["501"]),
        "504": guest("phxt-d", 54),
    }
    env = make_lab(guests)

    def hook(op: str, ctid: int) -> None:
        if op == "start" and ctid == 501:
            raise DriverError("guest 501 does not boot")
        if op == "create" and ctid == 504:
            raise KeyError("bug")

    env.driver.on_mutate = hook
    collect = CollectingReporter()
    result = env.converge(reporter=collect).result
    events = collect.events
    started = {e.ctid: e.message for e in events if e.kind == "guest_started"}
    assert started == {501: "phxt-a", 504: "phxt-d"}
    failed = {e.ctid: e.message for e in events if e.kind == "step_failed"}
    assert failed[501] == "guest 501 does not boot"
    assert failed[504] == "guest 504: create from debootstrap:bookworm: unexpected KeyError: 'bug'"
    assert {e.ctid: e.message for e in events if e.kind == "guest_failed"} == failed
    assert result.blocked == {502: "needs 501, which did not converge"}
    with pytest.raises(PhoenixError) as raised:
        result.raise_for_failures()
    lines = str(raised.value).splitlines()
    assert lines[0] == f"2 guest(s) failed, 1 blocked (journal run {result.run_id}):"
    assert lines[1:] == [
        "guest 501 does not boot",
        failed[504],
        "guest 502: not converged: needs 501, which did not converge",
    ]


def test_the_summary_of_a_stopped_run_names_what_was_left_too() -> None:
    result = RunResult(
        "run-9",
        failed={201: DriverError("guest 201 is busy")},
        left={202: "not started", 203: "not started"},
        interrupted="SIGTERM",
    )
    with pytest.raises(PhoenixError) as raised:
        result.raise_for_failures()
    assert str(raised.value).splitlines() == [
        "interrupted by SIGTERM: 2 guest(s) left, 1 guest(s) failed, 0 blocked (journal run run-9):",
        "guest 201 is busy",
        "guest 202: left for the next run: not started",
        "guest 203: left for the next run: not started",
    ]


def test_a_run_records_into_the_journal_it_is_given(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(independent(1))
    the_plan = Planner(env.inventory, env.driver).plan()
    executor = Executor(env.driver, env.state, parallel=1)
    with host_lock(env.state):
        result = executor.run(the_plan, take_lock=False, journal=Journal(env.state, "run-given"))
    assert result.ok and result.run_id == "run-given"
    assert Journal(env.state, "run-given").records()

"""Executor mechanics: host lock, parallelism (bounded), dependency and boot order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from phoenix.errors import LockBusy, PlanError
from phoenix.plan.lock import host_lock
from phoenix.plan.run import power_plan

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
    outcome = env.converge(parallel=2)
    assert outcome.result.ok
    assert 1 <= env.driver.max_active <= 2


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


def test_snapshot_of_running_guest_falls_back_to_stop_snapshot_start(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab()
    env.driver.snapshot_needs_stop = True
    outcome = env.converge()
    assert outcome.result.ok, outcome.result
    ops = [(e.op, e.ctid) for e in env.driver.timeline if e.ctid == 900]
    assert ops[-3:] == [("stop", 900), ("snapshot", 900), ("start", 900)]
    assert env.driver.guests[900].state == "running"
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

"""Journal.read_inflight against a hand-edited or damaged inflight.json."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from phoenix.plan.desired import desired_settings
from phoenix.plan.events import CollectingReporter
from phoenix.plan.journal import Journal, new_run_id
from phoenix.plan.model import Create
from phoenix.plan.planner import Planner
from tests.unit.plan.conftest import Lab, guest


def test_read_inflight_keeps_only_ascii_ctids(tmp_path: Path) -> None:
    # "²" passes str.isdigit() but int() rejects it; Arabic-Indic "101" int() reads as 101:
    # neither is a ctid the journal wrote, and neither may stop the planner.
    (tmp_path / "journal").mkdir()
    step = {"kind": "create", "step": "create", "run": "r", "status": "started"}
    (tmp_path / "journal" / "inflight.json").write_text(
        json.dumps({"²": step, "\u0661\u0660\u0661": step, "102": step})
    )
    assert Journal.read_inflight(tmp_path) == {102: step}


def test_a_step_is_in_flight_while_it_runs_and_not_after(make_lab: Callable[..., Lab]) -> None:
    """What a crash mid-step leaves behind: the journal names the step until it ends."""
    env = make_lab({"102": guest("phxt-solo", 12)})
    seen: list[dict[str, Any] | None] = []
    env.driver.on_mutate = lambda op, ctid: seen.append(
        Journal.read_inflight(env.state).get(ctid) if op == "create" else None
    )
    assert env.converge().result.ok
    (during,) = [s for s in seen if s is not None]
    assert (during["kind"], during["status"]) == ("create", "started")
    assert Journal.read_inflight(env.state) == {}


def test_converge_finishes_what_a_dead_run_left_half_made(make_lab: Callable[..., Lab]) -> None:
    """A run killed inside a create leaves a guest that exists but was never finished:
    the next converge reads the journal and makes it again from scratch."""
    env = make_lab({"102": guest("phxt-solo", 12)})
    assert env.converge().result.ok
    assert not Planner(env.inventory, env.driver).plan(None).steps  # converged, by settings
    create = Create(102, "create", "debootstrap:bookworm", desired_settings(env.inventory, 102))
    Journal(env.state).started(create)  # the run that died there
    mutations = env.mutations_during(env.converge)
    assert [m[0] for m in mutations][:2] == ["destroy", "create"]
    assert Journal.read_inflight(env.state) == {}


def test_every_record_says_what_ran_when_and_how_it_ended(tmp_path: Path) -> None:
    """The journal is what an operator (and the next run) reads after a crash: each record
    has its run, time, guest, step and status; a failure keeps its error, a bug its trace."""
    journal = Journal(tmp_path, "run-1")
    step = Create(102, "create from tpl", "tpl.tar.zst", None)  # type: ignore[arg-type]
    journal.started(step)
    assert Journal.read_inflight(tmp_path) == {
        102: {"run": "run-1", "kind": "create", "step": "create from tpl", "status": "started"}
    }
    assert Journal.interrupted(tmp_path) == {102: "create"}
    try:
        raise ValueError("boom")
    except ValueError as exc:
        journal.failed(step, "x" * 3000, exc)
    failed = Journal.read_inflight(tmp_path)[102]
    assert failed == {
        "run": "run-1",
        "kind": "create",
        "step": "create from tpl",
        "status": "failed",
        "error": "x" * 500,
    }
    journal.done(step)
    assert Journal.read_inflight(tmp_path) == {}
    records = journal.records()
    assert [r["status"] for r in records] == ["started", "failed", "done"]
    for record in records:
        assert {"run", "time", "ctid", "kind", "step", "status"} <= set(record)
        assert (record["run"], record["ctid"], record["kind"]) == ("run-1", 102, "create")
        assert abs(record["time"] - time.time()) < 60 and record["time"] == round(record["time"], 3)
    assert records[1]["error"] == "x" * 2000
    assert (
        records[1]["traceback"].startswith("Traceback")
        and "ValueError: boom" in records[1]["traceback"]
    )
    assert "error" not in records[0] and "traceback" not in records[2]
    lines = journal.path.read_text().splitlines()
    assert lines[0] == json.dumps(records[0], sort_keys=True)  # one sorted object a line


def test_a_crash_of_the_whole_run_is_recorded_with_its_trace(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "deep" / "state", "run-2")
    try:
        raise RuntimeError("reporter broke")
    except RuntimeError as exc:
        journal.crashed(exc)
    (record,) = journal.records()
    assert record["status"] == "crashed" and record["run"] == "run-2"
    assert record["error"] == "RuntimeError: reporter broke"
    assert "Traceback" in record["traceback"] and "reporter broke" in record["traceback"]


def test_run_ids_sort_by_start_time_and_are_plain_file_names() -> None:
    """`<run id>.jsonl` files list in the order the runs started."""
    run_id = new_run_id()
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}", run_id), run_id


def test_a_crash_record_keeps_its_time_to_the_millisecond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1767225600.123456)
    journal = Journal(tmp_path, "run-3")
    journal.crashed(RuntimeError("x"))
    (record,) = journal.records()
    assert record["time"] == 1767225600.123


def test_resolve_drops_only_the_settled_guests_and_tolerates_unknown_ones(tmp_path: Path) -> None:
    """The executor resolves guests whose unfinished step observation shows settled; the
    other guests' entries must stay, or their half-made state would be forgotten."""
    journal = Journal(tmp_path, "run-4")
    for ctid in (102, 103):
        journal.started(Create(ctid, "create", "tpl.tar.zst", None))  # type: ignore[arg-type]
    journal.resolve([999])
    assert set(Journal.read_inflight(tmp_path)) == {102, 103}
    journal.resolve([102])
    assert set(Journal.read_inflight(tmp_path)) == {103}
    journal.resolve([103, 999])
    assert Journal.read_inflight(tmp_path) == {}


def test_a_resumed_step_is_reported_with_what_the_dead_run_was_doing(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab({"102": guest("phxt-solo", 12)})
    assert env.converge().result.ok
    settings = desired_settings(env.inventory, 102)
    Journal(env.state, "run-dead").started(Create(102, "create it", "tpl.tar.zst", settings))
    collect = CollectingReporter()
    env.converge(reporter=collect)
    (resume,) = [e for e in collect.events if e.kind == "resume"]
    assert (resume.ctid, resume.step, resume.step_kind) == (102, "create it", "create")
    assert resume.message == (
        "run run-dead left this step started; resuming from the observed state"
    )

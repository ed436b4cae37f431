"""The executor: runs a Plan under the host lock, journaling every step.

Each guest's steps are cut into parts (pre, start, rest) that a
`graphlib.TopologicalSorter` orders (`phoenix.plan.parts`). Ready parts run on a bounded
thread pool; the loop waits with `concurrent.futures.wait(FIRST_COMPLETED)`
and reads every `future.result()`, so an exception in a worker or a reporter is never
lost: it stops the run and is raised once running parts ended (the lock is released on
the way out). A failed guest fails itself and blocks the guests that need it; the others
carry on. A stop request (SIGINT/SIGTERM) launches nothing more: parts that run end at
their current step, and what was left is listed in the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

from phoenix.drivers.base import Driver
from phoenix.errors import DriverError, PhoenixError, PlanError
from phoenix.plan.dispatch import lifecycle
from phoenix.plan.events import Event, Reporter, null_reporter
from phoenix.plan.health import run_health_check
from phoenix.plan.journal import Journal
from phoenix.plan.lock import host_lock
from phoenix.plan.model import Application, CheckHealth, Feature, GuestPlan, Plan, Step
from phoenix.plan.parts import GuestRun, Node, boot_ranks, part_graph
from phoenix.plan.stop import Interrupted, StopRequest
from phoenix.recipes.runner import (
    await_idle,
    is_applied,
    marker_name,
    read_markers,
    run_bundle,
)


@dataclass
class RunResult:
    """What a run did: guests finished, failed (with the error), blocked by a failure,
    left undone because the run was stopped (`interrupted` names why: SIGINT, SIGTERM)."""

    run_id: str
    done: list[int] = field(default_factory=list)
    failed: dict[int, PhoenixError] = field(default_factory=dict)
    blocked: dict[int, str] = field(default_factory=dict)
    left: dict[int, str] = field(default_factory=dict)
    interrupted: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked and not self.left and not self.interrupted

    def raise_for_failures(self) -> None:
        """Raise the single failure as is, or one PhoenixError naming every failure."""
        if self.ok:
            return
        if len(self.failed) == 1 and not self.blocked and not self.left:
            raise next(iter(self.failed.values()))
        lines = [
            str(e) if str(e).startswith(f"guest {c}") else f"guest {c}: {e}"
            for c, e in sorted(self.failed.items())
        ]
        lines += [f"guest {c}: not converged: {why}" for c, why in sorted(self.blocked.items())]
        lines += [
            f"guest {c}: left for the next run: {why}" for c, why in sorted(self.left.items())
        ]
        head = f"{len(self.failed)} guest(s) failed, {len(self.blocked)} blocked"
        if self.interrupted:
            head = f"interrupted by {self.interrupted}: {len(self.left)} guest(s) left, " + head
        raise PhoenixError(f"{head} (journal run {self.run_id}):\n" + "\n".join(lines))


class Executor:
    """Runs plans on one driver; see the module docstring."""

    def __init__(
        self,
        driver: Driver,
        state_dir: Path,
        reporter: Reporter = null_reporter,
        parallel: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        stop: StopRequest | None = None,
    ) -> None:
        self.driver = driver
        self.state_dir = state_dir
        self.reporter = reporter
        self.parallel = max(1, parallel)
        self.sleep = sleep
        self.stop = stop or StopRequest()

    # -- entry points ----------------------------------------------------------------

    def run(self, plan: Plan, take_lock: bool = True, journal: Journal | None = None) -> RunResult:
        """Execute `plan` (taking the host lock unless the caller already holds it)."""
        if take_lock:
            with host_lock(self.state_dir):
                return self._run(plan, journal)
        return self._run(plan, journal)

    def _run(self, plan: Plan, journal: Journal | None) -> RunResult:
        journal = journal or Journal(self.state_dir)
        result = RunResult(journal.run_id)
        work = [gp for gp in plan.guests if gp.steps]
        self._resolve_inflight(plan, journal)
        for gp in plan.guests:  # a cluster node it needs cannot be changed now
            if gp.held is not None:
                self._blocked(gp.ctid, gp.held, result)
        self.reporter(
            Event("run_started", message=f"{len(work)} guest(s) to change", total=len(work))
        )
        try:
            if plan.sequential:
                self._run_sequential(work, journal, result)
            else:
                self._run_graph(plan, work, journal, result)
        except BaseException as exc:
            journal.crashed(exc)
            raise
        if self.stop.is_set():
            result.interrupted = self.stop.reason
        self.reporter(Event("run_done", message=_verdict(result), total=len(work)))
        return result

    def _resolve_inflight(self, plan: Plan, journal: Journal) -> None:
        """Steps an earlier run left unfinished, checked against what was observed: a guest
        this plan leaves alone is as it should be (the entry is stale and goes); a guest it
        changes is resumed from its observed state (told once, by a converge); others are
        not in scope. Any entry goes once its guest's next step completes."""
        in_plan = {gp.ctid: gp for gp in plan.guests}
        stale = []
        for ctid, info in sorted(Journal.read_inflight(self.state_dir).items()):
            gp = in_plan.get(ctid)
            if gp is None:
                continue
            if not gp.steps:
                stale.append(ctid)
                continue
            if plan.action != "converge":  # start/stop/delete do not resume a converge
                continue
            self.reporter(
                Event(
                    "resume",
                    ctid,
                    str(info.get("step", "")),
                    str(info.get("kind", "")),
                    f"run {info.get('run')} left this step {info.get('status')}; "
                    "resuming from the observed state",
                )
            )
        if stale:
            journal.resolve(stale)

    # -- scheduling ------------------------------------------------------------------

    def _run_sequential(self, work: list[GuestPlan], journal: Journal, result: RunResult) -> None:
        for gp in work:
            run = GuestRun(gp)
            if self.stop.is_set():
                self._left(run, result)
                continue
            if result.failed:
                self._blocked(gp.ctid, "an earlier guest failed", result)
                continue
            try:
                error = self._part(run, (0, len(gp.steps)), journal)
            except Interrupted:
                self._left(run, result)
                continue
            self._guest_finished(run, error, result)

    def _run_graph(
        self, plan: Plan, work: list[GuestPlan], journal: Journal, result: RunResult
    ) -> None:
        runs = {gp.ctid: GuestRun(gp) for gp in work}
        sorter = part_graph(plan, runs)
        rank = boot_ranks(plan)
        bad: set[int] = set()  # failed, blocked or left: its later parts do not run
        ready: list[Node] = []
        running: dict[Future[PhoenixError | None], Node] = {}
        crash: BaseException | None = None
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="phoenix") as pool:
            while sorter.is_active():
                ready.extend(sorter.get_ready())
                ready.sort(key=lambda n: (rank[n[0]], n[0]))
                settled = 0  # parts marked done without running (their dependents may be ready)
                while ready and (len(running) < self.parallel or self.stop.is_set()):
                    node = ready.pop(0)
                    ctid, part = node
                    run = runs[ctid]
                    if ctid in bad:
                        pass
                    elif self.stop.is_set():
                        self._left(run, result)
                        bad.add(ctid)
                    elif failed := [n for n in run.plan.needs if n in bad]:
                        why = "needs " + ", ".join(map(str, failed)) + ", which did not converge"
                        self._blocked(ctid, why, result)
                        bad.add(ctid)
                    else:
                        future = pool.submit(self._part, run, run.parts[part], journal)
                        running[future] = node
                        continue
                    sorter.done(node)
                    settled += 1
                if not running:
                    if not settled:  # pragma: no cover - a bug in the graph
                        raise PlanError("executor: nothing runs and nothing is ready")
                    continue
                finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    node = running.pop(future)
                    run = runs[node[0]]
                    try:
                        error = future.result()
                        if node == run.last or error is not None:
                            self._guest_finished(run, error, result)
                        if error is not None:
                            bad.add(node[0])
                    except Interrupted:
                        self._left(run, result)
                        bad.add(node[0])
                    except BaseException as exc:  # a bug or a broken reporter: stop all
                        bad.add(node[0])
                        if crash is None:
                            crash = exc
                            self.stop.set(f"an error ({exc!r})")
                    sorter.done(node)
        if crash is not None:
            raise crash

    # -- guests and steps ------------------------------------------------------------

    def _left(self, run: GuestRun, result: RunResult) -> None:
        why = "stopped before " + run.next_step() if run.began else "not started"
        result.left[run.plan.ctid] = why
        self.reporter(Event("guest_left", run.plan.ctid, message=why))

    def _blocked(self, ctid: int, why: str, result: RunResult) -> None:
        result.blocked[ctid] = why
        self.reporter(Event("guest_blocked", ctid, message=why))

    def _guest_finished(self, run: GuestRun, error: PhoenixError | None, result: RunResult) -> None:
        ctid = run.plan.ctid
        if error is None:
            result.done.append(ctid)
            self.reporter(Event("guest_done", ctid, message=run.plan.name))
        else:
            result.failed[ctid] = error
            self.reporter(Event("guest_failed", ctid, message=str(error)))

    def _part(self, run: GuestRun, span: tuple[int, int], journal: Journal) -> PhoenixError | None:
        """Run steps [begin, end); the first error stops the guest and is returned.
        Raises Interrupted when a stop was requested before a step (or during one)."""
        steps = run.plan.steps
        run.index = span[0]
        if not run.began:
            run.began = True
            gp = run.plan
            self.reporter(Event("guest_started", gp.ctid, message=gp.name, total=len(gp.steps)))
        while run.index < span[1]:
            if self.stop.is_set():
                raise Interrupted(run.next_step())
            step = steps[run.index]
            event_args = (step.ctid, step.describe(), step.kind)
            self.reporter(Event("step_started", *event_args, index=run.index + 1, total=len(steps)))
            journal.started(step)
            try:
                skipped = self._step(run, step)
            except Interrupted:
                self.reporter(Event("step_left", *event_args, message="stopped; resumes next run"))
                raise
            except PhoenixError as exc:
                journal.failed(step, str(exc))
                self.reporter(Event("step_failed", *event_args, message=str(exc)))
                return exc
            except Exception as exc:  # a bug must not leave other guests half-done
                error = DriverError(  # str() of an OSError names its path; repr() does not
                    f"guest {step.ctid}: {step.detail}: unexpected {type(exc).__name__}: {exc}"
                )
                error.__cause__ = exc
                journal.failed(step, str(error), bug=exc)
                self.reporter(Event("step_failed", *event_args, message=str(error)))
                return error
            run.index += 1
            if skipped:
                journal.skipped(step)
                self.reporter(Event("step_skipped", *event_args, message="already applied"))
            else:
                journal.done(step)
                self.reporter(Event("step_done", *event_args, index=run.index, total=len(steps)))
        return None

    def _step(self, run: GuestRun, step: Step) -> bool:
        """Do one step; True when it turned out to be already done (a recipe's marker)."""
        match lifecycle(self.driver, step):
            case None:
                pass
            case CheckHealth(check=check):
                run_health_check(self.driver, step.ctid, check, self.sleep)
            case Feature() | Application() as recipe:
                return self._recipe(run, recipe)
            case other:
                assert_never(other)
        return False

    def _recipe(self, run: GuestRun, step: Feature | Application) -> bool:
        """Run a bundle unless its marker says it is applied (and it is not forced)."""
        d, ctid, bundle = self.driver, step.ctid, step.bundle
        if run.markers is None:
            run.markers = read_markers(d, ctid)
        if is_applied(run.markers, bundle) and not step.force:
            return True
        if await_idle(d, ctid, self.stop.is_set, bundle.timeout) and not step.force:
            run.markers = read_markers(d, ctid)  # an earlier run's recipe just ended
            if is_applied(run.markers, bundle):
                return True
        run_bundle(d, ctid, bundle, self.stop.is_set)
        run.markers[marker_name(bundle.name)] = bundle.digest
        return False


def _verdict(result: RunResult) -> str:
    if result.interrupted:
        return f"interrupted by {result.interrupted}"
    return "ok" if result.ok else "failed"

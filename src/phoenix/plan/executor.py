"""The executor: runs a Plan under the host lock, journaling every step.

Guests run in parallel (bounded thread pool) as soon as everything they need is done. A
guest's work is split at its `start` step: the part before (create/clone/configure) only
waits for its needs; the part from `start` on also waits until every guest with a lower
boot rank has started, so starts follow boot order. The boot rank of a guest is the
highest `boot_order` among itself and everything it needs (a guest cannot start before
what it needs), which keeps the waits free of cycles. A failed guest fails only itself and
the guests that need it; the others carry on.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.drivers.base import Driver
from phoenix.errors import DriverError, PhoenixError, PlanError
from phoenix.inventory.loader import Inventory
from phoenix.plan.events import Event, Reporter, null_reporter
from phoenix.plan.health import run_health_check
from phoenix.plan.journal import Journal
from phoenix.plan.lock import host_lock
from phoenix.plan.model import GuestPlan, Plan, Step
from phoenix.recipes.runner import is_applied, marker_name, read_markers, run_bundle


@dataclass
class RunResult:
    """What a run did: guests finished, failed (with the error), blocked by a failure."""

    run_id: str
    done: list[int] = field(default_factory=list)
    failed: dict[int, PhoenixError] = field(default_factory=dict)
    blocked: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def raise_for_failures(self) -> None:
        """Raise the single failure as is, or one PhoenixError naming every failure."""
        if self.ok:
            return
        if len(self.failed) == 1 and not self.blocked:
            raise next(iter(self.failed.values()))
        lines = [
            str(e) if str(e).startswith(f"guest {c}") else f"guest {c}: {e}"
            for c, e in sorted(self.failed.items())
        ]
        lines += [f"guest {c}: not converged: {why}" for c, why in sorted(self.blocked.items())]
        raise PhoenixError(
            f"{len(self.failed)} guest(s) failed, {len(self.blocked)} blocked "
            f"(journal run {self.run_id}):\n" + "\n".join(lines)
        )


class _GuestRun:
    """Per-guest execution state (markers read once, lazily)."""

    def __init__(self, gp: GuestPlan) -> None:
        self.plan = gp
        first_start = next((i for i, s in enumerate(gp.steps) if s.kind == "start"), None)
        self.split = len(gp.steps) if first_start is None else first_start
        self.has_start = first_start is not None
        self.markers: dict[str, str] | None = None
        self.index = 0


class Executor:
    """Runs plans on one driver; see the module docstring."""

    def __init__(
        self,
        inventory: Inventory,
        driver: Driver,
        state_dir: Path,
        reporter: Reporter = null_reporter,
        parallel: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inventory = inventory
        self.driver = driver
        self.state_dir = state_dir
        self.reporter = reporter
        self.parallel = max(1, parallel)
        self.sleep = sleep

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
        for ctid, info in sorted(Journal.read_inflight(self.state_dir).items()):
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
        work = [gp for gp in plan.guests if gp.steps]
        self.reporter(
            Event("run_started", message=f"{len(work)} guest(s) to change", total=len(work))
        )
        if plan.sequential:
            self._run_sequential(work, journal, result)
        else:
            self._run_parallel(plan, work, journal, result)
        self.reporter(Event("run_done", message="ok" if result.ok else "failed", total=len(work)))
        return result

    # -- scheduling ------------------------------------------------------------------

    def _run_sequential(self, work: list[GuestPlan], journal: Journal, result: RunResult) -> None:
        for gp in work:
            if result.failed:
                result.blocked[gp.ctid] = "an earlier guest failed"
                self.reporter(Event("guest_blocked", gp.ctid, message="an earlier guest failed"))
                continue
            run = _GuestRun(gp)
            self._guest_started(gp)
            error = self._steps(run, len(gp.steps), journal)
            self._guest_finished(run, error, result)

    def _run_parallel(
        self, plan: Plan, work: list[GuestPlan], journal: Journal, result: RunResult
    ) -> None:
        runs = {gp.ctid: _GuestRun(gp) for gp in work}
        rank: dict[int, int] = {}
        for gp in plan.guests:  # creation order: needs come first
            rank[gp.ctid] = max([gp.boot_order, *(rank.get(n, 0) for n in gp.needs)])
        unstarted = Counter(rank[c] for c, r in runs.items() if r.has_start)
        cond = threading.Condition()
        finished: set[int] = {gp.ctid for gp in plan.guests if not gp.steps}
        bad: set[int] = set()
        queued: set[int] = set()  # pre part submitted
        post_queued: set[int] = set()
        pre_done: set[int] = set()

        def mark_started(ctid: int) -> None:
            with cond:
                if ctid in runs and runs[ctid].has_start and ctid not in started_set:
                    started_set.add(ctid)
                    unstarted[rank[ctid]] -= 1
                cond.notify_all()

        started_set: set[int] = set()

        def pre(ctid: int) -> None:
            run = runs[ctid]
            self._guest_started(run.plan)
            error = self._steps(run, run.split, journal)
            with cond:
                if error is not None or not run.has_start:
                    self._guest_finished(run, error, result)
                    (bad if error is not None else finished).add(ctid)
                    if run.has_start and ctid not in started_set:
                        started_set.add(ctid)
                        unstarted[rank[ctid]] -= 1
                else:
                    pre_done.add(ctid)
                cond.notify_all()

        def post(ctid: int) -> None:
            run = runs[ctid]
            error = self._steps(run, len(run.plan.steps), journal, on_start=mark_started)
            mark_started(ctid)
            with cond:
                self._guest_finished(run, error, result)
                (bad if error is not None else finished).add(ctid)
                cond.notify_all()

        def lowest_unstarted() -> int | None:
            ranks = [r for r, n in unstarted.items() if n > 0]
            return min(ranks) if ranks else None

        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="phoenix")
        with pool, cond:
            while len(finished) + len(bad) < len(plan.guests):
                progressed = False
                for ctid, run in runs.items():
                    if ctid in queued or ctid in bad:
                        continue
                    failed_needs = [n for n in run.plan.needs if n in bad]
                    if failed_needs:
                        why = "needs " + ", ".join(map(str, failed_needs)) + ", which failed"
                        bad.add(ctid)
                        result.blocked[ctid] = why
                        if run.has_start:
                            started_set.add(ctid)
                            unstarted[rank[ctid]] -= 1
                        self.reporter(Event("guest_blocked", ctid, message=why))
                        progressed = True
                    elif all(n in finished for n in run.plan.needs):
                        queued.add(ctid)
                        pool.submit(pre, ctid)
                low = lowest_unstarted()
                for ctid in sorted(pre_done - post_queued, key=lambda c: (rank[c], c)):
                    if low is None or rank[ctid] <= low:
                        post_queued.add(ctid)
                        pool.submit(post, ctid)
                if not progressed:
                    cond.wait(timeout=1.0)

    # -- guests and steps ------------------------------------------------------------

    def _guest_started(self, gp: GuestPlan) -> None:
        self.reporter(Event("guest_started", gp.ctid, message=gp.name, total=len(gp.steps)))

    def _guest_finished(
        self, run: _GuestRun, error: PhoenixError | None, result: RunResult
    ) -> None:
        ctid = run.plan.ctid
        if error is None:
            result.done.append(ctid)
            self.reporter(Event("guest_done", ctid, message=run.plan.name))
        else:
            result.failed[ctid] = error
            self.reporter(Event("guest_failed", ctid, message=str(error)))

    def _steps(
        self,
        run: _GuestRun,
        until: int,
        journal: Journal,
        on_start: Callable[[int], None] | None = None,
    ) -> PhoenixError | None:
        """Run steps [run.index, until); the first error stops the guest and is returned."""
        steps = run.plan.steps
        while run.index < until:
            step = steps[run.index]
            run.index += 1
            event_args = (step.ctid, step.describe(), step.kind)
            self.reporter(Event("step_started", *event_args, index=run.index, total=len(steps)))
            journal.started(step)
            try:
                skipped = self._step(run, step)
            except PhoenixError as exc:
                journal.failed(step, str(exc))
                self.reporter(Event("step_failed", *event_args, message=str(exc)))
                return exc
            except Exception as exc:  # a bug must not leave other guests half-done
                error = DriverError(f"guest {step.ctid}: {step.detail}: unexpected {exc!r}")
                journal.failed(step, str(error))
                self.reporter(Event("step_failed", *event_args, message=str(error)))
                return error
            if skipped:
                journal.skipped(step)
                self.reporter(Event("step_skipped", *event_args, message="already applied"))
            else:
                journal.done(step)
                self.reporter(Event("step_done", *event_args, index=run.index, total=len(steps)))
            if step.kind == "start" and on_start is not None:
                on_start(step.ctid)
        return None

    def _snapshot(self, ctid: int, name: str) -> None:
        """Snapshot live; if the driver cannot snapshot a running guest (LXC's directory
        backend copies the rootfs and refuses while it runs), stop, snapshot, start."""
        try:
            self.driver.snapshot(ctid, name)
            return
        except PhoenixError:
            if not self.driver.observe(ctid).running:
                raise
        self.driver.stop(ctid)
        try:
            self.driver.snapshot(ctid, name)
        finally:
            self.driver.start(ctid)

    def _step(self, run: _GuestRun, step: Step) -> bool:
        """Do one step; True when it turned out to be already done (a recipe's marker)."""
        d, ctid = self.driver, step.ctid
        if step.error is not None:
            raise PlanError(f"guest {ctid}: {step.detail}: {step.error}")
        if step.kind == "destroy":
            d.destroy(ctid)
        elif step.kind == "create":
            assert step.settings is not None and step.template is not None
            d.create(ctid, step.template, step.settings)
        elif step.kind == "clone":
            assert step.settings is not None and step.source is not None
            d.clone(step.source, ctid, step.snapshot, step.settings)
        elif step.kind == "configure":
            assert step.settings is not None
            d.configure(ctid, step.settings, frozenset(c.field for c in step.changes))
        elif step.kind == "resize":
            assert step.disk_gb is not None
            d.resize(ctid, step.disk_gb)
        elif step.kind == "start":
            d.start(ctid)
        elif step.kind == "stop":
            d.stop(ctid)
        elif step.kind == "snapshot":
            assert step.snapshot is not None
            self._snapshot(ctid, step.snapshot)
        elif step.kind == "mark_template":
            d.mark_template(ctid)
        elif step.kind == "health_check":
            check = self.inventory.guests[ctid].health_check
            assert check is not None
            run_health_check(d, ctid, check, self.sleep)
        elif step.kind in ("feature", "application"):
            bundle = step.bundle
            assert bundle is not None
            if run.markers is None:
                run.markers = read_markers(d, ctid)
            if is_applied(run.markers, bundle):
                return True
            run_bundle(d, ctid, bundle)
            run.markers[marker_name(bundle.name)] = bundle.digest
        else:  # pragma: no cover - StepKind is closed
            raise PlanError(f"unknown step kind {step.kind!r}")
        return False

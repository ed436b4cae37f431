"""Plan-and-execute as one locked operation (what `phoenix converge` does).

The lock is taken before planning so the observed state cannot change between planning
and acting; the journal of earlier runs feeds the planner (half-made guests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from phoenix.drivers.base import DetachingSnapshots, Driver
from phoenix.errors import PlanError
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import LxcGuest, VmGuest
from phoenix.inventory.ordering import build_graph
from phoenix.plan.events import Event, Reporter, null_reporter
from phoenix.plan.executor import Executor, RunResult
from phoenix.plan.journal import Journal
from phoenix.plan.lock import host_lock
from phoenix.plan.model import Destroy, GuestKind, GuestPlan, Plan, Start, Step, Stop
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.stop import StopRequest


@dataclass
class Outcome:
    plan: Plan
    result: RunResult


def converge(
    inventory: Inventory,
    driver: Driver,
    ids: Iterable[int] | None = None,
    options: PlanOptions | None = None,
    reporter: Reporter = null_reporter,
    state_dir: Path | None = None,
    parallel: int | None = None,
    stop: StopRequest | None = None,
) -> Outcome:
    """Lock the host, plan from observed state (and the journal), execute."""
    state = state_dir or inventory.state_dir
    opts = options or PlanOptions()
    with host_lock(state):
        resume_detached(driver, reporter)
        opts = replace(opts, interrupted=Journal.interrupted(state), state_dir=state)
        the_plan = Planner(inventory, driver, opts).plan(ids)
        executor = Executor(
            driver,
            state,
            reporter,
            parallel or inventory.hypervisor.phoenix.parallel,
            stop=stop,
        )
        return Outcome(the_plan, executor.run(the_plan, take_lock=False))


def resume_detached(driver: Driver, reporter: Reporter) -> None:
    """First of all: put back the bind mounts a snapshot interrupted by a crash left
    detached (`DetachingSnapshots`), so nothing plans or starts a guest without them."""
    if not isinstance(driver, DetachingSnapshots):
        return
    for ctid, keys in driver.resume_detached():
        message = f"{', '.join(keys)} detached for a snapshot by an interrupted run: put back"
        reporter(Event("resume", ctid, "bind mounts", "snapshot", message))


def _simple_plan(
    inventory: Inventory,
    driver: Driver,
    order: list[int],
    make: dict[str, str],
    action: str,
    force: bool = False,
) -> Plan:
    """One step per guest (start/stop/destroy), skipping guests already in that state;
    `force`: a destroy may lift the host's guards (ForcedDestroy)."""
    guests = []
    known: dict[int, LxcGuest | VmGuest] = {**inventory.guests, **inventory.vms}
    for ctid in order:
        observed = driver.observe(ctid)
        name = known[ctid].name
        if not observed.exists and ("start" in make or "restart" in make):
            raise PlanError(
                f"guest {ctid} ({name}) does not exist yet: create it with "
                f"`phoenix converge {ctid}`"
            )
        steps: list[Step] = []
        for kind, detail in make.items():
            if kind == "stop" and observed.running:
                steps.append(Stop(ctid, detail))
            elif kind == "start" and observed.exists and not observed.running:
                if observed.is_template:
                    continue  # a template is cloned, never started
                steps.append(Start(ctid, detail))
            elif kind == "restart" and observed.exists and not observed.is_template:
                if observed.running:
                    steps.append(Stop(ctid, "stop"))
                steps.append(Start(ctid, "start"))
            elif kind == "destroy" and observed.exists:
                steps.append(Destroy(ctid, detail, force=force))
            elif kind == "destroy" and observed.leftover:
                steps.append(Destroy(ctid, f"remove {observed.leftover}"))
        kind_of: GuestKind = "vm" if ctid in inventory.vms else "container"
        guests.append(
            GuestPlan(
                ctid, name, observed.state, tuple(steps), known[ctid].boot_order, kind=kind_of
            )
        )
    return Plan(tuple(guests), tuple(order), sequential=True, action=action)


def power_plan(
    inventory: Inventory, driver: Driver, ids: list[int], action: str, force: bool = False
) -> Plan:
    """start (boot order), stop (reverse boot order), restart, delete (reverse creation
    order, dependents before what they need; `force`: guards lifted, `delete --force`)."""
    known: dict[int, LxcGuest | VmGuest] = {**inventory.guests, **inventory.vms}
    lxc = [c for c in ids if c in known]
    by_boot = sorted(lxc, key=lambda c: (known[c].boot_order, c))
    if action == "start":
        return _simple_plan(inventory, driver, by_boot, {"start": "start"}, action)
    if action == "stop":
        return _simple_plan(inventory, driver, by_boot[::-1], {"stop": "stop"}, action)
    if action == "restart":
        return _simple_plan(inventory, driver, by_boot, {"restart": "restart"}, action)
    if action == "delete":
        order = [c for c in build_graph(inventory).creation_order(lxc) if c in set(lxc)]
        detail = "destroy (its protection and HA lifted first)" if force else "destroy"
        return _simple_plan(inventory, driver, order[::-1], {"destroy": detail}, action, force)
    raise ValueError(f"unknown action {action!r}")


def run_plan(
    inventory: Inventory,
    driver: Driver,
    plan_: Plan,
    reporter: Reporter = null_reporter,
    state_dir: Path | None = None,
    stop: StopRequest | None = None,
) -> RunResult:
    state = state_dir or inventory.state_dir
    executor = Executor(driver, state, reporter, inventory.hypervisor.phoenix.parallel, stop=stop)
    with host_lock(state):
        resume_detached(driver, reporter)
        return executor.run(plan_, take_lock=False)

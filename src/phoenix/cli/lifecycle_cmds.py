"""`plan`, `converge`, `create`, `start`, `stop`, `restart`, `delete`, `LetsGo`.

Every command that changes the host takes the host lock and journals its steps (see
phoenix.plan). People get rich progress; `--json` prints one JSON object per line (events,
then a final `result`) for scripts. Errors are one message and exit 1, never a traceback.

`create IDS` makes the selected guests exist with their settings (create/clone, configure,
resize) without starting them or running recipes inside; guests they are cloned from or
depend on are fully converged first, since a clone needs its source's finished snapshot.
`converge IDS` does everything; `LetsGo` converges the whole inventory (the original tool's
verb).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from phoenix.cli.context import console, err_console, fail, load, parse_ids, state
from phoenix.errors import PhoenixError

if TYPE_CHECKING:
    from phoenix.drivers.base import Driver
    from phoenix.inventory.loader import Inventory
    from phoenix.plan.events import Event, Reporter
    from phoenix.plan.executor import RunResult
    from phoenix.plan.model import Plan
    from phoenix.plan.planner import PlanOptions
    from phoenix.plan.stop import StopRequest

Ids = Annotated[list[str] | None, typer.Argument(help="Guest ids (default: all).")]
RequiredIds = Annotated[list[str], typer.Argument(help="Guest ids.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON lines).")]
RecreateOpt = Annotated[
    bool,
    typer.Option(
        "--recreate",
        help="Destroy and rebuild guests whose unprivileged/storage setting changed.",
    ),
]


# -- output ----------------------------------------------------------------------------


def _echo_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, sort_keys=True, default=str))


class JsonReporter:
    """One JSON object per event on stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            _echo_json(event.to_json())


class RichReporter:
    """A progress line per guest (current step, steps done) plus a line per finished guest."""

    def __init__(self, progress: Progress, names: dict[int, str]) -> None:
        self.progress = progress
        self.names = names
        self.tasks: dict[int, TaskID] = {}
        self._lock = threading.Lock()

    def _task(self, ctid: int, total: int | None) -> TaskID:
        if ctid not in self.tasks:
            label = f"{ctid} {self.names.get(ctid, '')}"
            self.tasks[ctid] = self.progress.add_task(label, total=total or 1, step="")
        return self.tasks[ctid]

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        p, ctid = self.progress, event.ctid
        if event.kind == "resume" and ctid is not None:
            p.console.print(
                f"[yellow]resuming {ctid}[/]: {event.step} ({event.message})", highlight=False
            )
        elif event.kind == "guest_started" and ctid is not None:
            self._task(ctid, event.total)
        elif event.kind == "step_started" and ctid is not None:
            p.update(self._task(ctid, event.total), step=event.step or "")
        elif event.kind in ("step_done", "step_skipped") and ctid is not None:
            p.advance(self._task(ctid, event.total))
        elif event.kind == "guest_done" and ctid is not None:
            p.update(self._task(ctid, None), step="[green]done[/]")
        elif event.kind == "guest_failed" and ctid is not None:
            p.update(self._task(ctid, None), step="[red]failed[/]")
        elif event.kind == "guest_left" and ctid is not None:
            self._task(ctid, 1)
            p.update(self.tasks[ctid], step=f"[yellow]left: {event.message}[/]")
        elif event.kind == "guest_blocked" and ctid is not None:
            self._task(ctid, 1)
            p.update(self.tasks[ctid], step=f"[yellow]skipped: {event.message}[/]")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=20),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
        console=err_console,
        transient=False,
    )


def _print_styled(parts: list[tuple[str, str]]) -> None:
    """Print (text, style) parts as they are. Without colours (a pipe, a file, NO_COLOR)
    the plain text goes straight to the console's file: rich lays out every line, which
    took seconds for the 100,000 lines of a plan of 10,000 guests."""
    if not parts:
        return
    if console.color_system is None:
        console.file.write("".join(text for text, _ in parts))
        console.file.flush()
        return
    from rich.text import Text

    console.print(Text.assemble(*parts), highlight=False, soft_wrap=True, end="")


def render_plan(the_plan: Plan) -> None:
    """The plan for people: per guest, its steps or 'up to date'."""
    from phoenix.plan.model import Unrunnable

    changing = [g for g in the_plan.guests if g.steps]
    parts: list[tuple[str, str]] = []
    for gp in the_plan.guests:
        parts += [(str(gp.ctid), "bold"), (f" {gp.name} ", ""), (f"({gp.observed})", "dim")]
        if gp.up_to_date:
            parts += [(": ", ""), ("up to date", "green"), ("\n", "")]
            continue
        parts.append((":\n", ""))
        for number, step in enumerate(gp.steps, 1):
            text = f"  {number:>2}. {step.describe()}"
            parts += [(text, "red" if isinstance(step, Unrunnable) else ""), ("\n", "")]
    _print_styled(parts)
    if the_plan.start_order:
        console.print("start order: " + " ".join(map(str, the_plan.start_order)), highlight=False)
    up = len(the_plan.guests) - len(changing)
    console.print(
        f"{len(changing)} guest(s) to change, {up} up to date", style="bold", highlight=False
    )


def _finish(result: RunResult, as_json: bool, verb: str, seconds: float) -> None:
    code = _exit_code(result)
    if as_json:
        _echo_json(
            {
                "event": "result",
                "ok": result.ok,
                "run": result.run_id,
                "done": result.done,
                "failed": {str(c): str(e) for c, e in result.failed.items()},
                "blocked": {str(c): why for c, why in result.blocked.items()},
                "left": {str(c): why for c, why in result.left.items()},
                "interrupted": result.interrupted or None,
                "seconds": round(seconds, 3),
            }
        )
        if code:
            fail(None, code)
        return
    if result.ok:
        console.print(
            f"[green]{verb}: ok[/] ({len(result.done)} guest(s) changed) in {seconds:.1f} s"
        )
        return
    if result.interrupted:
        _print_interrupted(result, verb, seconds)
        fail(None, code)
    try:
        result.raise_for_failures()
    except PhoenixError as exc:
        fail(str(exc))


def _exit_code(result: RunResult) -> int:
    """0 ok, 130 after SIGINT, 143 after SIGTERM (the shell's 128 + signal), else 1."""
    if result.ok:
        return 0
    if result.interrupted in _SIGNALS:
        return 128 + int(_SIGNALS[result.interrupted])
    return 1


def _print_interrupted(result: RunResult, verb: str, seconds: float) -> None:
    """What was done and what was left, so the operator knows where the lab stands."""
    err_console.print(
        f"{verb}: interrupted by {result.interrupted} after {seconds:.1f} s",
        style="yellow",
        markup=False,
        highlight=False,
    )
    done = " ".join(map(str, result.done)) or "none"
    err_console.print(f"  done: {done}", markup=False, highlight=False)
    for ctid, why in sorted(result.left.items()):
        err_console.print(f"  left: {ctid}: {why}", markup=False, highlight=False)
    for ctid, exc in sorted(result.failed.items()):
        err_console.print(f"  failed: {ctid}: {exc}", markup=False, highlight=False)
    for ctid, why in sorted(result.blocked.items()):
        err_console.print(f"  blocked: {ctid}: {why}", markup=False, highlight=False)
    err_console.print("run the same command again to resume", markup=False, highlight=False)


_SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@contextmanager
def _stop_on_signals(as_json: bool) -> Iterator[StopRequest]:
    """SIGINT/SIGTERM ask the run to stop: no new step starts, running ones end, the
    result is printed. A second signal ends the process at once (the journal and the
    driver's atomic steps make that safe too: the next run resumes)."""
    from phoenix.plan.stop import StopRequest

    stop = StopRequest()

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            os._exit(128 + signum)
        stop.set(name)
        if not as_json:
            err_console.print(
                f"{name}: finishing the running steps, starting no more "
                "(send it again to stop at once)",
                style="yellow",
                markup=False,
                highlight=False,
            )

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals are only delivered to the main thread (library/test use)
        return
    old = {sig: signal.signal(sig, handler) for sig in _SIGNALS.values()}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _run_failed(message: str, as_json: bool) -> NoReturn:
    """A run that could not start or ended with an error: one line (and, for scripts, a
    JSON result so `--json` output always ends with one)."""
    if as_json:
        with suppress(BrokenPipeError):
            _echo_json({"event": "result", "ok": False, "error": message})
    fail(message)


def _output_closed() -> NoReturn:
    """stdout went away (`phoenix converge --json | head`): the run was stopped by its
    reporter; say so on stderr and keep Python from complaining again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    fail("output closed (broken pipe): the run stopped; run the same command again to resume")


def _setup(ctx: typer.Context, ids: list[str] | None) -> tuple[Inventory, list[int] | None]:
    inventory = load(ctx)
    return inventory, parse_ids(inventory, ids)


def _driver(ctx: typer.Context, inventory: Inventory, offline: bool = False) -> Driver:
    from phoenix.drivers.factory import make_driver

    try:
        return make_driver(inventory.hypervisor.phoenix, state(ctx).driver, offline)
    except PhoenixError as exc:
        fail(str(exc))


def _run_with_progress(inventory: Inventory, as_json: bool, body: Any) -> RunResult:
    """Call body(reporter) with the right reporter for the output mode."""
    names = {c: g.name for c, g in inventory.guests.items()}
    if as_json:
        result: RunResult = body(JsonReporter())
        return result
    with _progress() as progress:
        reporter: Reporter = RichReporter(progress, names)
        result = body(reporter)
    return result


def _host_problems(inventory: Inventory) -> list[str]:
    """What `phoenix setup` would still change on this host (a bridge gone or without its
    address, forwarding off, the NAT table gone, subuid lines missing): a converge checks
    its host, not only its guests. The NAT table is the one `setup` recorded making."""
    from phoenix.host.setup import HostSetup, Record, bridges_from_inventory
    from phoenix.runners.local import LocalRunner

    host = HostSetup(LocalRunner(), inventory.state_dir)
    made = Record.load(host.record_path).nat_tables
    if made:
        host = HostSetup(LocalRunner(), inventory.state_dir, nat_table=made[-1])
    try:
        return [step.describe for step in host.plan(bridges_from_inventory(inventory))]
    except PhoenixError as exc:
        return [str(exc)]
    except (OSError, ValueError) as exc:
        return [f"cannot check the host: {exc}"]


def _note_unapplied(inventory: Inventory, ids: list[int] | None) -> None:
    """One stderr line per selected guest with inventory keys Phoenix does not apply yet."""
    from phoenix.inventory.checks import unapplied_keys

    for ctid in ids if ids is not None else sorted(inventory.guests):
        keys = [key for key, _ in unapplied_keys(inventory.guests[ctid])]
        if keys:
            err_console.print(
                f"note: guest {ctid}: not applied by Phoenix yet: {', '.join(keys)}",
                markup=False,
                highlight=False,
            )


def _converge(
    ctx: typer.Context,
    ids: list[int] | None,
    inventory: Inventory,
    as_json: bool,
    options: PlanOptions,
    verb: str,
) -> None:
    from dataclasses import replace

    from phoenix.cli.gateway_app import GATEWAY
    from phoenix.plan.run import converge as converge_run

    options = replace(options, gateway=GATEWAY)  # the gateway application, handed down
    driver = _driver(ctx, inventory)
    if getattr(driver, "name", "") == "lxc":
        problems = _host_problems(inventory)
        if problems:
            _run_failed(
                "this host is not ready for the lab: "
                + "; ".join(problems)
                + " (`phoenix setup` makes these changes)",
                as_json,
            )
    if not as_json:
        _note_unapplied(inventory, ids)

    started = time.monotonic()
    with _stop_on_signals(as_json) as stop:

        def body(reporter: Reporter) -> RunResult:
            return converge_run(inventory, driver, ids, options, reporter, stop=stop).result

        try:
            result = _run_with_progress(inventory, as_json, body)
        except BrokenPipeError:
            _output_closed()
        except PhoenixError as exc:
            _run_failed(str(exc), as_json)
    _finish(result, as_json, verb, time.monotonic() - started)


# -- commands --------------------------------------------------------------------------


def plan(
    ctx: typer.Context,
    ids: Ids = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not look at this host: plan for a host where no guest exists yet.",
        ),
    ] = False,
    commands: Annotated[
        bool,
        typer.Option(
            "--commands",
            help="With --offline and the proxmox driver: also print the exact pct/pvesh "
            "commands a fresh node would run.",
        ),
    ] = False,
    pve_version: Annotated[
        str,
        typer.Option(
            "--pve-version",
            metavar="X.Y",
            help="With --commands: the Proxmox VE version of the node (what it accepts and "
            "keeps differs by version).",
        ),
    ] = "9.1",
    recreate: RecreateOpt = False,
) -> None:
    """Show, per guest in creation order, the steps that would make it match the inventory
    (a converged guest shows 'up to date'). Changes nothing."""
    from phoenix.cli.gateway_app import GATEWAY
    from phoenix.plan.planner import Planner, PlanOptions

    inventory, selected = _setup(ctx, ids)
    driver = _driver(ctx, inventory, offline)
    state_dir = inventory.state_dir
    try:
        from phoenix.plan.journal import Journal

        interrupted = {} if offline else Journal.interrupted(state_dir)
        options = PlanOptions(
            recreate=recreate,
            interrupted=interrupted,
            state_dir=state_dir,
            persist_secrets=False,  # a plan only shows: no CA or keys are written
            gateway=GATEWAY,
        )
        the_plan = Planner(inventory, driver, options).plan(selected)
    except PhoenixError as exc:
        fail(str(exc))
    if commands and not offline:
        fail("--commands needs --offline and the proxmox driver (--driver proxmox)")
    lines = _offline_commands(ctx, inventory, the_plan, pve_version) if commands else None
    if as_json:
        data = the_plan.to_json()
        if lines is not None:
            data["commands"] = lines
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    render_plan(the_plan)
    _note_unapplied(inventory, selected)
    if lines is not None:
        console.print("[bold]commands:[/]")
        _print_styled([(line + "\n", "") for line in lines])


def _offline_commands(
    ctx: typer.Context, inventory: Inventory, the_plan: Plan, pve_version: str
) -> list[str]:
    """The commands a fresh Proxmox node would run for the plan, from the command builders."""
    from phoenix.drivers.factory import driver_name

    if driver_name(inventory.hypervisor.phoenix, state(ctx).driver) != "proxmox":
        fail("--commands needs --offline and the proxmox driver (--driver proxmox)")
    from phoenix.plan.preview import plan_commands

    major, _, minor = pve_version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        fail(f"--pve-version {pve_version!r}: give the node's version as X.Y (e.g. 8.4)")
    try:
        return plan_commands(the_plan, (int(major), int(minor))).lines()
    except PhoenixError as exc:
        # A command list that stops halfway reads as complete: refuse it, with the reason.
        fail(f"cannot list the commands for a fresh node: {exc}")


def converge(
    ctx: typer.Context,
    ids: Ids = None,
    as_json: JsonOpt = False,
    recreate: RecreateOpt = False,
) -> None:
    """Make the guests (default: all) match the inventory: create or clone, configure,
    start in boot order, run features and the application, check health, snapshot.
    Running it again changes nothing; after a failure it resumes."""
    from phoenix.plan.planner import PlanOptions

    inventory, selected = _setup(ctx, ids)
    _converge(ctx, selected, inventory, as_json, PlanOptions(recreate=recreate), "converge")


def create(ctx: typer.Context, ids: RequiredIds, as_json: JsonOpt = False) -> None:
    """Create (or clone) the guests and apply their settings, without starting them or
    running recipes inside. What they are cloned from is converged fully first."""
    from phoenix.plan.planner import PlanOptions

    inventory, selected = _setup(ctx, ids)
    assert selected is not None
    options = PlanOptions(create_only=frozenset(selected))
    _converge(ctx, selected, inventory, as_json, options, "create")


def lets_go(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Everything: converge the whole inventory, in dependency order, started in boot
    order."""
    from phoenix.plan.planner import PlanOptions

    inventory = load(ctx)
    _converge(ctx, None, inventory, as_json, PlanOptions(), "LetsGo")


def _power(ctx: typer.Context, ids: list[str] | None, as_json: bool, action: str) -> None:
    from phoenix.plan.run import power_plan, run_plan

    inventory, selected = _setup(ctx, ids)
    if selected is not None:
        targets = selected
    else:  # all; parked clone sources are started only when named
        parked = {c for c, g in inventory.guests.items() if g.parks_after_snapshot}
        skip = parked if action in ("start", "restart") else set()
        targets = sorted(set(inventory.guests) - skip)
    driver = _driver(ctx, inventory)
    started = time.monotonic()
    with _stop_on_signals(as_json) as stop:
        try:
            the_plan = power_plan(inventory, driver, targets, action)
            result = _run_with_progress(
                inventory,
                as_json,
                lambda reporter: run_plan(inventory, driver, the_plan, reporter, stop=stop),
            )
        except BrokenPipeError:
            _output_closed()
        except PhoenixError as exc:
            _run_failed(str(exc), as_json)
    _finish(result, as_json, action, time.monotonic() - started)


def start(ctx: typer.Context, ids: Ids = None, as_json: JsonOpt = False) -> None:
    """Start guests (default: all but clone sources not started at boot) in boot order,
    each waited for until it is up."""
    _power(ctx, ids, as_json, "start")


def stop(ctx: typer.Context, ids: Ids = None, as_json: JsonOpt = False) -> None:
    """Stop guests (default: all) in reverse boot order."""
    _power(ctx, ids, as_json, "stop")


def restart(ctx: typer.Context, ids: Ids = None, as_json: JsonOpt = False) -> None:
    """Stop and start guests (default: all) in boot order."""
    _power(ctx, ids, as_json, "restart")


def delete(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Guest ids to delete (or --all).")] = None,
    as_json: JsonOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete every guest of the inventory.")
    ] = False,
) -> None:
    """Destroy guests and everything the driver made for them (dependents first)."""
    if not ids and not everything:
        fail("name the guests to delete, or pass --all")
    if everything:
        ids = [str(c) for c in sorted(load(ctx).guests)]
    assert ids is not None
    if not yes:
        if as_json or not console.is_terminal:
            fail("delete destroys guests and their data; pass --yes to confirm")
        typer.confirm(f"Destroy guest(s) {' '.join(ids)} and their data?", abort=True)
    _power(ctx, ids, as_json, "delete")


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(converge)
    app.command()(create)
    app.command()(start)
    app.command()(stop)
    app.command()(restart)
    app.command()(delete)
    app.command(name="LetsGo")(lets_go)

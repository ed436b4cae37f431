"""How a run looks and how it ends, for people and for scripts: the reporters (a rich
progress line per guest, or one JSON object per event), the plan as text, the final
summary and its exit code (130/143 after SIGINT/SIGTERM), signals that ask a run to stop,
and a closed stdout. The lifecycle commands (`lifecycle_cmds`) run; this module shows.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from phoenix.cli.context import console, err_console, fail
from phoenix.cli.plain import lit, visible
from phoenix.errors import PhoenixError

if TYPE_CHECKING:
    from phoenix.inventory.loader import Inventory
    from phoenix.plan.events import Event, Reporter
    from phoenix.plan.executor import RunResult
    from phoenix.plan.model import Plan
    from phoenix.plan.stop import StopRequest


def echo_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, sort_keys=True, default=str))


class JsonReporter:
    """One JSON object per event on stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            echo_json(event.to_json())


class RichReporter:
    """A progress line per guest (current step, steps done) plus a line per finished guest."""

    def __init__(self, progress: Progress, names: dict[int, str]) -> None:
        self.progress = progress
        self.names = names
        self.tasks: dict[int, TaskID] = {}
        self._lock = threading.Lock()

    def _task(self, ctid: int, total: int | None) -> TaskID:
        if ctid not in self.tasks:
            label = lit(f"{ctid} {self.names.get(ctid, '')}")  # a markup column
            self.tasks[ctid] = self.progress.add_task(label, total=total or 1, step="")
        return self.tasks[ctid]

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        p, ctid = self.progress, event.ctid
        if event.kind == "resume" and ctid is not None:
            p.console.print(
                f"[yellow]resuming {ctid}[/]: {lit(event.step)} ({lit(event.message)})",
                markup=True,
            )
        elif event.kind == "guest_started" and ctid is not None:
            self._task(ctid, event.total)
        elif event.kind == "step_started" and ctid is not None:
            p.update(self._task(ctid, event.total), step=lit(event.step or ""))
        elif event.kind in ("step_done", "step_skipped") and ctid is not None:
            p.advance(self._task(ctid, event.total))
        elif event.kind == "guest_done" and ctid is not None:
            p.update(self._task(ctid, None), step="[green]done[/]")
        elif event.kind == "guest_failed" and ctid is not None:
            p.update(self._task(ctid, None), step="[red]failed[/]")
        elif event.kind == "guest_left" and ctid is not None:
            self._task(ctid, 1)
            p.update(self.tasks[ctid], step=f"[yellow]left: {lit(event.message)}[/]")
        elif event.kind == "guest_blocked" and ctid is not None:
            self._task(ctid, 1)
            p.update(self.tasks[ctid], step=f"[yellow]skipped: {lit(event.message)}[/]")


def progress_bars() -> Progress:
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


def print_styled(parts: list[tuple[str, str]]) -> None:
    """Print (text, style) parts as they are. Without colours (a pipe, a file, NO_COLOR)
    the plain text goes straight to the console's file: rich lays out every line, which
    took seconds for the 100,000 lines of a plan of 10,000 guests."""
    if not parts:
        return
    parts = [(visible(text), style) for text, style in parts]
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
        shown = f"VM, {gp.observed}" if gp.kind == "vm" else gp.observed
        where = f" on {gp.node}" if gp.node is not None else ""
        where += ", placed by Proxmox HA" if gp.placed_by_ha else ""
        parts += [(str(gp.ctid), "bold"), (f" {gp.name} ", ""), (f"({shown}{where})", "dim")]
        if gp.up_to_date:
            parts += [(": ", ""), ("up to date", "green"), ("\n", "")]
            continue
        parts.append((":\n", ""))
        if gp.held is not None:
            parts += [(f"  held, nothing changes: {gp.held}", "red"), ("\n", "")]
        for note in gp.drift:
            parts += [(f"  drift: {note}", "yellow"), ("\n", "")]
        for number, step in enumerate(gp.steps, 1):
            text = f"  {number:>2}. {step.describe()}"
            parts += [(text, "red" if isinstance(step, Unrunnable) else ""), ("\n", "")]
    print_styled(parts)
    if the_plan.start_order:
        console.print("start order: " + " ".join(map(str, the_plan.start_order)), highlight=False)
    held = [g for g in the_plan.guests if g.held is not None]
    drifting = [g for g in the_plan.guests if g.drift and not g.steps]
    up = len(the_plan.guests) - len(changing) - len(held) - len(drifting)
    extra = f", {len(held)} held" if held else ""
    extra += f", {len(drifting)} drifting" if drifting else ""
    console.print(
        f"{len(changing)} guest(s) to change, {up} up to date{extra}", style="bold", highlight=False
    )


def finish(result: RunResult, as_json: bool, verb: str, seconds: float) -> None:
    code = exit_code(result)
    if as_json:
        echo_json(
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
            f"[green]{verb}: ok[/] ({len(result.done)} guest(s) changed) in {seconds:.1f} s",
            markup=True,
        )
        return
    if result.interrupted:
        print_interrupted(result, verb, seconds)
        fail(None, code)
    try:
        result.raise_for_failures()
    except PhoenixError as exc:
        fail(str(exc))


def exit_code(result: RunResult) -> int:
    """0 ok, 130 after SIGINT, 143 after SIGTERM (the shell's 128 + signal), else 1."""
    if result.ok:
        return 0
    if result.interrupted in SIGNALS:
        return 128 + int(SIGNALS[result.interrupted])
    return 1


def print_interrupted(result: RunResult, verb: str, seconds: float) -> None:
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


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@contextmanager
def stop_on_signals(as_json: bool) -> Iterator[StopRequest]:
    """SIGINT/SIGTERM ask the run to stop: no new step starts, running ones end, the
    result is printed. A second signal ends the process at once (the journal and the
    driver's atomic steps make that safe too: the next run resumes)."""
    from phoenix.plan.stop import StopRequest

    stop = StopRequest()

    def handler(signum: int, _frame: object) -> None:
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
    old = {sig: signal.signal(sig, handler) for sig in SIGNALS.values()}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def run_failed(message: str, as_json: bool) -> NoReturn:
    """A run that could not start or ended with an error: one line (and, for scripts, a
    JSON result so `--json` output always ends with one)."""
    if as_json:
        with suppress(BrokenPipeError):
            echo_json({"event": "result", "ok": False, "error": message})
    fail(message)


def output_closed() -> NoReturn:
    """stdout went away (`phoenix converge --json | head`): the run was stopped by its
    reporter; say so on stderr and keep Python from complaining again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    fail("output closed (broken pipe): the run stopped; run the same command again to resume")


def run_with_progress(inventory: Inventory, as_json: bool, body: Any) -> RunResult:
    """Call body(reporter) with the right reporter for the output mode."""
    names = {c: g.name for c, g in inventory.guests.items()}
    if as_json:
        result: RunResult = body(JsonReporter())
        return result
    with progress_bars() as progress:
        reporter: Reporter = RichReporter(progress, names)
        result = body(reporter)
    return result

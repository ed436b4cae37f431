"""State shared by CLI commands: where the config dir is, output mode, loading with errors
printed the same way everywhere. The CLI is the only layer that prints or exits.

The CLI imports only what a command needs when it runs (`phoenix --help` must not pay for
pydantic models, crossplane or cryptography): modules under phoenix.cli import the rest of
Phoenix inside their command functions, and name its types under TYPE_CHECKING.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from phoenix.cli.plain import PlainConsole

if TYPE_CHECKING:
    from collections.abc import Sequence

    from phoenix.errors import PhoenixError, Problem
    from phoenix.inventory import Inventory

# Plain text unless a print opts into markup (phoenix.cli.plain); long lines stay whole in
# logs and pipes.
console = PlainConsole(soft_wrap=True)
err_console = PlainConsole(stderr=True, soft_wrap=True)


@dataclass
class AppState:
    """The global options; the config dir is resolved when a command first asks."""

    config_option: Path | None = None
    driver: str | None = None

    @cached_property
    def config_dir(self) -> Path:
        from phoenix.inventory import resolve_config_dir

        return resolve_config_dir(self.config_option)


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def print_problems(problems: Sequence[Problem], as_json: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in problems], indent=2))
        return
    for problem in problems:
        style = "yellow" if problem.severity == "warning" else "red"
        err_console.print(
            problem.render(), style=style, markup=False, highlight=False, soft_wrap=True
        )


def fail(message: str | None, code: int = 1) -> NoReturn:
    """The one way the CLI ends a command that failed: `error: message` on stderr (None
    when the command has printed its own report: problems, failed checks), then exit
    `code`. SystemExit rather than typer.Exit, so `main()` ends the same way outside
    Typer's handling."""
    if message is not None:
        err_console.print(
            f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True
        )
    raise SystemExit(code)


def load(ctx: typer.Context, quiet_warnings: bool = True) -> Inventory:
    """Load the inventory or print every problem and exit 1."""
    from phoenix.errors import InventoryError
    from phoenix.inventory import load_inventory
    from phoenix.recipes import registry

    try:
        inventory = load_inventory(state(ctx).config_dir, registry, state(ctx).driver)
    except InventoryError as exc:
        print_problems(exc.problems)
        fail(None)
    if not quiet_warnings:
        print_problems(inventory.warnings)
    # The inventory lives as long as the command: kept out of the cycle collector's
    # generations, it is not walked again at every collection the planner triggers (at
    # 10,000 guests that was a third of `plan --offline`). Given back to the collector when
    # the command ends, so a process that runs many commands (the tests) frees its garbage.
    gc.freeze()
    ctx.call_on_close(gc.unfreeze)
    return inventory


def parse_ids(inventory: Inventory, ids: list[str] | None) -> list[int] | None:
    """CLI guest ids -> ints, each checked against the inventory; None means all."""
    from phoenix.inventory.models import CTID_TEXT

    if not ids:
        return None
    out: list[int] = []
    for raw in ids:
        if not CTID_TEXT.fullmatch(raw):  # as in the inventory: no "0101", no non-ASCII digits
            fail(f"{raw!r} is not a guest id (expected a number such as 101)")
        ctid = int(raw)
        if ctid not in inventory.guests and ctid not in inventory.vms:
            known = ", ".join(str(c) for c in sorted(inventory.guests))
            fail(f"guest {ctid} is not in the inventory (containers: {known})")
        out.append(ctid)
    return out


def report_error(exc: PhoenixError) -> NoReturn:
    fail(str(exc))

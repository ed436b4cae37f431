"""`plan`, `converge`, `create`, `start`, `stop`, `restart`, `delete`, `LetsGo`.

Every command that changes the host takes the host lock and journals its steps (see
phoenix.plan). People get rich progress; `--json` prints one JSON object per line (events,
then a final `result`) for scripts (`run_output` shows a run; this module runs it). Errors
are one message and exit 1, never a traceback.

`create IDS` makes the selected guests exist with their settings (create/clone, configure,
resize) without starting them or running recipes inside; guests they are cloned from or
depend on are fully converged first, since a clone needs its source's finished snapshot.
`converge IDS` does everything; `LetsGo` converges the whole inventory (the original tool's
verb).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from phoenix.cli.context import console, err_console, fail, load, parse_ids, state
from phoenix.cli.run_output import (
    finish,
    output_closed,
    print_styled,
    render_plan,
    run_failed,
    run_with_progress,
    stop_on_signals,
)
from phoenix.digits import is_digits
from phoenix.errors import PhoenixError

if TYPE_CHECKING:
    from phoenix.drivers.base import Driver
    from phoenix.inventory.loader import Inventory
    from phoenix.plan.events import Reporter
    from phoenix.plan.executor import RunResult
    from phoenix.plan.model import Plan
    from phoenix.plan.planner import PlanOptions

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
MigrateOpt = Annotated[
    bool,
    typer.Option(
        "--migrate",
        help="Proxmox cluster: move guests running on another node than their inventory "
        "`node` (pct migrate; a running container restarts). Without it that is reported "
        "as drift and the guest converges where it is.",
    ),
]


def _setup(ctx: typer.Context, ids: list[str] | None) -> tuple[Inventory, list[int] | None]:
    inventory = load(ctx)
    return inventory, parse_ids(inventory, ids)


def _driver(ctx: typer.Context, inventory: Inventory, offline: bool = False) -> Driver:
    from phoenix.drivers.factory import make_driver

    try:
        return make_driver(
            inventory.hypervisor.phoenix,
            state(ctx).driver,
            offline,
            frozenset(inventory.vms),
            placement=inventory.placement(),
        )
    except PhoenixError as exc:
        fail(str(exc))


def _host_problems(inventory: Inventory) -> list[str]:
    """What `phoenix setup` would still change on this host (a bridge gone or without its
    address, forwarding off, the NAT table gone, subuid lines missing): a converge checks
    its host, not only its guests. The NAT table is the one `setup` recorded making."""
    from phoenix.drivers.lxc.hostprep import HostSetup, Record
    from phoenix.host.setup import bridges_from_inventory, id_ranges_from_inventory
    from phoenix.runners.local import LocalRunner

    ranges = id_ranges_from_inventory(inventory)
    host = HostSetup(LocalRunner(), inventory.state_dir, subid_ranges=ranges)
    made = Record.load(host.record_path).nat_tables
    if made:
        host = HostSetup(
            LocalRunner(), inventory.state_dir, nat_table=made[-1], subid_ranges=ranges
        )
    try:
        return [step.describe for step in host.plan(bridges_from_inventory(inventory))]
    except PhoenixError as exc:
        return [str(exc)]
    except (OSError, ValueError) as exc:
        return [f"cannot check the host: {exc}"]


def _note_unapplied(inventory: Inventory, ids: list[int] | None, driver: object) -> None:
    """One stderr line per selected guest with inventory keys Phoenix does not apply yet
    (or that this driver does not: a VM's `qm_options` are Proxmox's)."""
    from phoenix.inventory.checks import unapplied_keys

    proxmox = getattr(driver, "name", "") == "proxmox"
    for ctid in ids if ids is not None else sorted(inventory.all_ids()):
        vm = inventory.vms.get(ctid)
        if vm is not None:
            if vm.qm_options and not proxmox:
                err_console.print(
                    f"note: VM {ctid}: qm_options ({'; '.join(vm.qm_options)}) apply on "
                    "Proxmox only: the local QEMU driver leaves them out",
                    markup=False,
                    highlight=False,
                )
            continue
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
            run_failed(
                "this host is not ready for the lab: "
                + "; ".join(problems)
                + " (`phoenix setup` makes these changes)",
                as_json,
            )
    if not as_json:
        _note_unapplied(inventory, ids, driver)

    started = time.monotonic()
    with stop_on_signals(as_json) as stop:

        def body(reporter: Reporter) -> RunResult:
            return converge_run(inventory, driver, ids, options, reporter, stop=stop).result

        try:
            result = run_with_progress(inventory, as_json, body)
        except BrokenPipeError:
            output_closed()
        except PhoenixError as exc:
            run_failed(str(exc), as_json)
    finish(result, as_json, verb, time.monotonic() - started)


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
    migrate: MigrateOpt = False,
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
            migrate=migrate,
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
    _note_unapplied(inventory, selected, driver)
    if lines is not None:
        console.print("commands:", style="bold")
        print_styled([(line + "\n", "") for line in lines])


def _offline_commands(
    ctx: typer.Context, inventory: Inventory, the_plan: Plan, pve_version: str
) -> list[str]:
    """The commands a fresh Proxmox node would run for the plan, from the command builders."""
    from phoenix.drivers.factory import driver_name

    if driver_name(inventory.hypervisor.phoenix, state(ctx).driver) != "proxmox":
        fail("--commands needs --offline and the proxmox driver (--driver proxmox)")
    from phoenix.plan.preview import plan_listing

    major, _, minor = pve_version.partition(".")
    if not (is_digits(major) and is_digits(minor)):
        fail(f"--pve-version {pve_version!r}: give the node's version as X.Y (e.g. 8.4)")
    try:
        # A guest whose recipe is missing is listed up to that step, marked BLOCKED with
        # the reason (as `plan` and `validate` say it); every other guest in full.
        return plan_listing(the_plan, (int(major), int(minor))).lines()
    except PhoenixError as exc:
        # A command list that stops halfway reads as complete: refuse it, with the reason.
        fail(f"cannot list the commands for a fresh node: {exc}")


def converge(
    ctx: typer.Context,
    ids: Ids = None,
    as_json: JsonOpt = False,
    recreate: RecreateOpt = False,
    migrate: MigrateOpt = False,
) -> None:
    """Make the guests (default: all) match the inventory: create or clone, configure,
    start in boot order, run features and the application, check health, snapshot.
    Running it again changes nothing; after a failure it resumes."""
    from phoenix.plan.planner import PlanOptions

    inventory, selected = _setup(ctx, ids)
    options = PlanOptions(recreate=recreate, migrate=migrate)
    _converge(ctx, selected, inventory, as_json, options, "converge")


def create(ctx: typer.Context, ids: RequiredIds, as_json: JsonOpt = False) -> None:
    """Create (or clone) the guests and apply their settings, without starting them or
    running recipes inside. What they are cloned from is converged fully first."""
    from phoenix.plan.planner import PlanOptions

    inventory, selected = _setup(ctx, ids)
    assert selected is not None
    options = PlanOptions(create_only=frozenset(selected))
    _converge(ctx, selected, inventory, as_json, options, "create")


def lets_go(ctx: typer.Context, as_json: JsonOpt = False, migrate: MigrateOpt = False) -> None:
    """Everything: converge the whole inventory, in dependency order, started in boot
    order."""
    from phoenix.plan.planner import PlanOptions

    inventory = load(ctx)
    _converge(ctx, None, inventory, as_json, PlanOptions(migrate=migrate), "LetsGo")


def _power(
    ctx: typer.Context, ids: list[str] | None, as_json: bool, action: str, force: bool = False
) -> None:
    from phoenix.plan.run import power_plan, run_plan

    inventory, selected = _setup(ctx, ids)
    if selected is not None:
        targets = selected
    else:  # all; parked clone sources are started only when named
        parked = {c for c, g in inventory.guests.items() if g.parks_after_snapshot}
        skip = parked if action in ("start", "restart") else set()
        targets = sorted(inventory.all_ids() - skip)
    driver = _driver(ctx, inventory)
    started = time.monotonic()
    with stop_on_signals(as_json) as stop:
        try:
            the_plan = power_plan(inventory, driver, targets, action, force)
            result = run_with_progress(
                inventory,
                as_json,
                lambda reporter: run_plan(inventory, driver, the_plan, reporter, stop=stop),
            )
        except BrokenPipeError:
            output_closed()
        except PhoenixError as exc:
            run_failed(str(exc), as_json)
    finish(result, as_json, action, time.monotonic() - started)


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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also delete guests the host guards: on Proxmox, take them out of HA and "
            "clear their protection first (without it such a guest is refused, untouched).",
        ),
    ] = False,
) -> None:
    """Destroy guests and everything the driver made for them (dependents first)."""
    if not ids and not everything:
        fail("name the guests to delete, or pass --all")
    if everything:
        ids = [str(c) for c in sorted(load(ctx).all_ids())]
    assert ids is not None
    if not yes:
        if as_json or not console.is_terminal:
            fail("delete destroys guests and their data; pass --yes to confirm")
        typer.confirm(f"Destroy guest(s) {' '.join(ids)} and their data?", abort=True)
    _power(ctx, ids, as_json, "delete", force)


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(converge)
    app.command()(create)
    app.command()(start)
    app.command()(stop)
    app.command()(restart)
    app.command()(delete)
    app.command(name="LetsGo")(lets_go)

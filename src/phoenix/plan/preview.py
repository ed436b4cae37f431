"""A plan's commands on a fresh Proxmox node: each step, through the executor's dispatch
(`phoenix.plan.dispatch`), sent to the driver's command builders
(`phoenix.drivers.proxmox.preview.Preview`) instead of a driver.
What `phoenix plan --driver proxmox --offline --commands` prints: a guest whose feature
or application cannot run (no recipe yet) is listed up to that step, which is marked with
the reason, and every other guest in full.

It sits in the plan layer because it reads plan steps (health checks included) and
the recipe runner's in-guest commands; the builders below it know none of those.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import assert_never

from phoenix.drivers.proxmox.commands import Version
from phoenix.drivers.proxmox.preview import DEFAULT_VERSION, Preview
from phoenix.errors import PlanError
from phoenix.plan.dispatch import lifecycle
from phoenix.plan.health import probe
from phoenix.plan.model import (
    Application,
    CheckHealth,
    Clone,
    Feature,
    Plan,
    Step,
    Unrunnable,
)
from phoenix.recipes.runner import await_idle, bundle_commands, read_markers


class PlanPreview:
    """Walks plan steps through a Preview, remembering which guests' markers were read."""

    def __init__(self, preview: Preview) -> None:
        self.preview = preview
        self.markers_read: set[int] = set()

    def step(self, step: Step) -> None:
        """The commands of one plan step (the executor's dispatch, with builders)."""
        preview = self.preview
        match lifecycle(preview, step):
            case None:
                pass
            case CheckHealth(ctid=ctid, check=check):
                probe(preview.guest(), ctid, check, sleep=lambda _: None)
            case Feature(ctid=ctid, bundle=bundle) | Application(ctid=ctid, bundle=bundle):
                # The recipe layer builds its in-guest commands itself: it is handed an
                # exec that lists them (a fresh guest: every command answers 0 with no
                # output), in the order the executor runs them.
                guest = preview.guest()
                if ctid not in self.markers_read:
                    self.markers_read.add(ctid)
                    read_markers(guest, ctid)
                await_idle(guest, ctid, None, bundle.timeout)
                for argv, env in bundle_commands(bundle):  # run_bundle's, not packed
                    preview.exec(ctid, argv, env)
            case other:
                assert_never(other)


@dataclass(frozen=True)
class Listing:
    """A plan's commands on a fresh node; `blocked` are the steps that cannot run, each
    with the number of commands listed before it (where its mark goes)."""

    preview: Preview
    blocked: tuple[tuple[int, Unrunnable], ...] = ()
    nodes: tuple[tuple[int, str], ...] = ()  # (position, line) naming a guest's node

    def lines(self) -> list[str]:
        marks: dict[int, list[str]] = defaultdict(list)
        for position, line in self.nodes:
            marks[position].append(line)
        for position, step in self.blocked:
            marks[position].append(
                f"# guest {step.ctid}: BLOCKED at {step.detail}: {step.error} "
                "(its later steps wait for it)"
            )
        out: list[str] = []
        for position, command in enumerate(self.preview.commands):
            out += marks.pop(position, [])
            command.render(out)
        for rest in marks.values():
            out += rest
        return out


def plan_listing(plan: Plan, version: Version = DEFAULT_VERSION) -> Listing:
    """Every command of `plan` on a fresh node of `version`, guests in creation order; a
    guest stops at a step that cannot run (the executor fails it there), the others go on.

    Raises the PhoenixError that stops the whole plan (a template the driver cannot use, a
    raw key the version drops), naming the guest and the reason."""
    placement = {g.ctid: g.node for g in plan.guests if g.node is not None}
    walker = PlanPreview(Preview(version, placement=placement))
    blocked: list[tuple[int, Unrunnable]] = []
    nodes: list[tuple[int, str]] = []
    for guest in plan.guests:
        if guest.node is not None and guest.steps:  # a cluster: pct runs on the guest's node
            where = f"# guest {guest.ctid}: on node {guest.node}"
            clone = next((s for s in guest.steps if isinstance(s, Clone)), None)
            source_node = placement.get(clone.source) if clone is not None else None
            if source_node not in (None, guest.node):
                where += f" (its `pct clone --target` runs on {source_node}, the source's node)"
            nodes.append((len(walker.preview.commands), where))
        for step in guest.steps:
            if isinstance(step, Unrunnable):
                blocked.append((len(walker.preview.commands), step))
                break
            walker.step(step)
    return Listing(walker.preview, tuple(blocked), tuple(nodes))


def plan_commands(plan: Plan, version: Version = DEFAULT_VERSION) -> Preview:
    """Every command of `plan` on a fresh node, or the PhoenixError of the first step that
    cannot run (for callers that need the whole list)."""
    listing = plan_listing(plan, version)
    if listing.blocked:
        _, step = listing.blocked[0]
        raise PlanError(f"guest {step.ctid}: {step.detail}: {step.error}")
    return listing.preview

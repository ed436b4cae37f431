"""How a plan's guests are cut into parts and ordered (the executor runs the parts).

Each guest's steps are cut into parts that a `graphlib.TopologicalSorter` orders:

    pre    create/clone/configure...   after every guest it needs is finished
    start  its `start` step            also after every guest of a lower boot rank started
    rest   recipes, checks, snapshots  after its own start

The boot rank of a guest is the highest `boot_order` among itself and everything it needs
(a guest cannot start before what it needs), so the graph has no cycle.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Literal

from phoenix.plan.model import GuestPlan, Plan, Start

Part = Literal["pre", "start", "rest"]
Node = tuple[int, Part]


class GuestRun:
    """Per-guest execution state (markers read once, lazily)."""

    def __init__(self, gp: GuestPlan) -> None:
        self.plan = gp
        first_start = next((i for i, s in enumerate(gp.steps) if isinstance(s, Start)), None)
        self.has_start = first_start is not None
        # [begin, end) of each part's steps
        if first_start is None:
            self.parts: dict[Part, tuple[int, int]] = {"pre": (0, len(gp.steps))}
        else:
            self.parts = {
                "pre": (0, first_start),
                "start": (first_start, first_start + 1),
                "rest": (first_start + 1, len(gp.steps)),
            }
        self.markers: dict[str, str] | None = None
        self.index = 0
        self.began = False

    @property
    def last(self) -> Node:
        return (self.plan.ctid, "rest" if self.has_start else "pre")

    def next_step(self) -> str:
        steps = self.plan.steps
        return steps[self.index].detail if self.index < len(steps) else "its last step"


def boot_ranks(plan: Plan) -> dict[int, int]:
    """ctid -> highest boot_order among the guest and everything it needs."""
    rank: dict[int, int] = {}
    for gp in plan.guests:  # creation order: needs come first
        rank[gp.ctid] = max([gp.boot_order, *(rank.get(n, 0) for n in gp.needs)])
    return rank


def part_graph(plan: Plan, runs: dict[int, GuestRun]) -> TopologicalSorter[Node]:
    """The parts of every guest with steps and what each waits for (module docstring),
    prepared. A gateway's wait for its backends (`GuestPlan.after`) is an ordering wish:
    where boot order and dependencies make it circular, it is dropped."""
    sorter = _part_graph(plan, runs, with_after=True)
    try:
        sorter.prepare()
    except CycleError:
        sorter = _part_graph(plan, runs, with_after=False)
        sorter.prepare()
    return sorter


def _part_graph(plan: Plan, runs: dict[int, GuestRun], with_after: bool) -> TopologicalSorter[Node]:
    rank = boot_ranks(plan)
    sorter: TopologicalSorter[Node] = TopologicalSorter()
    starters = [c for c, r in runs.items() if r.has_start]
    start: Part = "start"
    for ctid, run in runs.items():
        sorter.add((ctid, "pre"), *(runs[n].last for n in run.plan.needs if n in runs))
        if run.has_start:
            lower = [(c, start) for c in starters if rank[c] < rank[ctid]]
            sorter.add((ctid, "start"), (ctid, "pre"), *lower)
            sorter.add((ctid, "rest"), (ctid, "start"))
        if with_after:  # a gateway's recipes wait for the backends it routes to
            sorter.add(run.last, *(runs[b].last for b in run.plan.after if b in runs))
    return sorter

"""A plan's commands on a fresh Proxmox node: each step, the executor's dispatch, sent to
the driver's command builders (`phoenix.drivers.proxmox.preview.Preview`) instead of a
driver. What `phoenix plan --driver proxmox --offline --commands` prints.

It sits in the plan layer because it reads plan steps, the inventory's health checks and
the recipe runner's in-guest commands; the builders below it know none of those.
"""

from __future__ import annotations

from phoenix.drivers.proxmox.commands import Version
from phoenix.drivers.proxmox.preview import DEFAULT_VERSION, Preview
from phoenix.errors import PlanError
from phoenix.inventory.loader import Inventory
from phoenix.plan.health import probe
from phoenix.plan.model import Plan, Step
from phoenix.recipes.runner import await_idle, read_markers, run_bundle


class PlanPreview:
    """Walks plan steps through a Preview, remembering which guests' markers were read."""

    def __init__(self, inventory: Inventory, preview: Preview) -> None:
        self.inventory = inventory
        self.preview = preview
        self.markers_read: set[int] = set()

    def step(self, step: Step) -> None:
        """The commands of one plan step (the executor's dispatch, with builders)."""
        preview = self.preview
        ctid = step.ctid
        if step.error is not None:
            raise PlanError(f"guest {ctid}: {step.detail}: {step.error}")
        kind = step.kind
        if kind == "create":
            assert step.settings is not None and step.template is not None
            preview.create(ctid, step.template, step.settings)
        elif kind == "clone":
            assert step.settings is not None and step.source is not None
            preview.clone(step.source, ctid, step.snapshot, step.settings)
        elif kind == "configure":
            assert step.settings is not None
            preview.configure(ctid, step.settings, frozenset(c.field for c in step.changes))
        elif kind == "resize":
            assert step.disk_gb is not None
            preview.resize(ctid, step.disk_gb)
        elif kind == "start":
            preview.start(ctid)
        elif kind == "stop":
            preview.stop(ctid)
        elif kind == "destroy":
            preview.destroy(ctid)
        elif kind == "snapshot":
            assert step.snapshot is not None
            preview.snapshot(ctid, step.snapshot)
        elif kind == "mark_template":
            preview.mark_template(ctid)
        elif kind == "health_check":
            check = self.inventory.guests[ctid].health_check
            assert check is not None
            probe(preview.guest(), ctid, check, sleep=lambda _: None)
        elif kind in ("feature", "application"):
            # The recipe layer builds its in-guest commands itself: it is handed an exec
            # that lists them (a fresh guest: every command answers 0 with no output),
            # in the order the executor runs them.
            assert step.bundle is not None
            guest = preview.guest()
            if ctid not in self.markers_read:
                self.markers_read.add(ctid)
                read_markers(guest, ctid)
            await_idle(guest, ctid, None, step.bundle.timeout)
            run_bundle(guest, ctid, step.bundle)


def plan_commands(inventory: Inventory, plan: Plan, version: Version = DEFAULT_VERSION) -> Preview:
    """Every command of `plan` on a fresh node of `version`, guests in creation order.

    Raises the PhoenixError that stops the plan (a template the driver cannot use, a raw
    key the version drops, a step that cannot run), naming the guest and the reason."""
    walker = PlanPreview(inventory, Preview(version))
    for guest in plan.guests:
        for step in guest.steps:
            walker.step(step)
    return walker.preview

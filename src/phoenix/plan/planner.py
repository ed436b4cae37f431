"""The planner: desired (inventory) vs observed (driver) -> ordered steps per guest.

Planning is pure with respect to the host: it only calls `driver.observe` and, for running
guests, one read-only `exec` that lists the applied-markers. Per guest, in creation order:

    destroy (only with --recreate, or a create the previous run left half-done)
    create | clone            a missing guest (all settings applied by the driver)
    configure                 each setting that differs, old -> new
    resize                    grow the root disk (shrinking is refused)
    start
    snapshot pre-configured   lifecycle snapshots, when enabled and recipes will run
    feature <name>...         bundles whose digest is not yet recorded in the guest
    application
    health check              only when something else changed
    snapshot final-form / <template_snapshot_name>   when missing
    stop + mark template      `is_template` guests
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from phoenix.drivers import idmaps
from phoenix.drivers.base import ClusterPlacement, Driver, GuestSettings, ObservedGuest
from phoenix.errors import PlanError
from phoenix.inventory.checks.proxmox_binds import lifecycle_snapshots, takes_snapshots
from phoenix.inventory.graph import Graph
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import HealthCheck, LxcGuest
from phoenix.inventory.ordering import build_graph, start_order
from phoenix.plan.desired import desired_settings
from phoenix.plan.health import probe
from phoenix.plan.model import (
    Application,
    Change,
    CheckHealth,
    Clone,
    Configure,
    Create,
    Destroy,
    Feature,
    GuestPlan,
    MarkTemplate,
    Plan,
    Resize,
    Snapshot,
    Start,
    Step,
    Stop,
    Unrunnable,
)
from phoenix.plan.placement import ha_steps, ha_wanted, placement_steps
from phoenix.plan.vmplan import plan_vm
from phoenix.recipes.applications import application_bundle
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.features import RecipeFinder, feature_bundle
from phoenix.recipes.gateway_app import GatewayApp
from phoenix.recipes.runner import is_applied, read_markers

PRE_CONFIGURED = "pre-configured"
FINAL_FORM = "final-form"
# Settings a driver cannot change in place: the guest must be rebuilt.
REBUILD_FIELDS = ("unprivileged", "storage")


@dataclass(frozen=True)
class PlanOptions:
    """How to plan.

    `recreate`: rebuild guests whose unprivileged/storage setting changed (destroys them).
    `create_only`: guests (of the selection) that are only created/configured, not started
    and not set up inside (`phoenix create`); what they need is still fully converged.
    `interrupted`: ctid -> step kind a previous run left unfinished (from the journal).
    `state_dir`: where the gateway keeps its material (passed to the gateway bundle); None
    (a bare planner, as in tests and benches): its CA lives in memory only.
    `persist_secrets`: False for a plan that only shows (no CA or keys written).
    `gateway`: the built-in gateway application (`phoenix.cli.gateway_app.GATEWAY`, handed
    in by the CLI: the gateway sits above the planner); None: a gateway guest's application
    and the trusted_ca feature are steps that cannot run, saying why.
    `migrate`: move a guest running on another cluster node than the inventory's (else
    that is reported as drift and the guest converges where it is).
    """

    recreate: bool = False
    create_only: frozenset[int] = frozenset()
    interrupted: Mapping[int, str] = field(default_factory=dict)
    state_dir: Path | None = None
    persist_secrets: bool = True
    gateway: GatewayApp | None = None
    migrate: bool = False


def guest_entry(guest: LxcGuest) -> dict[str, Any]:
    """The inventory entry as written (what recipes receive as guest.json)."""
    return guest.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _idmap_change(diff: Mapping[str, tuple[object, object]]) -> list[str]:
    """A new id map re-owns every file of the guest: like `unprivileged`, not in place."""
    if "raw_lxc" not in diff:
        return []
    old, new = (idmaps.from_raw(cast(Sequence[tuple[str, str]], v)) for v in diff["raw_lxc"])
    if idmaps.effective(old) == idmaps.effective(new):
        return []
    text = [", ".join(r.value for r in m) or "default" for m in (old, new)]
    return [f"id map [{text[0]}] -> [{text[1]}]"]


def _label(ctid: int, guest: LxcGuest) -> str:
    return f"guest {ctid} ({guest.name})"


class Planner:
    """Computes a Plan for a selection of guests on one driver."""

    def __init__(
        self, inventory: Inventory, driver: Driver, options: PlanOptions | None = None
    ) -> None:
        self.inventory = inventory
        self.driver = driver
        self.options = options or PlanOptions()
        self.finder = RecipeFinder(inventory.scripts_dir)
        self.placement = inventory.placement()  # ctid -> cluster node; empty: one node

    def order(self, ids: Iterable[int] | None, graph: Graph | None = None) -> list[int]:
        """Guests (containers and VMs) to plan: the selection plus what it needs, in
        creation order."""
        selected = None if ids is None else list(ids)
        for ctid in selected or []:
            if ctid not in self.inventory.guests and ctid not in self.inventory.vms:
                raise PlanError(f"guest {ctid} is not in the inventory")
        try:
            order = (graph or build_graph(self.inventory)).creation_order(selected)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        return [c for c in order if c in self.inventory.guests or c in self.inventory.vms]

    def plan(self, ids: Iterable[int] | None = None) -> Plan:
        graph = build_graph(self.inventory)
        order = self.order(ids, graph)
        planned = set(order)
        guests = []
        held: dict[int, str] = {}
        for ctid in order:
            needs = tuple(sorted(n for n in graph.needs(ctid) if n in planned))
            if ctid in self.inventory.vms:
                guests.append(plan_vm(self, ctid, needs))
                continue
            waiting = [n for n in needs if n in held]
            if waiting:
                why = f"needs {', '.join(map(str, waiting))}, held: {held[waiting[0]]}"
                gp = self._held(ctid, needs, why)
            else:
                gp = self.plan_guest(ctid, needs)
            if gp.held is not None:
                held[ctid] = gp.held
            after = self._backends_first(ctid, graph, planned)
            guests.append(replace(gp, after=after) if after else gp)
        return Plan(tuple(guests), tuple(start_order(self.inventory, order)))

    def _backends_first(self, ctid: int, graph: Graph, planned: set[int]) -> tuple[int, ...]:
        """For the gateway: the planned guests it routes to that do not need it (those
        finish before its bundle re-points it; the others could never be waited for)."""
        gateway = self.options.gateway
        if gateway is None or not self.inventory.guests[ctid].runs_gateway:
            return ()
        found = gateway.routed_guests(self.inventory, ctid)
        return tuple(
            sorted(
                b for b in found if b in planned and b != ctid and ctid not in graph.closure([b])
            )
        )

    # -- one guest -------------------------------------------------------------------

    def _held(self, ctid: int, needs: tuple[int, ...], why: str) -> GuestPlan:
        guest = self.inventory.guests[ctid]
        observed = self.driver.observe(ctid)
        node = observed.node or self.placement.get(ctid)
        return GuestPlan(
            ctid, guest.name, observed.state, (), guest.boot_order, needs, node=node, held=why
        )

    def plan_guest(self, ctid: int, needs: tuple[int, ...] = ()) -> GuestPlan:
        guest = self.inventory.guests[ctid]
        desired = desired_settings(self.inventory, ctid)
        if isinstance(self.driver, ClusterPlacement):
            why = self.driver.held(ctid, self.placement.get(ctid))
            if why is not None:
                return self._held(ctid, needs, why)
        observed = self.driver.observe(ctid)
        ha = ha_wanted(self.inventory, ctid)  # HA's node is accepted: no placement to keep
        wanted = None if ha is not None else self.placement.get(ctid)
        steps, drift = placement_steps(self.driver, ctid, wanted, observed, self.options.migrate)
        diff = desired.diff(observed.settings) if observed.settings is not None else {}
        fresh = self.rebuild_steps(ctid, guest.name, observed, diff, steps)
        if fresh:
            make = self._make_step(ctid, guest, desired)
            if observed.leftover:
                make = replace(make, detail=f"{make.detail} (after removing {observed.leftover})")
            steps.append(make)
        else:
            steps.extend(self._settings_steps(ctid, guest, desired, observed, diff))
        if ctid not in self.options.create_only and not (observed.is_template and not fresh):
            steps.extend(self._run_steps(ctid, guest, observed, fresh))
        steps.extend(ha_steps(self.driver, ctid, ha))
        node = observed.node or self.placement.get(ctid)
        return GuestPlan(
            ctid,
            guest.name,
            observed.state,
            tuple(steps),
            guest.boot_order,
            needs,
            node=node,
            drift=drift,
            placed_by_ha=ha is not None,
        )

    def rebuild_steps(
        self,
        ctid: int,
        name: str,
        observed: ObservedGuest,
        diff: dict[str, tuple[object, object]],
        steps: list[Step],
    ) -> bool:
        """Destroy first when needed; True when the guest must be made from scratch."""
        if not observed.exists:
            return True
        if self.options.interrupted.get(ctid) in ("create", "clone"):
            steps.append(Destroy(ctid, "destroy (a previous run stopped while creating it)"))
            return True
        if observed.settings is None:
            raise PlanError(f"guest {ctid} ({name}): exists but its settings cannot be read")
        rebuild = [f"{n} {diff[n][0]} -> {diff[n][1]}" for n in REBUILD_FIELDS if n in diff]
        rebuild += _idmap_change(diff)
        if not rebuild:
            return False
        shown = ", ".join(rebuild)
        if not self.options.recreate:
            raise PlanError(
                f"guest {ctid} ({name}): {shown} cannot be changed in place; "
                "run again with --recreate to destroy and rebuild it (its data is lost)"
            )
        steps.append(Destroy(ctid, f"destroy to rebuild ({shown})"))
        return True

    def _make_step(self, ctid: int, guest: LxcGuest, desired: GuestSettings) -> Step:
        src = guest.clone_from_ctid
        if src is None:
            if guest.template is None:
                raise PlanError(
                    f"{_label(ctid, guest)}: needs 'template' or 'clone_from_ctid' to be made"
                )
            return Create(ctid, f"create from {guest.template}", guest.template, desired)
        source = self.inventory.guests.get(src)
        if source is None:
            raise PlanError(f"{_label(ctid, guest)}: clone source {src} is not an LXC guest")
        if source.is_template:
            return Clone(ctid, f"clone {src}", src, None, desired)
        snap = source.template_snapshot_name
        if snap is None:
            raise PlanError(
                f"{_label(ctid, guest)}: clone source {src} has no template_snapshot_name "
                "and is not a template"
            )
        return Clone(ctid, f"clone {src} at snapshot {snap}", src, snap, desired)

    def _settings_steps(
        self,
        ctid: int,
        guest: LxcGuest,
        desired: GuestSettings,
        observed: ObservedGuest,
        diff: dict[str, tuple[object, object]],
    ) -> list[Step]:
        assert observed.settings is not None
        steps: list[Step] = []
        changes = tuple(
            Change(name, old, new)
            for name, (old, new) in diff.items()
            if name not in ("disk_gb", *REBUILD_FIELDS)
        )
        if changes:
            detail = "configure " + "; ".join(c.describe() for c in changes)
            steps.append(Configure(ctid, detail, changes, desired))
        if "disk_gb" in diff:
            old_gb, new_gb = observed.settings.disk_gb, desired.disk_gb
            if new_gb < old_gb:
                raise PlanError(
                    f"{_label(ctid, guest)}: storage_size_gb {old_gb} -> {new_gb} would shrink "
                    "the root disk; Phoenix only grows disks (set it back to at least "
                    f"{old_gb}, or rebuild the guest)"
                )
            change = Change("disk_gb", old_gb, new_gb)
            steps.append(Resize(ctid, f"resize disk {old_gb} -> {new_gb} GB", new_gb, (change,)))
        return steps

    def feature_bundles(
        self, features: Sequence[str], entry: dict[str, Any]
    ) -> list[tuple[str, Bundle | None, str | None]]:
        """(label, bundle, error) for each feature, in order: one rule for containers and VMs."""
        out: list[tuple[str, Bundle | None, str | None]] = []
        for feature in features:
            bundle, why = feature_bundle(
                self.inventory,
                feature,
                entry,
                self.finder,
                state_dir=self.options.state_dir,
                persist=self.options.persist_secrets,
                gateway=self.options.gateway,
            )
            out.append((f"feature {feature}", bundle, why))
        return out

    def bundles(self, ctid: int) -> list[tuple[str, Bundle | None, str | None]]:
        """(label, bundle, error) for every recipe of the guest, features first."""
        guest = self.inventory.guests[ctid]
        entry = guest_entry(guest)
        out = self.feature_bundles(guest.features, entry)
        bundle, why = application_bundle(
            self.inventory,
            ctid,
            entry,
            self.options.state_dir,
            self.finder,
            persist=self.options.persist_secrets,
            gateway=self.options.gateway,
        )
        if bundle is not None or why is not None:
            out.append(("application", bundle, why))
        return out

    def probe(self, ctid: int, check: HealthCheck) -> str | None:
        """A converged guest is checked, not trusted: one try of its health check (read
        only); None when healthy, else what it said."""
        result = probe(self.driver, ctid, check.model_copy(update={"retries": 1}))
        if result.ok:
            return None
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return f"exit {result.returncode}" + (f": {said[-1][:200]}" if said else "")

    def _reapply(self, ctid: int, why: str) -> list[Step]:
        """The recipe a failed health check belongs to, run again whatever its marker says
        (the application: the gateway's bundle re-checks its config with `nginx -t` and
        starts nginx; a model server's restarts its service)."""
        steps: list[Step] = []
        for label, bundle, error in self.bundles(ctid):
            if label == "application" and bundle is not None and error is None:
                detail = f"application again (health check failed: {why})"
                steps.append(Application(ctid, detail, bundle, force=True))
        return steps

    def _run_steps(
        self, ctid: int, guest: LxcGuest, observed: ObservedGuest, fresh: bool
    ) -> list[Step]:
        running = observed.running and not fresh
        snapshots = set() if fresh else set(observed.snapshots)
        # A template takes no snapshots (validate warns): `pct template` refuses them; nor
        # does a guest with bind mounts on Proxmox, which cannot snapshot it (validate warns),
        # unless its lifecycle snapshots are taken with the bind mounts detached.
        snapshots_taken = not guest.is_template and takes_snapshots(guest, self.driver.name)
        lifecycle, detach = lifecycle_snapshots(guest, self.driver.name)
        how = " (stopped, bind mounts detached)" if detach else ""
        wanted = [FINAL_FORM] if lifecycle else []
        if guest.template_snapshot_name and snapshots_taken:
            wanted.append(guest.template_snapshot_name)
        parked = guest.parks_after_snapshot
        if parked and not running and not fresh and set(wanted) <= snapshots:
            return []
        markers = read_markers(self.driver, ctid) if running else None
        steps: list[Step] = []
        if not running:
            steps.append(Start(ctid, "start"))
        recipe_steps: list[Step] = []
        for label, bundle, why in self.bundles(ctid):
            if bundle is not None and markers is not None and is_applied(markers, bundle):
                continue
            app = label == "application"
            if bundle is None or why is not None:
                recipe: Literal["feature", "application"] = "application" if app else "feature"
                recipe_steps.append(Unrunnable(ctid, label, recipe, why or "no bundle"))
                continue
            kind = Application if app else Feature
            recipe_steps.append(kind(ctid, label, bundle, conditional=markers is None))
        unhealthy = None
        if running and not recipe_steps and guest.health_check is not None:
            unhealthy = self.probe(ctid, guest.health_check)
        if unhealthy is not None:
            recipe_steps.extend(self._reapply(ctid, unhealthy))
        if lifecycle and PRE_CONFIGURED not in snapshots and recipe_steps:
            pre = Snapshot(ctid, f"snapshot {PRE_CONFIGURED}{how}", PRE_CONFIGURED, detach)
            steps.append(pre)
            snapshots.add(PRE_CONFIGURED)
        steps.extend(recipe_steps)
        if guest.health_check is not None and (steps or fresh or unhealthy is not None):
            check = guest.health_check
            steps.append(CheckHealth(ctid, f"health check: {check.command}", check))
        for name in wanted:
            if name not in snapshots:
                mine = detach and name == FINAL_FORM
                steps.append(Snapshot(ctid, f"snapshot {name}{how if mine else ''}", name, mine))
                snapshots.add(name)
        if parked:
            steps.append(Stop(ctid, "stop (clone source with its snapshot; not at boot)"))
        if guest.is_template and not observed.is_template:
            steps.append(Stop(ctid, "stop (to become a template)"))
            steps.append(MarkTemplate(ctid, "mark as template"))
        return steps


def plan(
    inventory: Inventory,
    driver: Driver,
    ids: Iterable[int] | None = None,
    options: PlanOptions | None = None,
) -> Plan:
    """Convenience wrapper: `Planner(inventory, driver, options).plan(ids)`."""
    return Planner(inventory, driver, options).plan(ids)

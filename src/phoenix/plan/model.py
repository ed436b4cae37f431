"""Plan objects: plain data with a JSON form, so `phoenix plan --json` and the executor see
the same thing.

A `Plan` lists one `GuestPlan` per guest in creation order; each holds the ordered `Step`s
that make the guest match the inventory. A guest with no steps is "up to date".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

from phoenix.drivers.base import (
    FirewallRule,
    GuestSettings,
    GuestState,
    HaPlacement,
    NetSettings,
)
from phoenix.inventory.models import HealthCheck
from phoenix.recipes.bundle import Bundle

GuestKind = Literal["container", "vm"]
StepKind = Literal[
    "destroy",
    "create",
    "clone",
    "configure",
    "resize",
    "start",
    "stop",
    "snapshot",
    "feature",
    "application",
    "health_check",
    "mark_template",
    "migrate",
    "ha_place",
]


def _jsonable(value: object) -> Any:
    """Setting values as JSON: dataclasses (NIC, rules) become objects, tuples lists."""
    if isinstance(value, NetSettings | FirewallRule):
        return {k: _jsonable(v) for k, v in vars(value).items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _short(value: object) -> str:
    if isinstance(value, NetSettings):
        mac = value.mac or "auto"
        gw = value.gw or "-"
        return f"{value.name} {value.ip} gw {gw} on {value.bridge} mac {mac}"
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return ",".join(f"{k}={v}" for k, v in value)
    if isinstance(value, tuple) and not value:
        return "none"
    if isinstance(value, tuple):
        return f"{len(value)} rules"
    return str(value)


@dataclass(frozen=True)
class Change:
    """One setting that differs: `field` of GuestSettings, observed -> desired."""

    field: str
    old: object
    new: object

    def describe(self) -> str:
        return f"{self.field}: {_short(self.old)} -> {_short(self.new)}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "old": _jsonable(self.old), "new": _jsonable(self.new)}


@dataclass(frozen=True)
class _Step:
    """What every step has: the guest and the line shown for it. Each kind below adds
    only what it needs, so a consumer `match`es on the class and never asserts."""

    ctid: int
    detail: str

    @property
    def kind(self) -> StepKind:  # each kind names itself (a class attribute)
        raise NotImplementedError

    def describe(self) -> str:
        return self.detail

    def _json_fields(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, **self._json_fields()}


@dataclass(frozen=True)
class Destroy(_Step):
    """Remove the guest. `force` (`phoenix delete --force`) lets the driver lift what the
    host guards it with first (Proxmox: its protection, its HA resource)."""

    kind: ClassVar[Literal["destroy"]] = "destroy"
    force: bool = False

    def _json_fields(self) -> dict[str, Any]:
        return {"force": True} if self.force else {}


@dataclass(frozen=True)
class Create(_Step):
    """Make the guest from a template archive with all its settings."""

    kind: ClassVar[Literal["create"]] = "create"
    template: str
    settings: GuestSettings = field(repr=False, compare=False)

    def _json_fields(self) -> dict[str, Any]:
        return {"template": self.template}


@dataclass(frozen=True)
class Clone(_Step):
    """Make the guest from `source` (at `snapshot`, or a template: None)."""

    kind: ClassVar[Literal["clone"]] = "clone"
    source: int
    snapshot: str | None
    settings: GuestSettings = field(repr=False, compare=False)

    def _json_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot
        return out


@dataclass(frozen=True)
class Configure(_Step):
    """Apply the settings named by `changes` (the rest of `settings` is as observed)."""

    kind: ClassVar[Literal["configure"]] = "configure"
    changes: tuple[Change, ...]
    settings: GuestSettings = field(repr=False, compare=False)

    def _json_fields(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes]}


@dataclass(frozen=True)
class Resize(_Step):
    kind: ClassVar[Literal["resize"]] = "resize"
    disk_gb: int
    changes: tuple[Change, ...] = ()

    def _json_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"changes": [c.to_json() for c in self.changes]}
        return {**(out if self.changes else {}), "disk_gb": self.disk_gb}


@dataclass(frozen=True)
class Migrate(_Step):
    """Move the guest from cluster node `source` to `target` (`pct migrate`)."""

    kind: ClassVar[Literal["migrate"]] = "migrate"
    source: str
    target: str

    def _json_fields(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target}


@dataclass(frozen=True)
class HaPlace(_Step):
    """Hand the guest's node to Proxmox HA: write what its HA resource and node affinity
    lack (`changes`, in words); from then on it lives where HA puts it."""

    kind: ClassVar[Literal["ha_place"]] = "ha_place"
    placement: HaPlacement
    changes: tuple[str, ...]

    def _json_fields(self) -> dict[str, Any]:
        nodes = self.placement.node_list()
        return {"nodes": nodes, "strict": self.placement.strict, "changes": list(self.changes)}


@dataclass(frozen=True)
class Start(_Step):
    kind: ClassVar[Literal["start"]] = "start"


@dataclass(frozen=True)
class Stop(_Step):
    kind: ClassVar[Literal["stop"]] = "stop"


@dataclass(frozen=True)
class Snapshot(_Step):
    """Snapshot the guest; `detach_bind_mounts`: with its host-path bind mounts taken out
    for it and put back (Proxmox, `lifecycle_snapshots_detach_bind_mounts`)."""

    kind: ClassVar[Literal["snapshot"]] = "snapshot"
    snapshot: str
    detach_bind_mounts: bool = False

    def _json_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"snapshot": self.snapshot}
        if self.detach_bind_mounts:
            out["detach_bind_mounts"] = True
        return out


@dataclass(frozen=True)
class MarkTemplate(_Step):
    kind: ClassVar[Literal["mark_template"]] = "mark_template"


@dataclass(frozen=True)
class CheckHealth(_Step):
    """Run the guest's health check (the inventory's, carried so nothing looks it up)."""

    kind: ClassVar[Literal["health_check"]] = "health_check"
    check: HealthCheck = field(repr=False, compare=False)


@dataclass(frozen=True)
class BundleStep(_Step):
    """Push and run `bundle` (only its name and digest are in the JSON form).

    `conditional`: run only if the guest has no marker with that digest yet (the planner
    could not read markers: the guest was not running or is about to be made).
    `force`: run even when the marker says applied (a failed health check).
    """

    bundle: Bundle = field(repr=False, compare=False)
    conditional: bool = False
    force: bool = False

    @property
    def digest(self) -> str:
        return self.bundle.digest

    def describe(self) -> str:
        return self.detail + (" (unless already applied)" if self.conditional else "")

    def _json_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bundle_name": self.bundle.name, "digest": self.bundle.digest}
        if self.conditional:
            out["conditional"] = True
        if self.force:
            out["force"] = True
        return out


@dataclass(frozen=True)
class Feature(BundleStep):
    kind: ClassVar[Literal["feature"]] = "feature"


@dataclass(frozen=True)
class Application(BundleStep):
    kind: ClassVar[Literal["application"]] = "application"


@dataclass(frozen=True)
class Unrunnable(_Step):
    """A feature/application that cannot run (`error`: a missing recipe). Planning still
    shows everything else; the executor fails the guest when it reaches this step."""

    recipe: Literal["feature", "application", "create"]  # create: a VM the driver cannot make
    error: str

    @property
    def kind(self) -> Literal["feature", "application", "create"]:
        return self.recipe

    def describe(self) -> str:
        return f"{self.detail} [cannot run: {self.error}]"

    def _json_fields(self) -> dict[str, Any]:
        return {"error": self.error}


# One action on one guest: consumers dispatch with `match` + `typing.assert_never`.
Step: TypeAlias = (
    Destroy
    | Create
    | Clone
    | Configure
    | Resize
    | Start
    | Stop
    | Snapshot
    | MarkTemplate
    | Migrate
    | HaPlace
    | CheckHealth
    | Feature
    | Application
    | Unrunnable
)


def step_digest(step: Step) -> str | None:
    """The bundle digest a recipe step pushes (None for every other step)."""
    return step.digest if isinstance(step, Feature | Application) else None


@dataclass(frozen=True)
class GuestPlan:
    """The steps for one guest, and what was observed when planning."""

    ctid: int
    name: str
    observed: GuestState
    steps: tuple[Step, ...] = ()
    boot_order: int = 0
    needs: tuple[int, ...] = ()
    # guests whose steps finish before this guest's recipes run (a gateway and the
    # backends it routes to: re-pointing it at a backend still being changed gives 502s)
    after: tuple[int, ...] = ()
    kind: GuestKind = "container"
    # In a cluster: the node it lives on (or will); why nothing may change it now (its
    # node unreachable, no quorum: no steps are planned); differences left as they are
    # (a placement not acted on without --migrate).
    node: str | None = None
    held: str | None = None
    drift: tuple[str, ...] = ()
    placed_by_ha: bool = False  # `placement: ha`: `node` is where HA put it

    @property
    def up_to_date(self) -> bool:
        return not self.steps and self.held is None and not self.drift

    def to_json(self) -> dict[str, Any]:
        return {
            "ctid": self.ctid,
            "name": self.name,
            "kind": self.kind,
            "observed": self.observed,
            "up_to_date": self.up_to_date,
            "boot_order": self.boot_order,
            "needs": list(self.needs),
            "after": list(self.after),
            "steps": [s.to_json() for s in self.steps],
            **({"node": self.node} if self.node is not None else {}),
            **({"placement": "ha"} if self.placed_by_ha else {}),
            **({"held": self.held} if self.held is not None else {}),
            **({"drift": list(self.drift)} if self.drift else {}),
        }


@dataclass(frozen=True)
class Plan:
    """Guest plans in creation order. `sequential` plans (stop, delete) run one guest after
    the other in the listed order instead of in dependency waves."""

    guests: tuple[GuestPlan, ...]
    start_order: tuple[int, ...] = ()
    sequential: bool = False
    action: str = "converge"

    @property
    def up_to_date(self) -> bool:
        return all(g.up_to_date for g in self.guests)

    @property
    def steps(self) -> list[Step]:
        return [s for g in self.guests for s in g.steps]

    def guest(self, ctid: int) -> GuestPlan:
        for gp in self.guests:
            if gp.ctid == ctid:
                return gp
        raise KeyError(ctid)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "up_to_date": self.up_to_date,
            "creation_order": [g.ctid for g in self.guests],
            "start_order": list(self.start_order),
            "guests": [g.to_json() for g in self.guests],
        }

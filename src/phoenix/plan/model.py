"""Plan objects: plain data with a JSON form, so `phoenix plan --json` and the executor see
the same thing.

A `Plan` lists one `GuestPlan` per guest in creation order; each holds the ordered `Step`s
that make the guest match the inventory. A guest with no steps is "up to date".
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from phoenix.drivers.base import FirewallRule, GuestSettings, GuestState, NetSettings
from phoenix.recipes.bundle import Bundle

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
]

# Steps that change the host or the guest (everything but the health check).
MUTATING: frozenset[str] = frozenset(typing.get_args(StepKind)) - {"health_check"}


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
class Step:
    """One action on one guest.

    `bundle` is what a feature/application step pushes (not part of the JSON form: only its
    name and digest are); `error` is set when the step cannot run (a missing recipe): the
    executor fails the guest when it reaches it, planning still shows everything else.
    `conditional` bundle steps run only if the guest has no marker with that digest yet
    (the planner could not read markers: the guest was not running or is about to be made).
    `force` bundle steps run even when the marker says applied (a failed health check).
    """

    ctid: int
    kind: StepKind
    detail: str
    changes: tuple[Change, ...] = ()
    settings: GuestSettings | None = field(default=None, repr=False, compare=False)
    template: str | None = None
    source: int | None = None
    snapshot: str | None = None
    disk_gb: int | None = None
    bundle: Bundle | None = field(default=None, repr=False, compare=False)
    bundle_name: str | None = None
    digest: str | None = None
    conditional: bool = False
    error: str | None = None
    force: bool = False

    @property
    def mutating(self) -> bool:
        return self.kind in MUTATING

    def describe(self) -> str:
        text = self.detail
        if self.conditional:
            text += " (unless already applied)"
        if self.error:
            text += f" [cannot run: {self.error}]"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        if self.changes:
            out["changes"] = [c.to_json() for c in self.changes]
        for key in ("template", "source", "snapshot", "disk_gb", "bundle_name", "digest", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.conditional:
            out["conditional"] = True
        if self.force:
            out["force"] = True
        return out


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

    @property
    def up_to_date(self) -> bool:
        return not self.steps

    def to_json(self) -> dict[str, Any]:
        return {
            "ctid": self.ctid,
            "name": self.name,
            "observed": self.observed,
            "up_to_date": self.up_to_date,
            "boot_order": self.boot_order,
            "needs": list(self.needs),
            "after": list(self.after),
            "steps": [s.to_json() for s in self.steps],
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

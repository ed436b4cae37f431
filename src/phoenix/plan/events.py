"""Progress events of a run: the executor reports, the CLI renders (rich or JSON lines).

The executor calls `reporter(event)` from worker threads; reporters must be thread-safe
(the ones here only append or print under a lock).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

EventKind = Literal[
    "run_started",
    "resume",
    "guest_started",
    "step_started",
    "step_done",
    "step_skipped",
    "step_failed",
    "step_left",
    "guest_done",
    "guest_failed",
    "guest_blocked",
    "guest_left",
    "run_done",
]


@dataclass(frozen=True)
class Event:
    """One thing that happened in a run. `ctid`/`step` are set for guest/step events."""

    kind: EventKind
    ctid: int | None = None
    step: str | None = None
    step_kind: str | None = None
    message: str = ""
    index: int | None = None
    total: int | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind, "time": round(self.time, 3)}
        for key in ("ctid", "step", "step_kind", "index", "total"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.message:
            out["message"] = self.message
        return out


class Reporter(Protocol):
    """Receives events; called from several threads."""

    def __call__(self, event: Event) -> None: ...


def null_reporter(event: Event) -> None:
    """A reporter that ignores everything (library use without output)."""


class CollectingReporter:
    """Keeps every event (tests, and callers that want a summary afterwards)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self, ctid: int | None = None) -> list[str]:
        return [e.kind for e in self.events if ctid is None or e.ctid == ctid]

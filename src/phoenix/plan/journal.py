"""The run journal: every executed step is recorded so an interrupted run can resume.

Two files under `<state_dir>/journal/`:
- `<run id>.jsonl`: the history of one run, one JSON object per step event (and a
  `crashed` record, with the traceback, when a bug or a broken reporter ended the run);
- `inflight.json`: steps that started and did not finish, {ctid: {...}}, rewritten
  atomically. A step that completes is removed; a step that failed or was interrupted
  stays until the guest's next step completes. The planner reads it (`interrupted()`)
  to treat a half-made guest as half-made; everything else is re-planned from what the
  driver observes, so completed steps are never redone.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback as tb
import uuid
from pathlib import Path
from typing import Any

from phoenix.digits import is_digits
from phoenix.files import parse_json, write_atomic
from phoenix.plan.model import Step, step_digest


def _trace(exc: BaseException) -> str:
    return "".join(tb.format_exception(exc))


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


class Journal:
    """Thread-safe journal of one run (see module docstring)."""

    def __init__(self, state_dir: Path, run_id: str | None = None) -> None:
        self.dir = state_dir / "journal"
        self.run_id = run_id or new_run_id()
        self.path = self.dir / f"{self.run_id}.jsonl"
        self.inflight_path = self.dir / "inflight.json"
        self._lock = threading.Lock()

    @staticmethod
    def read_inflight(state_dir: Path) -> dict[int, dict[str, Any]]:
        """Steps a previous run left unfinished: {ctid: {"kind", "step", "run", "status"}}."""
        path = state_dir / "journal" / "inflight.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {int(k): v for k, v in data.items() if is_digits(k) and isinstance(v, dict)}

    @classmethod
    def interrupted(cls, state_dir: Path) -> dict[int, str]:
        """ctid -> kind of the step left unfinished (what the planner needs)."""
        return {c: str(v.get("kind", "")) for c, v in cls.read_inflight(state_dir).items()}

    def _append(self, record: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _write_inflight(self, data: dict[int, dict[str, Any]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({str(k): v for k, v in sorted(data.items())}, indent=1)
        write_atomic(self.inflight_path, text)

    def _record(
        self, step: Step, status: str, error: str | None = None, trace: str | None = None
    ) -> None:
        record: dict[str, Any] = {
            "run": self.run_id,
            "time": round(time.time(), 3),
            "ctid": step.ctid,
            "kind": step.kind,
            "step": step.detail,
            "status": status,
        }
        digest = step_digest(step)
        if digest:
            record["digest"] = digest
        if error:
            record["error"] = error[-2000:]
        if trace:
            record["traceback"] = trace[-8000:]
        with self._lock:
            self._append(record)
            inflight = self.read_inflight(self.dir.parent)
            if status == "started":
                inflight[step.ctid] = {
                    "run": self.run_id,
                    "kind": step.kind,
                    "step": step.detail,
                    "status": "started",
                }
            elif status == "failed":
                inflight[step.ctid] = {
                    "run": self.run_id,
                    "kind": step.kind,
                    "step": step.detail,
                    "status": "failed",
                    "error": (error or "")[-500:],
                }
            else:
                inflight.pop(step.ctid, None)
            self._write_inflight(inflight)

    def started(self, step: Step) -> None:
        self._record(step, "started")

    def done(self, step: Step) -> None:
        self._record(step, "done")

    def skipped(self, step: Step) -> None:
        self._record(step, "skipped")

    def failed(self, step: Step, error: str, bug: BaseException | None = None) -> None:
        """Record a failure; a `bug` (not a PhoenixError) keeps its traceback: its evidence
        belongs in the journal, the operator sees one line."""
        self._record(step, "failed", error, _trace(bug) if bug is not None else None)

    def crashed(self, exc: BaseException) -> None:
        """Record what ended the whole run (a bug in the scheduler, a reporter that raised:
        `converge --json | head`) with its traceback; the caller re-raises it."""
        record = {
            "run": self.run_id,
            "time": round(time.time(), 3),
            "status": "crashed",
            "error": f"{type(exc).__name__}: {exc}"[-2000:],
            "traceback": _trace(exc)[-8000:],
        }
        with self._lock:
            self._append(record)

    def resolve(self, ctids: list[int]) -> None:
        """Drop unfinished-step entries that observation showed to be settled (the guest
        needs nothing, or is gone after a delete)."""
        with self._lock:
            inflight = self.read_inflight(self.dir.parent)
            if any(c in inflight for c in ctids):
                for ctid in ctids:
                    inflight.pop(ctid, None)
                self._write_inflight(inflight)

    def records(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        return [
            parse_json(line, f"{self.path}, line {n}")
            for n, line in enumerate(lines, 1)
            if line.strip()
        ]

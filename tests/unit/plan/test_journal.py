"""Journal.read_inflight against a hand-edited or damaged inflight.json."""

from __future__ import annotations

import json
from pathlib import Path

from phoenix.plan.journal import Journal


def test_read_inflight_keeps_only_ascii_ctids(tmp_path: Path) -> None:
    # "²" passes str.isdigit() but int() rejects it; Arabic-Indic "101" int() reads as 101:
    # neither is a ctid the journal wrote, and neither may stop the planner.
    (tmp_path / "journal").mkdir()
    step = {"kind": "create", "step": "create", "run": "r", "status": "started"}
    (tmp_path / "journal" / "inflight.json").write_text(
        json.dumps({"²": step, "\u0661\u0660\u0661": step, "102": step})
    )
    assert Journal.read_inflight(tmp_path) == {102: step}

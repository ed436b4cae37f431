"""No dead code that vulture is sure of (its 90-100% confidence: unused imports, variables
and arguments, unreachable code) in src/phoenix or bench.

Its 60% findings are not checked: they are mostly names used by a framework (pydantic
fields of the original tool's JSON, typer commands, http.server's do_GET) or functions only
tests call. `.venv/bin/vulture src/phoenix` lists them for a person to judge.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def vulture(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vulture", *map(str, paths), "--min-confidence", "61"]
    found = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    assert "No module named vulture" not in found.stderr, (
        "vulture is missing from .venv: run `bash scripts/install-deps.sh` (the dev extras "
        "in pyproject.toml name it)"
    )
    return found


def test_nothing_certainly_dead_in_src_or_bench() -> None:
    found = vulture("src/phoenix", "bench")
    assert found.returncode == 0, found.stdout + found.stderr


def test_the_check_sees_dead_code(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\n\ndef f() -> int:\n    return 1\n    print('never')\n")
    found = vulture(sample)
    assert found.returncode != 0
    assert "unused import 'os'" in found.stdout
    assert "unreachable code after 'return'" in found.stdout

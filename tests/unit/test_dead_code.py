"""No dead code in src/phoenix or bench: what vulture is sure of (its 90-100% confidence:
unused imports and arguments, unreachable code), and every unused local variable of a
function (vulture gives all variables 60%, so they are checked here one by one).

Its other 60% findings are not checked: they are mostly names used by a framework
(pydantic fields of the original tool's JSON, typer commands, http.server's do_GET,
class attributes) or functions only tests call. `.venv/bin/vulture src/phoenix` lists
them for a person to judge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from vulture import Vulture

ROOT = Path(__file__).resolve().parents[2]


def vulture(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vulture", *map(str, paths), "--min-confidence", "61"]
    found = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    assert "No module named vulture" not in found.stderr, (
        "vulture is missing from .venv: run `bash scripts/install-deps.sh` (the dev extras "
        "in pyproject.toml name it)"
    )
    return found


def unused_locals(*paths: Path) -> list[str]:
    """`file:line: name` of each variable vulture finds unused that is a function's local
    (not a class attribute or a module's name, which other code or a framework reads)."""
    scan = Vulture()
    scan.scavenge([str(p) for p in paths])
    out = []
    trees: dict[Path, ast.Module] = {}
    for item in scan.get_unused_code(min_confidence=60):
        if item.typ != "variable":
            continue
        path = Path(item.filename)
        tree = trees.setdefault(path, ast.parse(path.read_text(), str(path)))
        if _in_function(tree, item.first_lineno):
            out.append(f"{path}:{item.first_lineno}: unused local {item.name!r}")
    return out


def _in_function(tree: ast.Module, line: int) -> bool:
    """Whether the innermost definition around `line` is a function (not a class)."""
    inner: ast.AST = tree
    for node in ast.walk(tree):
        defines = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        end = getattr(node, "end_lineno", None)
        if isinstance(node, defines) and end is not None and node.lineno <= line <= end:
            start = getattr(inner, "lineno", 0)
            if node.lineno >= start:
                inner = node
    return isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))


def test_nothing_certainly_dead_in_src_or_bench() -> None:
    found = vulture("src/phoenix", "bench")
    assert found.returncode == 0, found.stdout + found.stderr


def test_no_unused_local_variable_in_src_or_bench() -> None:
    assert unused_locals(ROOT / "src" / "phoenix", ROOT / "bench") == []


def test_the_check_sees_dead_code(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\n\ndef f() -> int:\n    return 1\n    print('never')\n")
    found = vulture(sample)
    assert found.returncode != 0
    assert "unused import 'os'" in found.stdout
    assert "unreachable code after 'return'" in found.stdout


def test_the_check_sees_unused_locals_and_spares_class_attributes(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "class Fields:\n"
        "    declared_only = 1\n"
        "\n\n"
        "def f() -> int:\n"
        "    kept = 2\n"
        "    forgotten = 3\n"
        "    return kept\n"
        "\n\n"
        "class Handler:\n"
        "    def do(self) -> None:\n"
        "        also_forgotten = 4\n"
    )
    assert unused_locals(sample) == [
        f"{sample}:7: unused local 'forgotten'",
        f"{sample}:13: unused local 'also_forgotten'",
    ]

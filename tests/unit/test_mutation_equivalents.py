"""The list of equivalent mutants scripts/mutation.py leaves out of the score: each entry
must still be a mutant mutmut makes of the current code (a stale entry would excuse
nothing, or worse, a new mutant that happens to match), and must say why."""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = module
    spec.loader.exec_module(module)
    return module


mutation = _script()


def _only(source: str, functions: set[str]) -> str:
    """The module cut down to `functions` (methods in their class, as `Class.method`):
    mutmut mutates each function on its own, so the cut-down module gives the same
    mutants of them, and mutating whole modules took minutes."""
    import libcst as cst

    tree = cst.parse_module(source)
    kept: list[cst.CSTNode] = []
    for node in tree.body:
        if isinstance(node, cst.FunctionDef) and node.name.value in functions:
            kept.append(node)
        elif isinstance(node, cst.ClassDef):
            methods = [
                m
                for m in node.body.body
                if isinstance(m, cst.FunctionDef)
                and f"{node.name.value}.{m.name.value}" in functions
            ]
            if methods:
                kept.append(node.with_changes(body=node.body.with_changes(body=methods)))
    return tree.with_changes(body=kept).code


def _lines(function: Any) -> list[str]:
    import libcst as cst

    return str(cst.Module([function]).code).strip().split("\n")


def _changes(module: str, functions: set[str]) -> set[tuple[str, str, str]]:
    """(function, line before, line after) of every mutant mutmut makes of the module's
    `functions`; the mutated module is parsed once (mutmut's `get_diff_for_mutant` parses
    it again per mutant)."""
    import libcst as cst
    from mutmut.mutation.diff_apply import read_mutant_function, read_original_function
    from mutmut.mutation.file_mutation import mutate_file_contents

    found = set()
    for path in mutation.files_of(module):
        mutated = mutate_file_contents(str(path), _only(path.read_text(), functions))
        tree = cst.parse_module(mutated.code)
        originals: dict[str, list[str]] = {}
        for local in mutated.mutant_names:
            name = f"{mutation.dotted(path)}.{local}"
            function = mutation.function_of(name)
            if function not in originals:
                originals[function] = _lines(read_original_function(tree, name))
            was, now = originals[function], _lines(read_mutant_function(tree, name))
            diff = "\n".join(difflib.unified_diff(was, now, str(path), str(path), lineterm=""))
            found.add((function, *mutation.change_of(diff)))
    return found


def test_every_equivalent_is_a_current_mutant_with_a_reason() -> None:
    entries = mutation.equivalents()
    by_module: dict[str, list[Any]] = {}
    for entry in entries:
        assert entry.module in mutation.MODULES, entry
        assert len(entry.why) > 20, f"{entry}: say why no test can tell it apart"
        by_module.setdefault(entry.module, []).append(entry)
    for module, listed in by_module.items():
        current = _changes(module, {e.function for e in listed})
        stale = [e for e in listed if (e.function, e.was, e.now) not in current]
        assert not stale, f"no longer a mutant of {module}: {stale}"


def test_a_mutant_name_gives_its_function() -> None:
    assert mutation.function_of("phoenix.files.x_read_state__mutmut_12") == "read_state"
    assert mutation.function_of("phoenix.plan.run.xǁRunǁstep__mutmut_3") == "Run.step"


def test_a_diff_gives_the_lines_it_changes() -> None:
    diff = "--- a\n+++ a\n@@ -1 +1 @@\n     x = 1\n-    y = f(4)\n+    y = f(5)\n"
    assert mutation.change_of(diff) == ("y = f(4)", "y = f(5)")


def test_each_sample_is_seeded_per_module_and_capped_at_the_module() -> None:
    every = set(mutation.mutant_names("files.py"))
    picked = mutation.each_sample("files.py", 40, seed=3)
    assert len(picked) == len(set(picked)) == 40
    assert set(picked) <= every
    assert picked == mutation.each_sample("files.py", 40, seed=3)
    assert picked != mutation.each_sample("files.py", 40, seed=4)
    assert set(mutation.each_sample("files.py", 10_000, seed=3)) == every

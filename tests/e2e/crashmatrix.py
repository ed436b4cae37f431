"""The crash test's matrix (step x mode -> where the signal landed, outcome) and the rule
that it is complete: kept apart from tests/e2e/test_crash.py so a unit test proves the
rule fails on a planted gap (tests/unit/test_crash_matrix.py)."""

from __future__ import annotations

# (aimed step "CTID kind", mode, where the signal landed, outcome)
Cell = tuple[str, str, str, str]
MISSED = ("not reached", "after the run ended")


def matrix_problems(matrix: list[Cell], steps: list[str], modes: tuple[str, ...]) -> list[str]:
    """What keeps `matrix` from proving that every step survives every interruption:
    a (step, mode) with no cell, an outcome other than recovered (or not reached), and a
    step no mode's signal landed in (every cell "not reached" or "after the run ended")."""
    problems = []
    for step in steps:
        for mode in modes:
            if not any(s == step and m == mode for s, m, _, _ in matrix):
                problems.append(f"{step} / {mode}: no cell")
        if not any(s == step and landed == step for s, _, landed, _ in matrix):
            problems.append(f"{step}: no signal landed in this step in any mode")
    for step, mode, landed, outcome in matrix:
        if outcome == "not reached" and landed == "not reached":
            continue
        if outcome != "recovered":
            problems.append(f"{step} / {mode}: {outcome} (signal landed: {landed})")
    return problems

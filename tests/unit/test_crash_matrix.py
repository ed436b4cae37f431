"""The crash test's completeness rule (tests/e2e/crashmatrix.py) fails on a planted gap."""

from __future__ import annotations

from tests.e2e.crashmatrix import Cell, matrix_problems

STEPS = ["7760 create", "7761 clone"]
MODES = ("kill9-start", "sigint-group")


def full() -> list[Cell]:
    return [(s, m, s, "recovered") for s in STEPS for m in MODES]


def test_a_complete_matrix_passes() -> None:
    assert matrix_problems(full(), STEPS, MODES) == []
    late = [*full()[:-1], ("7761 clone", "sigint-group", "after the run ended", "recovered")]
    assert matrix_problems(late, STEPS, MODES) == []  # landed in the step in the other mode


def test_a_missing_cell_fails() -> None:
    assert matrix_problems(full()[1:], STEPS, MODES) == ["7760 create / kill9-start: no cell"]


def test_a_step_no_signal_landed_in_fails() -> None:
    cells = [c for c in full() if c[0] != "7761 clone"]
    cells += [
        ("7761 clone", "kill9-start", "not reached", "not reached"),
        ("7761 clone", "sigint-group", "after the run ended", "recovered"),
    ]
    assert matrix_problems(cells, STEPS, MODES) == [
        "7761 clone: no signal landed in this step in any mode"
    ]


def test_an_unrecovered_cell_fails() -> None:
    cells = [*full()[:-1], ("7761 clone", "sigint-group", "7761 clone", "pending")]
    assert matrix_problems(cells, STEPS, MODES) == [
        "7761 clone / sigint-group: pending (signal landed: 7761 clone)"
    ]

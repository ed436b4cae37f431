"""The README's inventory reference is the one generated from the models."""

from __future__ import annotations

import re
from pathlib import Path

from phoenix.inventory.reference import BEGIN, END, render_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_inventory_reference_is_in_sync() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text, "README lacks the generated reference markers"
    embedded = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert embedded == render_reference().strip(), (
        "README inventory reference is stale: regenerate it with "
        "`python -m phoenix.inventory.reference` and paste it between the markers"
    )


def test_readme_quick_start_commands_exist() -> None:
    text = README.read_text()
    root = README.parent
    quick_start = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["./demo", "./run-tests"]
    for command in commands:
        path = root / command.removeprefix("./")
        assert path.is_file() and path.stat().st_mode & 0o111, f"{command} is not executable"
    assert "./run-tests" in (root / ".ci" / "run").read_text()


def readme_test_references(text: str) -> set[str]:
    """Every test the README names in code spans: paths under tests/, test files by name,
    and test functions by name."""
    found: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        found |= set(re.findall(r"\btests/[\w/.-]*\w", span))
        found |= set(re.findall(r"(?<![\w/])test_\w+(?:\.py)?\b", span))
    return found


def missing_tests(references: set[str], root: Path) -> list[str]:
    tests = root / "tests"
    sources = "\n".join(p.read_text() for p in tests.rglob("*.py"))
    names = {p.name for p in tests.rglob("*")}
    missing = []
    for ref in sorted(references):
        if ref.startswith("tests/"):
            ok = (root / ref).exists()
        elif ref.endswith(".py"):
            ok = ref in names
        else:
            ok = re.search(rf"^\s*def {re.escape(ref)}\(", sources, re.M) is not None
        if not ok:
            missing.append(ref)
    return missing


def test_every_test_the_readme_names_exists() -> None:
    references = readme_test_references(README.read_text())
    assert len(references) > 30  # the README names its tests
    assert missing_tests(references, README.parent) == []


def test_the_check_sees_a_test_the_readme_names_wrongly() -> None:
    text = "`tests/unit/test_nope.py`, `test_gone.py`, `test_never_written`, `test_exec`"
    references = readme_test_references(text)
    assert references == {
        "tests/unit/test_nope.py",
        "test_gone.py",
        "test_never_written",
        "test_exec",
    }
    assert missing_tests(references, README.parent) == [
        "test_gone.py",
        "test_never_written",
        "tests/unit/test_nope.py",
    ]

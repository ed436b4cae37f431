"""The README's inventory reference is the one generated from the models."""

from __future__ import annotations

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

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
    for command in ("./demo", "./run-tests"):
        assert f"sudo {command}" in text
        assert (root / command.removeprefix("./")).is_file()

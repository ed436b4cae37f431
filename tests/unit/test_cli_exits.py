"""One way out of a command: `phoenix.cli.context.fail` (an error line, then the exit
code); the driver names of `--driver` are phoenix.names.DRIVERS."""

from __future__ import annotations

import ast
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.names import DRIVERS

CLI = Path(__file__).resolve().parents[2] / "src" / "phoenix" / "cli"


def _exits(tree: ast.AST) -> list[str]:
    """Every `sys.exit(...)`, `SystemExit(...)` and `typer.Exit(...)` with an exit code."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in ("sys.exit", "exit", "SystemExit") or (name == "typer.Exit" and node.args):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_commands_exit_only_through_fail() -> None:
    found = {}
    for path in sorted(CLI.glob("*.py")):
        exits = _exits(ast.parse(path.read_text()))
        if exits:
            found[path.name] = exits
    assert list(found) == ["context.py"], found  # fail() itself, nothing else
    assert [e.split(": ", 1)[1] for e in found["context.py"]] == ["SystemExit(code)"]


def test_the_check_sees_other_exits() -> None:
    tree = ast.parse("import sys, typer\nsys.exit(2)\nraise typer.Exit(1)\nraise typer.Exit()\n")
    assert _exits(tree) == ["2: sys.exit(2)", "3: typer.Exit(1)"]


def test_an_unknown_driver_names_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["--driver", "docker", "validate"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert f"--driver must be one of {', '.join(DRIVERS)}, not 'docker'" in result.output

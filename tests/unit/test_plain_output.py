"""Every user string is printed as plain text: terminal escape sequences in file names,
paths and messages never reach the terminal raw (they are shown as `\\x1b`-style escapes),
and Rich markup in them (`[bold]`, `[/]`) neither raises nor restyles, through the real CLI
and through each printer the CLI uses (tables, progress lines, the plan listing)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.progress import Progress, ProgressColumn
from rich.table import Table
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.cli.plain import PlainConsole, lit, visible
from phoenix.plan.events import Event

# A title change (OSC ... BEL), a colour (CSI), a C1 CSI, a bidi override, and Rich markup
# that would close a tag never opened (MarkupError) or restyle the rest of the line.
HOSTILE = "lab\x1b]0;pwned\x07\x1b[31m\x9b2J\u202e[bold]x[/]:smile:"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def assert_plain(output: str) -> None:
    assert not any(c in output for c in RAW), repr(output)
    assert "\\x1b]0;pwned\\x07\\x1b[31m\\x9b2J\\u202e[bold]x[/]:smile:" in output, output


def test_visible_shows_controls_and_keeps_layout() -> None:
    assert visible("a\x1b[0m\tb\nc\x00\x7f\x85") == "a\\x1b[0m\tb\nc\\x00\\x7f\\x85"
    assert visible("plain ütf-8 [text]") == "plain ütf-8 [text]"
    assert lit("[/]\x1b") == "\\[/]\\x1b"


@pytest.fixture()
def hostile_dir(tmp_path: Path, minimal_dir: Path) -> Path:
    target = tmp_path / HOSTILE
    shutil.copytree(minimal_dir, target)
    return target


def test_validate_prints_a_hostile_config_path_as_written(hostile_dir: Path) -> None:
    result = CliRunner().invoke(app, ["-c", str(hostile_dir), "validate"])
    assert result.exit_code == 0, result.output
    assert_plain(result.output)
    assert ": valid" in result.output


def test_problems_and_the_invalid_line_are_plain(hostile_dir: Path) -> None:
    path = hostile_dir / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"]["102"][HOSTILE] = 1  # an unknown key: named in the problem
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["-c", str(hostile_dir), "validate"])
    assert result.exit_code == 1, result.output
    assert not any(c in result.output for c in RAW), repr(result.output)
    assert result.output.count("[bold]x[/]") >= 2 and ": invalid" in result.output


def _console() -> tuple[PlainConsole, io.StringIO]:
    out = io.StringIO()
    return PlainConsole(file=out, width=400, color_system=None), out


def test_table_cells_and_titles_are_plain() -> None:
    console, out = _console()
    table = Table(title=HOSTILE)
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    console.print(table)
    assert out.getvalue().count("[bold]x[/]") == 3 and not any(c in out.getvalue() for c in RAW)


def test_progress_lines_show_hostile_names_and_messages_as_written() -> None:
    from phoenix.cli.run_output import RichReporter

    console, out = _console()
    with Progress(*_columns(), console=console, auto_refresh=False) as progress:
        reporter = RichReporter(progress, {101: HOSTILE})
        reporter(Event("resume", ctid=101, step=HOSTILE, message=HOSTILE))
        reporter(Event("step_started", ctid=101, step=HOSTILE, total=2))
        reporter(Event("guest_left", ctid=101, message=HOSTILE))
        progress.refresh()
    text = out.getvalue()
    assert not any(c in text for c in RAW), repr(text)
    assert "[bold]x[/]" in text and "resuming 101" in text


def _columns() -> list[str | ProgressColumn]:
    from phoenix.cli.run_output import progress_bars

    return list(progress_bars().columns)


def test_the_plan_listing_fast_path_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    from phoenix.cli import run_output

    console, out = _console()
    monkeypatch.setattr(run_output, "console", console)
    run_output.print_styled([(HOSTILE, "bold"), ("\n", "")])
    assert_plain(out.getvalue())

"""The `phoenix` command line (typer + rich)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from phoenix import __version__
from phoenix.cli import flags as _flags  # noqa: F401  (flags shown as flags in help)
from phoenix.cli import inventory_cmds
from phoenix.cli.context import AppState, fail
from phoenix.errors import PhoenixError
from phoenix.names import DRIVERS

app = typer.Typer(
    name="phoenix",
    help=(
        "Make a host match its LXC inventory: create or clone each container, configure, "
        "start in dependency and boot order, run setup inside, check health. Running it "
        "again changes nothing.\n\nStart with `phoenix validate`, then `phoenix plan`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"phoenix {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            "-c",
            help="Config dir (default: $PHOENIX_CONFIG_DIR, else "
            "/usr/local/phoenix_hypervisor/etc if it exists, else ./etc).",
            show_default=False,
        ),
    ] = None,
    driver: Annotated[
        str | None,
        typer.Option("--driver", help="lxc or proxmox (default: the config's phoenix.driver)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if driver is not None and driver not in DRIVERS:
        fail(f"--driver must be one of {', '.join(DRIVERS)}, not {driver!r}")
    ctx.obj = AppState(config_dir, driver)


app.command()(inventory_cmds.validate)
app.command()(inventory_cmds.schema)
app.command()(inventory_cmds.graph)

# Command groups contributed by other layers; each module exposes `register(app)`.
for _module in (
    "lifecycle_cmds",
    "setup_cmds",
    "gateway_cmds",
    "gateway_keys",
    "proxmox_cmds",
    "status_cmds",
    "model_cmds",
    "import_cmds",
):
    try:
        _mod = importlib.import_module(f"phoenix.cli.{_module}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"phoenix.cli.{_module}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Entry point: a PhoenixError or a bad path becomes a one-line message and exit 1,
    never a traceback (outside Typer's own handling, through the same `fail` as every command)."""
    try:
        app()
    except PhoenixError as exc:
        fail(str(exc))
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}")
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", 130)

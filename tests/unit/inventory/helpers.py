"""Helpers the inventory tests share: edit one guest of a config dir, and run the real
`phoenix validate --json` on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from phoenix.cli.app import app

LXC = "phoenix_lxc_configs.json"
HYP = "phoenix_hypervisor_config.json"


def edit_phoenix(config_dir: Path, **settings: Any) -> None:
    """Update the hypervisor config's `phoenix` block (a Proxmox one when there is none)."""
    path = config_dir / HYP
    data = json.loads(path.read_text())
    data.setdefault("phoenix", {"driver": "proxmox"}).update(settings)
    path.write_text(json.dumps(data, indent=4))


def edit_guest(config_dir: Path, ctid: str, **changes: Any) -> None:
    """Update guest `ctid`'s definition in the config dir's LXC inventory."""
    path = config_dir / LXC
    data = json.loads(path.read_text())
    data["lxc_configs"][ctid].update(changes)
    path.write_text(json.dumps(data, indent=4))


def validate_json(config_dir: Path, *options: str) -> tuple[int, list[dict[str, str]], str]:
    """(exit code, problems, output) of `phoenix [OPTIONS] validate --json`; never a
    traceback."""
    result = CliRunner().invoke(app, ["-c", str(config_dir), *options, "validate", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout), result.output

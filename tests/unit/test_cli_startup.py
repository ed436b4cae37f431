"""`phoenix --help` (and every command's parsing) must not pay for the rest of Phoenix:
the CLI modules import inventory, plan, drivers, gateway and their libraries inside the
commands that use them (issue 15: --help < 0.3 s). A module that imports one of these at
the top of a phoenix/cli file fails here: move the import into the function that needs
it, and name types for annotations under `if TYPE_CHECKING:`."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "pydantic",
    "cryptography",
    "crossplane",
    "httpx",
    "filelock",
    "phoenix.inventory",
    "phoenix.plan",
    "phoenix.drivers",
    "phoenix.gateway",
    "phoenix.host",
    "phoenix.recipes",
)


def test_the_cli_starts_without_the_rest_of_phoenix() -> None:
    code = (
        "import json, sys\n"
        "from typer.main import get_command\n"
        "from phoenix.cli.app import app\n"
        "get_command(app)\n"  # what --help builds: every command's signature
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    heavy = sorted(m for m in loaded if m.startswith(HEAVY))
    assert heavy == [], f"imported at CLI start-up: {heavy}"

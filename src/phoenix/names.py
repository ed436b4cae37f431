"""Names that layers which may not import each other share: the driver names are
validated by the inventory (`phoenix.driver`), picked by the driver factory and checked
for `--driver` by the CLI. One list, so adding a driver is one edit."""

from __future__ import annotations

from typing import Literal, get_args

DriverName = Literal["lxc", "proxmox"]
DRIVERS: tuple[DriverName, ...] = get_args(DriverName)

# The original tool's application scripts that make a guest a model server, and their
# servers' default ports: the inventory (which models are served), the recipes (how) and
# the gateway (where to route) share them.
OLLAMA_APP_SCRIPT = "phoenix_hypervisor_lxc_955.sh"
OLLAMA_PORT = 11434  # Ollama's own default, as the ollama feature configures it
LLAMACPP_APP_SCRIPT = "phoenix_hypervisor_lxc_957.sh"
LLAMACPP_PORT = 8081

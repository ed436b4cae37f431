"""The Proxmox VE driver: `pct` and `pvesh` on a node, locally or over SSH; the commands a
fresh node would run for a plan (`preview`), from the same command builders (`commands`)."""

from phoenix.drivers.proxmox.commands import template_argument
from phoenix.drivers.proxmox.driver import ProxmoxDriver

__all__ = ["ProxmoxDriver", "template_argument"]

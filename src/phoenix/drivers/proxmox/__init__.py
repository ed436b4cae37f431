"""The Proxmox VE driver: `pct` and `pvesh` on a node, locally or over SSH."""

from phoenix.drivers.proxmox.commands import template_argument
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.offline import command_lines, offline_driver, record

__all__ = ["ProxmoxDriver", "command_lines", "offline_driver", "record", "template_argument"]

"""Names that layers which may not import each other share: the driver names are
validated by the inventory (`phoenix.driver`), picked by the driver factory and checked
for `--driver` by the CLI. One list, so adding a driver is one edit."""

from __future__ import annotations

from typing import Literal, get_args

DriverName = Literal["lxc", "proxmox"]
DRIVERS: tuple[DriverName, ...] = get_args(DriverName)

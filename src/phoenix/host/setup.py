"""The inventory's side of `phoenix setup`: which bridges the guests need, with what address.

Host preparation itself belongs to the LXC driver (`phoenix.drivers.lxc.hostprep`), which
knows nothing of the inventory; this is the one place that reads the inventory for it.
"""

from __future__ import annotations

import ipaddress

from phoenix.drivers.lxc.hostprep import BridgeSpec, SetupError
from phoenix.inventory.loader import Inventory


def bridges_from_inventory(inventory: Inventory) -> list[BridgeSpec]:
    """One BridgeSpec per bridge named by a guest; every guest on it must agree on gw/prefix."""
    found: dict[str, BridgeSpec] = {}
    for ctid, guest in sorted(inventory.guests.items()):
        nc = guest.network_config
        if nc is None or nc.interface is None:  # DHCP: the bridge's address is not ours to set
            continue
        if nc.gw is None:
            raise SetupError(
                f"guest {ctid}: bridge {nc.bridge} needs a gateway (network_config.gw)"
            )
        spec = BridgeSpec(
            nc.bridge, ipaddress.IPv4Interface(f"{nc.gw}/{nc.interface.network.prefixlen}")
        )
        if spec.address.network != nc.interface.network:
            raise SetupError(f"guest {ctid}: gateway {nc.gw} is outside {nc.interface.network}")
        old = found.setdefault(nc.bridge, spec)
        if old != spec:
            raise SetupError(
                f"guests disagree about bridge {nc.bridge}: {old.address} vs {spec.address} "
                f"(guest {ctid})"
            )
    return list(found.values())

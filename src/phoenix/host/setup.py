"""The inventory's side of `phoenix setup`: which bridges the guests need, with what
address, and which host id ranges their id maps use (root must be given them).

Host preparation itself belongs to the LXC driver (`phoenix.drivers.lxc.hostprep`), which
knows nothing of the inventory; this is the one place that reads the inventory for it.
"""

from __future__ import annotations

import ipaddress

from phoenix.drivers.lxc.hostprep import BridgeSpec, SetupError
from phoenix.drivers.lxc.hostprep.subids import IdRanges
from phoenix.inventory.idcompose import compose
from phoenix.inventory.loader import Inventory


def id_ranges_from_inventory(inventory: Inventory) -> IdRanges:
    """(kind, first host id, count) of every range the unprivileged guests' id maps use:
    /etc/subuid and /etc/subgid must give them to root (LXC refuses the guest otherwise)."""
    ranges = {
        (r.kind, r.host, r.count)
        for guest in inventory.guests.values()
        if guest.unprivileged
        for r in compose(guest.id_maps)
    }
    return tuple(sorted(ranges))


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

"""Address checks: no IP or MAC used twice, no id shared by a container and a VM, each
static gateway inside its guest's subnet."""

from __future__ import annotations

import contextlib
import ipaddress
from collections import defaultdict

from phoenix.inventory.core import LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import LxcGuest, canonical_cidr, ipv4_address, ipv4_interface
from phoenix.inventory.problems import Problem, lxc_at


def duplicate_problems(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    by_ip: dict[str, list[int]] = defaultdict(list)
    by_mac: dict[str, list[int]] = defaultdict(list)
    for ctid, guest in sorted(inventory.guests.items()):
        address = guest.network_config.address if guest.network_config else None
        if address is not None:
            by_ip[address].append(ctid)
        if guest.mac_address:
            by_mac[guest.mac_address.upper()].append(ctid)
    for vmid, vm in sorted(inventory.vms.items()):
        ip = vm.network_config.get("ip")
        if isinstance(ip, str) and "/" in ip:
            with contextlib.suppress(ValueError):
                by_ip[str(ipaddress.IPv4Interface(ip).ip)].append(vmid)
    for ip, owners in by_ip.items():
        for ctid in owners[1:]:
            field = ("network_config", "ip") if ctid in inventory.guests else ()
            where = lxc_at(ctid, *field) if field else f"vms[vmid={ctid}].network_config.ip"
            out.append(
                Problem(
                    LXC_FILE if field else VM_FILE,
                    where,
                    f"IP address {ip} is also used by guest {owners[0]}",
                )
            )
    for mac, owners in by_mac.items():
        for ctid in owners[1:]:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "mac_address"),
                    f"MAC address {mac} is also used by container {owners[0]}",
                )
            )
    for ctid in sorted(set(inventory.guests) & set(inventory.vms)):
        out.append(Problem(LXC_FILE, lxc_at(ctid), f"id {ctid} is used by a container and a VM"))
    return out


def network_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    net = guest.network_config
    if net is None or net.gw is None:
        return []
    if net.dhcp:
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid, "network_config", "gw"),
                "ignored: with 'ip': 'dhcp' the gateway comes from the DHCP server",
                "warning",
            )
        ]
    # Integers, not an IPv4Interface per guest (the slow part at 10,000 guests).
    parsed = canonical_cidr(net.ip)
    if parsed is None:  # not validation's spelling (a model built by hand): parse it
        iface = ipv4_interface(net.ip)
        parsed = int(iface.ip), iface.network.prefixlen
    address, prefix = parsed
    gw = ipv4_address(net.gw)
    if (int(gw) ^ address) >> (32 - prefix):
        network = ipv4_interface(net.ip).network
        message = f"gateway {gw} is outside the guest's subnet {network}"
    elif int(gw) == address:
        message = f"gateway {gw} is the guest's own address"
    else:
        return []
    return [Problem(LXC_FILE, lxc_at(ctid, "network_config", "gw"), message)]

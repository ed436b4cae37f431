"""Address checks: no IP or MAC used twice, no id shared by a container and a VM, each
static gateway inside its guest's subnet."""

from __future__ import annotations

from collections import defaultdict

from phoenix.inventory.core import LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import (
    LxcGuest,
    NetworkConfig,
    canonical_cidr,
    ipv4_address,
    ipv4_interface,
)
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
        address = vm.network_config.address if vm.network_config else None
        if address is not None:
            by_ip[address].append(vmid)
        by_mac[vm.mac].append(vmid)
    for ip, owners in by_ip.items():
        for ctid in owners[1:]:
            file, where = _place(inventory, ctid, "network_config", "ip")
            out.append(Problem(file, where, f"IP address {ip} is also used by guest {owners[0]}"))
    for mac, owners in by_mac.items():
        for ctid in owners[1:]:
            file, where = _place(inventory, ctid, "mac_address")
            derived = (
                ""
                if ctid in inventory.guests or inventory.vms[ctid].mac_address
                else (" (derived from the vmid: set mac_address)")
            )
            out.append(
                Problem(
                    file,
                    where,
                    f"MAC address {mac}{derived} is also used by "
                    f"{'container' if owners[0] in inventory.guests else 'VM'} {owners[0]}",
                )
            )
    for ctid in sorted(set(inventory.guests) & set(inventory.vms)):
        out.append(
            Problem(VM_FILE, inventory.vm_at(ctid, "vmid"), f"id {ctid} is also a container's id")
        )
    return out


def _place(inventory: Inventory, ctid: int, *key: str) -> tuple[str, str]:
    """(file, JSON path) of a key of guest `ctid`, a container or a VM."""
    if ctid in inventory.guests:
        return LXC_FILE, lxc_at(ctid, *key)
    return VM_FILE, inventory.vm_at(ctid, *key)


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
    message = gateway_message(net)
    if message is None:
        return []
    return [Problem(LXC_FILE, lxc_at(ctid, "network_config", "gw"), message)]


def gateway_message(net: NetworkConfig) -> str | None:
    """What is wrong with a static NIC's gateway, or None."""
    if net.gw is None or net.dhcp:
        return None
    # Integers, not an IPv4Interface per guest (the slow part at 10,000 guests).
    parsed = canonical_cidr(net.ip)
    if parsed is None:  # not validation's spelling (a model built by hand): parse it
        iface = ipv4_interface(net.ip)
        parsed = int(iface.ip), iface.network.prefixlen
    address, prefix = parsed
    gw = ipv4_address(net.gw)
    if (int(gw) ^ address) >> (32 - prefix):
        network = ipv4_interface(net.ip).network
        return f"gateway {gw} is outside the guest's subnet {network}"
    if int(gw) == address:
        return f"gateway {gw} is the guest's own address"
    return None

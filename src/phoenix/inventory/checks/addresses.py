"""Address checks: no IP or MAC used twice, no id shared by a container and a VM, each
static gateway inside its guest's subnet, and (LXC driver) one address per bridge."""

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


def bridge_problems(inventory: Inventory, driver: str) -> list[Problem]:
    """A static guest's `gw` is the host's address on its bridge. The LXC driver gives the
    bridge that address (`phoenix setup`), so every guest on a bridge must give the same
    one (an error here instead of when setup or doctor stops); a guest without `gw` has no
    way out (a warning: rendering the gateway or an isolated guest needs none)."""
    out: list[Problem] = []
    first: dict[str, tuple[str, int]] = {}
    for ctid, guest in sorted(inventory.guests.items()):
        net = guest.network_config
        if net is None or net.dhcp:
            continue
        if net.gw is None:
            out.append(_no_gateway(ctid, net, driver))
            continue
        if gateway_message(net) is not None:
            continue  # reported at gw already (outside the subnet, or the guest's own)
        address = f"{net.gw}/{net.ip.partition('/')[2]}"
        seen = first.setdefault(net.bridge, (address, ctid))
        if driver == "lxc" and seen[0] != address:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "network_config", "gw"),
                    f"bridge {net.bridge} gets the address {seen[0]} from guest {seen[1]}'s "
                    f"gw and ip, this guest says {address}: guests on one bridge share its "
                    "address (use the same gw and prefix, or another bridge)",
                )
            )
    return out


def _no_gateway(ctid: int, net: NetworkConfig, driver: str) -> Problem:
    """A warning, not an error: rendering the gateway or an isolated guest needs no way
    out, but the guest reaches nothing beyond its subnet, and on the LXC driver `phoenix
    setup` (which gives the bridge the guests' gw) stops on it."""
    network = ipv4_interface(net.ip).network
    if driver == "lxc":
        why = (
            f"'phoenix setup' gives bridge {net.bridge} the guests' gw as its address and "
            "stops without one, and the guest gets no default route"
        )
        fix = f"add 'gw' (e.g. the first address of {network})"
    else:
        why = "the guest gets no default route"
        fix = f"add the address of {net.bridge} on the node as 'gw'"
    return Problem(
        LXC_FILE,
        lxc_at(ctid, "network_config"),
        f"no 'gw': {why}, so it reaches only {network} (packages and model downloads "
        f"fail); {fix} unless it needs nothing beyond its subnet",
        "warning",
    )

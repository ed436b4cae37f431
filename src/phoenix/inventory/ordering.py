"""Dependency graph and orders for an inventory (creation and start)."""

from __future__ import annotations

from collections.abc import Iterable

from phoenix.inventory.core import Inventory
from phoenix.inventory.graph import Graph


def build_graph(inventory: Inventory) -> Graph:
    """Nodes are LXC and VM guests; edges are clone sources and `dependencies`."""
    graph = Graph()
    for ctid, guest in inventory.guests.items():
        graph.add(ctid, guest.name)
    for vmid, vm in inventory.vms.items():
        graph.add(vmid, f"{vm.name} (VM)")
    for ctid, guest in inventory.guests.items():
        if guest.clone_from_ctid is not None:
            graph.link(ctid, guest.clone_from_ctid, "clone")
        for dep in guest.dependencies:
            graph.link(ctid, dep, "depends")
    for vmid, vm in inventory.vms.items():
        if vm.clone_from_vmid is not None:
            graph.link(vmid, vm.clone_from_vmid, "clone")
        for dep in vm.dependencies:
            graph.link(vmid, dep, "depends")
    return graph


def creation_order(inventory: Inventory, ids: Iterable[int] | None = None) -> list[int]:
    """Guests to create for `ids` (all when None), each after what it clones or needs."""
    return build_graph(inventory).creation_order(ids)


def start_order(inventory: Inventory, ids: Iterable[int]) -> list[int]:
    """Guests of `ids`, containers and VMs together, in start order: `boot_order`, then id."""

    def key(gid: int) -> tuple[int, int]:
        guest = inventory.guests.get(gid) or inventory.vms[gid]
        return guest.boot_order, gid

    return sorted((i for i in ids if i in inventory.guests or i in inventory.vms), key=key)

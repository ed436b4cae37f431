"""Guests placed on the nodes of a Proxmox cluster: what validate can tell before any node
is asked.

- A guest's `node` must be one of `phoenix.nodes` (or, without a cluster, `phoenix.node`):
  pvesh proxies `/nodes/<node>` only to members (pve-manager `PVE/API2/Nodes.pm`; an unknown
  name fails "hostname lookup ... failed").
- A guest with no `node` goes to the default node; a cluster that leaves it open (several
  nodes, no `phoenix.node`, none of them this machine) makes every guest say.
- Storage and bridges, where the node entry lists them: `pct create` and `pct set` check the
  storage on the node (pve-container `src/PVE/API2/LXC.pm`, `storage_check_node`), a NIC's
  bridge must exist there for the guest to start.
- A clone onto another node than its source's is `pct clone --target`, which needs every
  volume on shared storage (pve-container `src/PVE/API2/LXC.pm`, `clone_vm`: "can't clone
  CT to node 'X' (CT uses local storage)"; with `--storage`, that storage). Phoenix passes
  the clone's `storage_pool` as `--storage`, so that storage must be shared.
- A VM cloned onto another node than its source's is `qm clone --target` (qemu-server
  `PVE/API2/Qemu.pm` clone_vm): the source's disks must be on shared storage, and a full
  clone's storage too.
- A CTID is unique across the whole cluster (pmxcfs holds one `nodes/*/lxc/N.conf` per
  id): the inventory keys guests by CTID, so one id written twice is the reading step's
  duplicate-key error, and an id is a container's or a VM's, never both (`loader`).
"""

from __future__ import annotations

from phoenix.inventory.checks.ha import ha_problems
from phoenix.inventory.core import HYPERVISOR_FILE, LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.models.cluster import ClusterNode
from phoenix.inventory.problems import Problem, lxc_at


def cluster_problems(inventory: Inventory, driver: str | None = None) -> list[Problem]:
    """Every placement mistake of the inventory's guests, at once."""
    settings = inventory.hypervisor.phoenix
    chosen = driver or settings.driver
    placed = [c for c, g in sorted(inventory.guests.items()) if g.node is not None]
    by_ha = ha_problems(inventory, chosen)
    if chosen != "proxmox":
        return by_ha + _not_proxmox(inventory, chosen, placed)
    out: list[Problem] = list(by_ha)
    for ctid, guest in sorted(inventory.guests.items()):
        out += _placement(ctid, guest, inventory)
    out += [p for vmid in sorted(inventory.vms) for p in _vm_clone_target(vmid, inventory)]
    return out + _vm_nodes(inventory)


def _vm_nodes(inventory: Inventory) -> list[Problem]:
    """A VM's `node` is a node of the cluster, as a container's is."""
    nodes = inventory.hypervisor.phoenix.nodes
    out = []
    for vmid, vm in sorted(inventory.vms.items()):
        if vm.node is not None and vm.node not in nodes:
            known = ", ".join(sorted(nodes)) or "none: list them in phoenix.nodes"
            out.append(
                Problem(
                    VM_FILE,
                    inventory.vm_at(vmid, "node"),
                    f"node {vm.node!r} is not a node of the cluster (phoenix.nodes: {known})",
                )
            )
    return out


def _not_proxmox(inventory: Inventory, chosen: str, placed: list[int]) -> list[Problem]:
    settings = inventory.hypervisor.phoenix
    if not settings.nodes and not placed:
        return []
    return [
        Problem(
            HYPERVISOR_FILE if settings.nodes else LXC_FILE,
            "phoenix.nodes" if settings.nodes else lxc_at(placed[0], "node"),
            f"cluster nodes are a Proxmox setting: the {chosen} driver runs every guest "
            "on this host and ignores them",
            "warning",
        )
    ]


def _placement(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    settings = inventory.hypervisor.phoenix
    nodes = settings.nodes
    if guest.node is not None and not nodes and guest.node != settings.node:
        where = f"the node Phoenix drives is {settings.node!r}" if settings.node else "none"
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid, "node"),
                f"node {guest.node!r} is not known: the hypervisor config lists no cluster "
                f"nodes ({where}); list them in phoenix.nodes",
            )
        ]
    if guest.node is not None and nodes and guest.node not in nodes:
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid, "node"),
                f"node {guest.node!r} is not a node of the cluster (phoenix.nodes: "
                f"{', '.join(sorted(nodes))})",
            )
        ]
    name = settings.node_of(guest.node)
    if nodes and name is None:
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid),
                f"names no 'node', and the cluster has no default node ({len(nodes)} nodes, "
                "no phoenix.node, none of them this machine): set the guest's 'node' or "
                "phoenix.node",
            )
        ]
    node = nodes.get(name or "")
    if node is None:
        return []
    out = _node_has(ctid, guest, name or "", node) + _clone_target(ctid, guest, inventory)
    if guest.placement == "ha":  # HA may put it on any of its nodes: each must have it
        for other in dict.fromkeys(guest.ha_nodes or []):
            if other != name and other in nodes:
                out += _node_has(ctid, guest, other, nodes[other])
    return out


def _node_has(ctid: int, guest: LxcGuest, name: str, node: ClusterNode) -> list[Problem]:
    out: list[Problem] = []
    if node.storages is not None:
        wanted: list[tuple[tuple[str | int, ...], str]] = [(("storage_pool",), guest.storage_pool)]
        for key in ("volumes", "zfs_volumes"):
            for index, volume in enumerate(getattr(guest, key)):
                wanted.append(((key, index, "pool"), volume.pool))
        for path, storage in wanted:
            if storage not in node.storages:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid, *path),
                        f"storage {storage!r} is not on node {name!r} (phoenix.nodes.{name}."
                        f"storages: {', '.join(node.storages) or 'none'})",
                    )
                )
    net = guest.network_config
    if node.bridges is not None and net is not None and net.bridge not in node.bridges:
        out.append(
            Problem(
                LXC_FILE,
                lxc_at(ctid, "network_config", "bridge"),
                f"bridge {net.bridge!r} is not on node {name!r} (phoenix.nodes.{name}.bridges: "
                f"{', '.join(node.bridges) or 'none'})",
            )
        )
    return out


def _clone_target(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    """A clone made on another node than its source's must land on shared storage."""
    settings = inventory.hypervisor.phoenix
    source = inventory.guests.get(guest.clone_from_ctid or 0)
    if source is None or guest.clone_from_ctid == ctid:
        return []
    here, there = settings.node_of(guest.node), settings.node_of(source.node)
    shared = settings.shared_storages
    if here == there or shared is None or guest.storage_pool in shared:
        return []
    return [
        Problem(
            LXC_FILE,
            lxc_at(ctid, "storage_pool"),
            f"guest {ctid} is cloned from {guest.clone_from_ctid} on node {there!r} onto node "
            f"{here!r} (`pct clone --target`), which Proxmox allows only onto shared storage, "
            f"and {guest.storage_pool!r} is not in phoenix.shared_storages "
            f"({', '.join(shared) or 'none'}): use a shared storage, or put {ctid} on {there!r}",
        )
    ]


def _vm_clone_target(vmid: int, inventory: Inventory) -> list[Problem]:
    """A VM cloned onto another node than its source's (`qm clone --target`): qemu-server
    `clone_vm` wants every volume of the source on shared storage, and a full clone's
    storage shared too."""
    settings = inventory.hypervisor.phoenix
    vm = inventory.vms[vmid]
    source = inventory.vms.get(vm.clone_from_vmid or 0)
    shared = settings.shared_storages
    if source is None or shared is None or vm.clone_from_vmid == vmid:
        return []
    here, there = settings.node_of(vm.node), settings.node_of(source.node)
    if here == there:
        return []
    out = []
    if source.storage_pool not in shared:
        out.append(
            Problem(
                VM_FILE,
                inventory.vm_at(vmid, "node"),
                f"VM {vmid} is cloned from VM {vm.clone_from_vmid} on node {there!r} onto node "
                f"{here!r} (`qm clone --target`), which Proxmox allows only when the source's "
                f"disks are on shared storage, and {source.storage_pool!r} is not in "
                f"phoenix.shared_storages ({', '.join(shared) or 'none'}): put {vmid} on "
                f"{there!r} (and move it with --migrate), or keep the source on shared storage",
            )
        )
    if vm.full_clone and vm.storage_pool not in shared:
        out.append(
            Problem(
                VM_FILE,
                inventory.vm_at(vmid, "storage_pool"),
                f"VM {vmid} is a full clone onto node {here!r} from node {there!r}, which "
                f"Proxmox writes only to shared storage, and {vm.storage_pool!r} is not in "
                f"phoenix.shared_storages ({', '.join(shared) or 'none'}): use a shared "
                f"storage, or put {vmid} on {there!r}",
            )
        )
    return out

"""`placement: ha`: a guest (container or VM) whose node Proxmox HA picks.

HA is a cluster's: it needs the Proxmox driver and `phoenix.nodes`, and may put the guest
only on nodes of that cluster (pve-ha-manager `src/PVE/API2/HA/Rules.pm`, "cannot use
non-existant node(s)"). `ha_nodes` and `ha_strict` mean nothing without it. A template
never runs, so HA has nothing to place. What belongs to one node (a container's GPUs or
bind mounts, a VM's PCI or host USB devices) is a warning: HA may move the guest away from
it when it recovers or fails back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from phoenix.inventory.core import LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import LxcGuest, VmGuest
from phoenix.inventory.problems import Problem, lxc_at
from phoenix.inventory.qm_schema import parse_qm_options


@dataclass(frozen=True)
class _Placed:
    """What the check reads of one guest, whichever its kind."""

    file: str
    at: Callable[..., str]
    placement: str
    ha_nodes: list[str] | None
    ha_strict: bool
    is_template: bool
    local: str | None  # what ties it to one node, in words


def ha_problems(inventory: Inventory, driver: str) -> list[Problem]:
    """Every `placement: ha` mistake of the inventory's containers and VMs."""
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        out += _check(_container(ctid, guest), inventory, driver)
    for vmid, vm in sorted(inventory.vms.items()):
        out += _check(_vm(inventory, vmid, vm), inventory, driver)
    return out


def _container(ctid: int, guest: LxcGuest) -> _Placed:
    local = "GPUs" if guest.gpu_assignment != "none" else None
    local = local or ("bind mounts" if guest.mount_points else None)
    return _Placed(
        LXC_FILE,
        lambda *rest: lxc_at(ctid, *rest),
        guest.placement,
        guest.ha_nodes,
        guest.ha_strict,
        guest.is_template,
        local,
    )


def _vm(inventory: Inventory, vmid: int, vm: VmGuest) -> _Placed:
    devices = []
    for text in vm.qm_options:
        try:
            pairs = parse_qm_options(text)
        except ValueError:
            continue  # the qm_options check says what is wrong with it
        for key, value in pairs:
            if key.startswith("hostpci") or (key.startswith("usb") and "host=" in value):
                devices.append(key)
    local = f"devices ({', '.join(devices)})" if devices else None
    return _Placed(
        VM_FILE,
        lambda *rest: inventory.vm_at(vmid, *rest),
        vm.placement,
        vm.ha_nodes,
        vm.ha_strict,
        vm.is_template,
        local,
    )


def _check(guest: _Placed, inventory: Inventory, driver: str) -> list[Problem]:
    settings = inventory.hypervisor.phoenix
    if guest.placement != "ha":
        given = (
            "ha_nodes" if guest.ha_nodes is not None else "ha_strict" if guest.ha_strict else None
        )
        if given is None:
            return []
        return [
            Problem(
                guest.file,
                guest.at(given),
                f"{given} is read only with placement 'ha' (this guest's placement is "
                "'node': it lives on its `node`); set placement 'ha' or drop it",
            )
        ]
    if driver != "proxmox" or not settings.nodes:
        why = f"the {driver} driver" if driver != "proxmox" else "no phoenix.nodes"
        return [
            Problem(
                guest.file,
                guest.at("placement"),
                f"placement 'ha' hands the guest's node to Proxmox HA, which needs a Proxmox "
                f"cluster ({why}): list the cluster's nodes in phoenix.nodes, or drop it",
            )
        ]
    out = [
        Problem(
            guest.file,
            guest.at("ha_nodes", index),
            f"node {node!r} is not a node of the cluster (phoenix.nodes: "
            f"{', '.join(sorted(settings.nodes))})",
        )
        for index, node in enumerate(guest.ha_nodes or [])
        if node not in settings.nodes
    ]
    if guest.is_template:
        out.append(
            Problem(
                guest.file,
                guest.at("placement"),
                "a template never runs, so Proxmox HA has nothing to place: drop placement 'ha'",
            )
        )
    if guest.local is not None:
        out.append(
            Problem(
                guest.file,
                guest.at("placement"),
                f"its {guest.local} belong to one node, and Proxmox HA may move the guest to "
                "another (recovery, failback): pin it with `node` and placement 'node', or "
                "list only nodes that have them in ha_nodes with ha_strict",
                "warning",
            )
        )
    return out

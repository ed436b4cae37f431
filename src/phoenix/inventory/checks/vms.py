"""A VM's cross-field rules: where it comes from (a template VM, an image, Phoenix's base
image), what it needs (guests of either kind), its NIC's bridge and gateway, and what the
keys it uses need of each other. Addresses shared with containers are `addresses`' job."""

from __future__ import annotations

from phoenix.inventory.checks.addresses import gateway_message
from phoenix.inventory.core import VM_FILE, Inventory
from phoenix.inventory.models import VmGuest
from phoenix.inventory.problems import Problem
from phoenix.inventory.qm_schema import option_problem, parse_qm_options, since


def vm_problems(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    for vmid, vm in sorted(inventory.vms.items()):
        out += _source_problems(inventory, vmid, vm)
        out += _dependency_problems(inventory, vmid, vm)
        out += _network_problems(inventory, vmid, vm)
        out += _usage_problems(inventory, vmid, vm)
        out += _qm_option_problems(inventory, vmid, vm)
    return out


def _source_problems(inventory: Inventory, vmid: int, vm: VmGuest) -> list[Problem]:
    at = inventory.vm_at
    src = vm.clone_from_vmid
    out: list[Problem] = []
    if vm.is_template and (vm.snapshots.pre_features or vm.snapshots.post_features):
        out.append(
            Problem(
                VM_FILE,
                at(vmid, "snapshots"),
                "a template cannot have lifecycle snapshots ('qm template' refuses a VM with "
                "snapshots): take them in the clones",
            )
        )
    if src is None:
        return out
    if src == vmid:
        return [*out, Problem(VM_FILE, at(vmid, "clone_from_vmid"), "a VM cannot clone itself")]
    source = inventory.vms.get(src)
    if source is None:
        hint = " (that id is a container)" if src in inventory.guests else ""
        return [
            *out,
            Problem(
                VM_FILE,
                at(vmid, "clone_from_vmid"),
                f"clone source {src} is not a VM in the inventory{hint}",
            ),
        ]
    if not source.is_clone_source:
        out.append(
            Problem(
                VM_FILE,
                at(vmid, "clone_from_vmid"),
                f"clone source {src} is neither a template ('is_template': true) nor has a "
                "'template_snapshot_name' to clone from",
            )
        )
    # A template keeps its image's size (clones grow from it); a snapshot source is a VM
    # whose disk was grown, and a disk can only grow.
    if not source.is_template and vm.disk_size_gb < source.disk_size_gb:
        out.append(
            Problem(
                VM_FILE,
                at(vmid, "disk_size_gb"),
                f"{vm.disk_size_gb} GiB is smaller than the {source.disk_size_gb} GiB disk of "
                f"its clone source {src}; a disk can only grow",
            )
        )
    if vm.template_image is not None:
        out.append(
            Problem(
                VM_FILE,
                at(vmid, "template_image"),
                f"ignored: the VM is cloned from {src}",
                "warning",
            )
        )
    return out


def _dependency_problems(inventory: Inventory, vmid: int, vm: VmGuest) -> list[Problem]:
    known = inventory.all_ids() | inventory.invalid_ids
    out: list[Problem] = []
    for index, dep in enumerate(vm.dependencies):
        if dep == vmid:
            message = "a VM cannot depend on itself"
        elif dep not in known:
            message = f"depends on {dep}, which is neither a container nor a VM in the inventory"
        else:
            continue
        out.append(Problem(VM_FILE, inventory.vm_at(vmid, "dependencies", index), message))
    return out


def _network_problems(inventory: Inventory, vmid: int, vm: VmGuest) -> list[Problem]:
    net = vm.network_config
    if net is None:
        return []
    out: list[Problem] = []
    if vm.bridge is None:
        out.append(
            Problem(
                VM_FILE,
                inventory.vm_at(vmid, "network_config"),
                "no bridge for the NIC: set network_config.bridge, the VM's network_bridge or "
                "vm_defaults.network_bridge",
            )
        )
    if net.gw is not None and net.dhcp:
        out.append(
            Problem(
                VM_FILE,
                inventory.vm_at(vmid, "network_config", "gw"),
                "ignored: with 'ip': 'dhcp' the gateway comes from the DHCP server",
                "warning",
            )
        )
    elif (message := gateway_message(net)) is not None:
        out.append(Problem(VM_FILE, inventory.vm_at(vmid, "network_config", "gw"), message))
    return out


def _usage_problems(inventory: Inventory, vmid: int, vm: VmGuest) -> list[Problem]:
    out: list[Problem] = []
    if vm.docker_stacks and "docker" not in vm.features:
        out.append(
            Problem(
                VM_FILE,
                inventory.vm_at(vmid, "docker_stacks"),
                "docker stacks need the 'docker' feature in this VM's features",
            )
        )
    for index, volume in enumerate(vm.volumes):
        if volume.type != "nfs":
            out.append(
                Problem(
                    VM_FILE,
                    inventory.vm_at(vmid, "volumes", index, "type"),
                    f"Phoenix mounts NFS volumes only, not {volume.type!r}: export the data "
                    "over NFS ('type': 'nfs' with 'server' and 'path'), or add the disk to the "
                    "VM yourself and drop this entry",
                )
            )
    return out


def _qm_option_problems(inventory: Inventory, vmid: int, vm: VmGuest) -> list[Problem]:
    """Each `qm_options` string: `--option value` words (no shell), every option one
    `qm set` takes (the API schema) and Phoenix leaves to the inventory."""
    out: list[Problem] = []
    for index, text in enumerate(vm.qm_options):
        at = inventory.vm_at(vmid, "qm_options", index)
        try:
            pairs = parse_qm_options(text)
        except ValueError as exc:
            out.append(Problem(VM_FILE, at, str(exc)))
            continue
        for option, value in pairs:
            why = option_problem(option, value)
            if why is not None:
                out.append(Problem(VM_FILE, at, why))
            elif (version := since(option)) is not None:
                out.append(
                    Problem(VM_FILE, at, f"--{option} needs PVE {version} or later", "warning")
                )
    return out

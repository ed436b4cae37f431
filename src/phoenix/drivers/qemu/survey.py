"""What `phoenix import` reads of the local VMs beyond `observe`: which exist under the VM
path (numbered folders holding Phoenix's VM record, `vm.json`), and the template a linked
clone builds on (its disk is a qcow2 overlay whose backing file is the template's disk)."""

from __future__ import annotations

from pathlib import Path

from phoenix.digits import is_digits
from phoenix.drivers.qemu.driver import QemuDriver
from phoenix.drivers.qemu.meta import META_FILE


def vm_ids(vm_path: Path) -> list[int]:
    if not vm_path.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in vm_path.iterdir()
        if is_digits(entry.name) and (entry / META_FILE).is_file()
    )


def clone_source(driver: QemuDriver, vmid: int) -> int | None:
    """The VM whose disk a linked clone's overlay builds on (a template of this VM path);
    None for a VM with a disk of its own."""
    backing = driver.vms.backing_file(vmid)
    if backing is None:
        return None
    source = backing.parent
    if source.parent != driver.vm_path or not is_digits(source.name):
        return None
    return int(source.name) if backing == driver.vms.paths(int(source.name)).disk else None

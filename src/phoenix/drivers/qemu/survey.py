"""What `phoenix import` reads of the local VMs: which exist under the VM path (numbered
folders holding Phoenix's VM record), so a report can name them."""

from __future__ import annotations

from pathlib import Path

from phoenix.digits import is_digits
from phoenix.drivers.qemu.meta import META_FILE


def vm_ids(vm_path: Path) -> list[int]:
    if not vm_path.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in vm_path.iterdir()
        if is_digits(entry.name) and (entry / META_FILE).is_file()
    )

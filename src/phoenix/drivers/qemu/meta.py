"""`vm.json`: a local VM's definition, as Phoenix applied it (what `qm config` is on
Proxmox). Written atomically, and last, by create and clone: a VM exists exactly when
this file does, so an interrupted create is a leftover folder, never a VM.

Pure: `to_json` / `from_json` turn the VM's `GuestSettings` into the file's object and
back (the disk's size is not kept: `qemu-img info` reads the truth).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from phoenix.drivers.base import FirewallRule, GuestSettings, NetSettings, VmConfig
from phoenix.errors import ParseError

META_FILE = "vm.json"
VERSION = 1


def to_json(settings: GuestSettings) -> dict[str, Any]:
    vm = settings.vm or VmConfig()
    return {
        "version": VERSION,
        "hostname": settings.hostname,
        "cores": settings.cores,
        "memory_mb": settings.memory_mb,
        "storage": settings.storage,
        "net": None if settings.net is None else asdict(settings.net),
        "onboot": settings.onboot,
        "boot_order": settings.boot_order,
        "boot_delay": settings.boot_delay,
        "firewall_enabled": settings.firewall_enabled,
        "firewall_rules": [asdict(r) for r in settings.firewall_rules],
        "username": vm.username,
        "ssh_keys": list(vm.ssh_keys),
        "nameservers": list(vm.nameservers),
        "full_clone": vm.full_clone,
    }


def from_json(data: Any, disk_gb: int, where: str) -> GuestSettings:
    """The settings in a `vm.json` object (ParseError naming `where` when it is not one)."""
    try:
        net = data["net"]
        return GuestSettings(
            hostname=str(data["hostname"]),
            memory_mb=int(data["memory_mb"]),
            swap_mb=0,
            cores=int(data["cores"]),
            disk_gb=disk_gb,
            storage=str(data["storage"]),
            unprivileged=False,
            net=None if net is None else NetSettings(**net),
            onboot=bool(data["onboot"]),
            boot_order=int(data["boot_order"]),
            boot_delay=int(data["boot_delay"]),
            firewall_enabled=bool(data["firewall_enabled"]),
            firewall_rules=tuple(FirewallRule(**r) for r in data["firewall_rules"]),
            vm=VmConfig(
                username=data["username"],
                ssh_keys=tuple(data["ssh_keys"]),
                nameservers=tuple(data["nameservers"]),
                full_clone=bool(data["full_clone"]),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(f"{where}: not a VM definition Phoenix wrote ({exc!r})") from None

"""Moving a VM between the nodes of a cluster: `qm migrate`, and what would refuse it,
asked before anything runs (qemu-server `PVE/API2/Qemu.pm` migrate_vm and
`PVE/QemuMigrate.pm` prepare/phase1):

- a running VM moves only live (`--online`): "can't migrate running VM without --online";
- a VM with local devices (`hostpci*`, a host `usb*`, a `serial*`/`parallel*` on a host
  device) does not move ("can't migrate VM which uses local devices: hostpci0");
- every disk's storage must exist on the target; a disk on local storage is copied, and a
  live move copies it only with `--with-local-disks`, which Phoenix then passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from phoenix.drivers.proxmox.clusterview import Storage
from phoenix.drivers.proxmox.properties import parse_property_string

_DISK = re.compile(r"^(scsi|virtio|sata|ide|efidisk|tpmstate)[0-9]+$")
_DEVICE = re.compile(r"^(hostpci|usb|serial|parallel)[0-9]+$")


def migrate_cmd(vmid: int, target: str, online: bool, local_disks: bool) -> list[str]:
    """`qm migrate`, run on the VM's node."""
    argv = ["qm", "migrate", str(vmid), target]
    if online:
        argv += ["--online", "1"]
    if local_disks:
        argv += ["--with-local-disks", "1"]
    return argv


def local_devices(config: Mapping[str, str]) -> list[str]:
    """The config keys naming a device of the node (qemu-server check_local_resources)."""
    out = []
    for key, value in sorted(config.items()):
        if not _DEVICE.match(key):
            continue
        if key.startswith("usb") and "host=" not in value:
            continue  # a spice redirection moves with the VM
        if key.startswith(("serial", "parallel")) and not value.startswith("/dev/"):
            continue  # a socket moves with the VM
        out.append(key)
    return out


def disk_storages(config: Mapping[str, str]) -> dict[str, str]:
    """Disk key -> its storage (not a CD-ROM, not cloud-init's)."""
    out = {}
    for key, value in config.items():
        if not _DISK.match(key) or "media=cdrom" in value or "cloudinit" in value:
            continue
        volume = parse_property_string(value, "file").get("file", "")
        if ":" in volume and not volume.startswith("/"):
            out[key] = volume.split(":", 1)[0]
    return out


def local_disks(config: Mapping[str, str], here: Mapping[str, Storage]) -> list[str]:
    return sorted(k for k, s in disk_storages(config).items() if s in here and not here[s].shared)


def blockers(
    vmid: int,
    config: Mapping[str, str],
    target: str,
    there: Mapping[str, Storage],
) -> tuple[str, ...]:
    """Why `qm migrate` would refuse the VM, each with the way out."""
    out: list[str] = []
    devices = local_devices(config)
    if devices:
        out.append(
            f"it uses devices of its node ({', '.join(devices)}), and Proxmox moves no VM "
            "with local devices (`can't migrate VM which uses local devices`): remove them "
            "from the VM, or keep it on its node"
        )
    for key, storage in sorted(disk_storages(config).items()):
        if storage not in there:
            out.append(
                f"its disk {key} is on storage {storage!r}, which node {target} does not "
                f"have: add it to {target} (Datacenter > Storage), or keep VM {vmid} where it is"
            )
    return tuple(out)


def downtime(running: bool, config: Mapping[str, str], here: Mapping[str, Storage]) -> str:
    if not running:
        return "none (stopped)"
    copied = local_disks(config, here)
    if copied:
        return f"none (live; its local disks {', '.join(copied)} are copied first: minutes per GiB)"
    return "none (live migration on shared storage; a pause of under a second)"

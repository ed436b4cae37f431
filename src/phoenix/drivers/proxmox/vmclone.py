"""Cloning a VM onto another node of the cluster: `qm clone SOURCE NEWID --target NODE`,
and what Proxmox refuses there, asked before anything runs (qemu-server
`PVE/API2/Qemu.pm` clone_vm and its `check_storage_access_clone`):

- every volume of the source (each disk, and each CD-ROM image but `none` and the host's
  `cdrom`, cloud-init's drive included) must be on shared storage, whatever the clone
  copies to: "can't clone VM to node 'X' (VM uses local storage)";
- a full clone's `--storage` must be enabled on the target node and shared: "can't clone
  to non-shared storage 'S'" (Phoenix always names it for a full clone);
- the new config is written on the source's node and then moved to the target's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from phoenix.drivers.proxmox.clusterview import Storage
from phoenix.drivers.proxmox.properties import parse_property_string

# qemu-server `PVE/QemuServer/Drive.pm` valid_drive_names.
_DRIVE = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)[0-9]+$")


def volume_storages(config: Mapping[str, str]) -> dict[str, str]:
    """Drive key -> the storage of its volume, for every drive clone_vm checks."""
    out = {}
    for key, value in config.items():
        if not _DRIVE.match(key):
            continue
        volume = parse_property_string(value, "file").get("file", "")
        if volume in ("", "none", "cdrom") or volume.startswith("/") or ":" not in volume:
            continue
        out[key] = volume.split(":", 1)[0]
    return out


def blockers(
    vmid: int,
    source: int,
    config: Mapping[str, str],
    target: str,
    storage: str | None,
    here: Mapping[str, Storage],
    there: Mapping[str, Storage],
) -> tuple[str, ...]:
    """Why `qm clone ... --target` would refuse VM `vmid` cloned from `source` (whose
    config is `config`, on the node whose storages are `here`), each with the way out;
    `storage`: the full clone's `--storage`, None for a linked clone."""
    out: list[str] = []
    if storage is not None and storage not in there:
        out.append(
            f"its storage_pool {storage!r} is not on node {target}: add it there "
            "(Datacenter > Storage), or choose a storage the node has"
        )
    elif storage is not None and not there[storage].shared:
        out.append(
            f"its storage_pool {storage!r} is local, and Proxmox clones onto another node "
            "only to shared storage (`can't clone to non-shared storage`): choose a shared "
            f"storage, or put VM {vmid} on the source's node"
        )
    local = sorted(
        f"{key} on {name!r}"
        for key, name in volume_storages(config).items()
        if name not in here or not here[name].shared
    )
    if local:
        out.append(
            f"its source VM {source} has volumes on local storage ({', '.join(local)}), and "
            f"Proxmox clones a VM onto another node only from shared storage (`can't clone "
            f"VM to node '{target}' (VM uses local storage)`): put VM {vmid} on the "
            f"source's node (and move it later with --migrate), or keep the source on "
            "shared storage"
        )
    return tuple(out)

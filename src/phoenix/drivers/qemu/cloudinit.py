"""cloud-init NoCloud seed: the files a VM reads on its first boot (who it is, its login,
its address), and the FAT image labelled CIDATA that carries them.

Pure builders: `seed_files` turns a `SeedSpec` into the three files' bytes; the instance
id is a digest of what the VM is told, so a changed seed makes cloud-init apply it again
(as Proxmox does) and an unchanged one does not. `seed_image_argv` are the commands that
pack them without mounts (mkfs.vfat makes the image file, mtools copies into it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SEED_LABEL = "CIDATA"
SEED_FILES = ("meta-data", "user-data", "network-config")
# Size of the seed image in KiB: three small text files fit many times over.
SEED_KIB = 1024


@dataclass(frozen=True)
class SeedSpec:
    """What cloud-init sets in the VM. `address` is CIDR (10.0.0.5/24) or None for DHCP."""

    hostname: str
    mac: str
    username: str | None = None
    ssh_keys: tuple[str, ...] = ()
    address: str | None = None
    gateway: str | None = None
    nameservers: tuple[str, ...] = ()
    interface: str = "eth0"
    extra_user_data: Mapping[str, object] = field(default_factory=dict)


def user_data(spec: SeedSpec) -> dict[str, object]:
    """#cloud-config: hostname, the login with sudo and keys, no package upgrade (a first
    boot that upgrades is slow and not what the inventory asked for)."""
    data: dict[str, object] = {
        "hostname": spec.hostname,
        "fqdn": spec.hostname,
        "manage_etc_hosts": True,
        "package_update": False,
        "package_upgrade": False,
        "ssh_pwauth": False,
    }
    if spec.username is not None:
        user: dict[str, object] = {
            "name": spec.username,
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": True,
        }
        if spec.ssh_keys:  # cloud-init's schema wants at least one key when the list is there
            user["ssh_authorized_keys"] = list(spec.ssh_keys)
        data["users"] = [user]
    elif spec.ssh_keys:
        data["ssh_authorized_keys"] = list(spec.ssh_keys)
    if spec.nameservers:
        # Debian's cloud-init renders ifupdown config, whose dns-nameservers only work with
        # resolvconf installed: the resolvers are written as the file itself.
        text = "".join(f"nameserver {ns}\n" for ns in spec.nameservers)
        data["write_files"] = [{"path": "/etc/resolv.conf", "content": text, "permissions": "0644"}]
    data.update(spec.extra_user_data)
    return data


def network_config(spec: SeedSpec) -> dict[str, object]:
    """Netplan-style v2, the NIC matched by its MAC and renamed, static or DHCP."""
    nic: dict[str, object] = {
        "match": {"macaddress": spec.mac.lower()},
        "set-name": spec.interface,
    }
    if spec.address is None:
        nic["dhcp4"] = True
    else:
        nic["dhcp4"] = False
        nic["addresses"] = [spec.address]
        if spec.gateway is not None:
            # `gateway4`, not a default route under `routes`: Debian's cloud-init renders
            # ifupdown config, where a route is a `post-up route add` line needing
            # net-tools (not in the image) and fails silently; `gateway` is ifupdown's own.
            nic["gateway4"] = spec.gateway
    if spec.nameservers:
        nic["nameservers"] = {"addresses": list(spec.nameservers)}
    return {"version": 2, "ethernets": {spec.interface: nic}}


def _dump(data: Mapping[str, object]) -> str:
    # JSON is YAML: no YAML library needed, and no value can break out of its string.
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def seed_files(spec: SeedSpec) -> dict[str, bytes]:
    """meta-data, user-data and network-config, as written into the seed image."""
    user = "#cloud-config\n" + _dump(user_data(spec))
    network = _dump(network_config(spec))
    digest = hashlib.sha256((user + "\0" + network).encode()).hexdigest()[:16]
    meta = _dump({"instance-id": f"iid-{digest}", "local-hostname": spec.hostname})
    return {
        "meta-data": meta.encode(),
        "user-data": user.encode(),
        "network-config": network.encode(),
    }


def seed_digest(files: Mapping[str, bytes]) -> str:
    """One digest over the seed's files: the image is rebuilt only when it changes."""
    h = hashlib.sha256()
    for name in SEED_FILES:
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()


def seed_image_argv(image: Path, sources: Sequence[Path]) -> list[list[str]]:
    """Commands that make `image` (FAT, label CIDATA) holding `sources` at its root."""
    return [
        ["mkfs.vfat", "-n", SEED_LABEL, "-C", str(image), str(SEED_KIB)],
        ["mcopy", "-o", "-i", str(image), *map(str, sources), "::"],
    ]

"""A VM's NFS `volumes`, mounted inside the guest as a bundle.

The host renders the lines (an fstab block and, per volume, the expected source and its
mount point) and `volumes_mount.sh` applies them: nfs-common installed when `mount.nfs` is
missing, Phoenix's block of `/etc/fstab` replaced (between its own marker lines, so the
rest of the file is never touched), each mount point made and mounted, and read back with
`findmnt` (a mount that shows another source is remounted; one that still does not match
fails the step). The digest covers the lines: unchanged volumes are no step; the mounts
come back at every boot from fstab (`_netdev,nofail`: a missing server never blocks a boot).
"""

from __future__ import annotations

from collections.abc import Sequence

from phoenix.inventory.models import VmVolume
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.registry import builtin_scripts_dir

BUNDLE = "vm-volumes"
SCRIPT = "volumes_mount.sh"
FSTAB_FILE = "volumes.fstab"
LIST_FILE = "volumes.list"
NFS_OPTIONS = "defaults,_netdev,nofail"


def fstab_field(value: str) -> str:
    """fstab's escapes for the characters that would split or end a field."""
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("#", "\\043")):
        value = value.replace(char, code)
    return value


def nfs_source(volume: VmVolume) -> str:
    assert volume.server is not None and volume.path is not None
    return f"{volume.server}:{volume.path}"


def render_fstab(volumes: Sequence[VmVolume]) -> str:
    return "".join(
        f"{fstab_field(nfs_source(v))} {fstab_field(v.mount_point)} nfs {NFS_OPTIONS} 0 0\n"
        for v in volumes
    )


def render_list(volumes: Sequence[VmVolume]) -> str:
    """`source<TAB>mount point` per volume: what the script mounts and reads back."""
    return "".join(f"{nfs_source(v)}\t{v.mount_point}\n" for v in volumes)


def volumes_bundle(volumes: Sequence[VmVolume]) -> Bundle | None:
    """The bundle mounting the VM's NFS volumes; None without any (validation refuses
    other types before a plan is made)."""
    nfs = [v for v in volumes if v.type == "nfs"]
    if not nfs:
        return None
    files = {FSTAB_FILE: render_fstab(nfs).encode(), LIST_FILE: render_list(nfs).encode()}
    entry = {"volumes": [v.model_dump(mode="json", exclude_unset=True) for v in nfs]}
    script = (builtin_scripts_dir() / SCRIPT).read_bytes()
    return Bundle(BUNDLE, SCRIPT, script, files, entry, timeout=900.0)

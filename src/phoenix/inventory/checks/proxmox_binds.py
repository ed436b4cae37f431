"""Bind mounts on the Proxmox driver: what pve-container cannot snapshot, clone or template.

A host-path bind mount (`mpN: /srv/x,mp=/x`) is not a storage volume, so:
- `pct snapshot` checks every mount point (pve-container `src/PVE/LXC/Config.pm`,
  `has_feature`) and a path has no snapshot feature (pve-storage `src/PVE/Storage.pm`,
  `volume_has_feature`): "snapshot feature is not available";
- `pct clone` dies "unable to clone mountpoint 'mpN' (type bind)" (pve-container
  `src/PVE/API2/LXC.pm`, `clone_vm`);
- `pct template` fails in its worker (pve-container `src/PVE/LXC.pm`, `template_create`:
  "Template feature is not available") while `pct` exits 0.

So a guest with bind mounts that would be snapshotted, cloned or made a template is refused
at validate, naming the guest, the mount point and the ways out, instead of failing on the
node half-way through a run.
"""

from __future__ import annotations

from phoenix.inventory.core import LXC_FILE, Inventory
from phoenix.inventory.problems import Problem, lxc_at


def bind_mount_problems(inventory: Inventory) -> list[Problem]:
    """One error per bind mount of a guest Proxmox would have to snapshot, clone or template."""
    sources = {g.clone_from_ctid for g in inventory.guests.values() if g.clone_from_ctid}
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        uses: list[str] = []
        if guest.enable_lifecycle_snapshots:
            uses.append("'enable_lifecycle_snapshots' (pct snapshot)")
        if guest.template_snapshot_name:
            uses.append(f"'template_snapshot_name' {guest.template_snapshot_name!r} (pct snapshot)")
        if guest.is_template:
            uses.append("'is_template' (pct template)")
        if ctid in sources:
            clones = sorted(c for c, g in inventory.guests.items() if g.clone_from_ctid == ctid)
            uses.append(f"clone source of {', '.join(map(str, clones))} (pct clone)")
        if not uses:
            continue
        for index, mount in enumerate(guest.mount_points):
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "mount_points", index),
                    f"bind mount {mount.host_path} -> {mount.container_path}: Proxmox cannot "
                    f"snapshot, clone or template a container with a host-path bind mount, and "
                    f"guest {ctid} needs that for {', '.join(uses)}. Use a volume instead "
                    "('volumes' or 'zfs_volumes' on a storage that snapshots), or drop "
                    f"{' and '.join(u.split(' (')[0] for u in uses)}",
                )
            )
    return out

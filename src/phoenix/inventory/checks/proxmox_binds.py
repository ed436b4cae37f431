"""Bind mounts on the Proxmox driver: what pve-container cannot snapshot, clone or template.

A host-path bind mount (`mpN: /srv/x,mp=/x`) is not a storage volume, so:
- `pct snapshot` checks every mount point (pve-container `src/PVE/LXC/Config.pm`,
  `has_feature`) and a path has no snapshot feature (pve-storage `src/PVE/Storage.pm`,
  `volume_has_feature`): "snapshot feature is not available";
- `pct clone` dies "unable to clone mountpoint 'mpN' (type bind)" (pve-container
  `src/PVE/API2/LXC.pm`, `clone_vm`);
- `pct template` fails in its worker (pve-container `src/PVE/LXC.pm`, `template_create`:
  "Template feature is not available") while `pct` exits 0.

So a guest with bind mounts that would be cloned or made a template is refused at validate,
naming the guest, the mount point and the ways out, instead of failing on the node half-way
through a run. Snapshots nothing clones from (lifecycle snapshots, a `template_snapshot_name`
no guest uses) are the original tool's form, which it gave a meaning: it matched "snapshot
feature is not available" and went on without the snapshot (`lxc-manager.sh`). Phoenix does
the same on Proxmox (the planner takes none), with a warning: losing a snapshot that could
never exist loses nothing.

Lifecycle snapshots can be had all the same where the guest says so
(`lifecycle_snapshots_detach_bind_mounts`): the driver stops it, detaches its bind mounts,
snapshots and puts them back (`drivers.proxmox.bindsnap`). It is a switch per guest, beside
`enable_lifecycle_snapshots`, because it costs that guest a stop and a start for each
snapshot and leaves snapshots without the mounts; no guest should get that unasked. A
`template_snapshot_name` gets no such way: it exists to clone from, and clones made from a
snapshot without the mounts would silently lack them.
"""

from __future__ import annotations

from phoenix.inventory.core import LXC_FILE, Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.problems import Problem, lxc_at


def bind_mount_problems(inventory: Inventory) -> list[Problem]:
    """One error per bind mount of a guest Proxmox would have to clone or template; one
    warning per snapshot key of a guest with bind mounts that nothing clones from."""
    sources = {g.clone_from_ctid for g in inventory.guests.values() if g.clone_from_ctid}
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        if not guest.mount_points:
            continue
        uses: list[str] = []
        if guest.is_template:
            uses.append("'is_template' (pct template)")
        if ctid in sources:
            clones = sorted(c for c, g in inventory.guests.items() if g.clone_from_ctid == ctid)
            if guest.template_snapshot_name and not guest.is_template:
                name = guest.template_snapshot_name
                uses.append(f"'template_snapshot_name' {name!r} (pct snapshot)")
            uses.append(f"clone source of {', '.join(map(str, clones))} (pct clone)")
        if not uses:
            out += _skipped_snapshots(ctid, guest)
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


def _skipped_snapshots(ctid: int, guest: LxcGuest) -> list[Problem]:
    """The snapshots of a guest with bind mounts that nothing clones from: not taken
    (lifecycle snapshots: unless the guest asks for them with its bind mounts detached)."""
    detach = guest.lifecycle_snapshots_detach_bind_mounts
    keys = [
        key
        for key, asked in (
            ("enable_lifecycle_snapshots", guest.enable_lifecycle_snapshots and not detach),
            ("template_snapshot_name", guest.template_snapshot_name is not None),
        )
        if asked and not guest.is_template
    ]
    return [
        Problem(
            LXC_FILE,
            lxc_at(ctid, key),
            "not taken on Proxmox: it cannot snapshot a container with host-path bind mounts "
            "(mount_points; 'snapshot feature is not available'), and the original tool went "
            "on without the snapshot too. For snapshots, use volumes instead of bind mounts"
            + (
                ", or set 'lifecycle_snapshots_detach_bind_mounts': true (the guest is stopped "
                "for each snapshot, which then holds no bind mounts)"
                if key == "enable_lifecycle_snapshots"
                else ""
            ),
            "warning",
        )
        for key in keys
    ]


def detach_switch_problems(inventory: Inventory) -> list[Problem]:
    """`lifecycle_snapshots_detach_bind_mounts` where it can do nothing (any driver: an
    inventory moves between them)."""
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        if not guest.lifecycle_snapshots_detach_bind_mounts:
            continue
        if not guest.enable_lifecycle_snapshots or guest.is_template:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "lifecycle_snapshots_detach_bind_mounts"),
                    "has no effect: the guest takes no lifecycle snapshots "
                    + (
                        "(it is a template)"
                        if guest.is_template
                        else "(set 'enable_lifecycle_snapshots': true for them)"
                    ),
                    "warning",
                )
            )
    return out


def takes_snapshots(guest: LxcGuest, driver: str) -> bool:
    """Whether the guest's `template_snapshot_name` is taken on `driver` (Proxmox cannot
    snapshot a container with bind mounts; validate refuses one that must be, warns for the
    others)."""
    return not (driver == "proxmox" and guest.mount_points)


def lifecycle_snapshots(guest: LxcGuest, driver: str) -> tuple[bool, bool]:
    """(whether the guest's lifecycle snapshots are taken on `driver`, whether with its
    bind mounts detached). Detached on Proxmox when the guest asks: the driver then detaches
    whatever bind mounts the node's config has, the ones the inventory does not list too."""
    if not guest.enable_lifecycle_snapshots or guest.is_template:
        return False, False
    detach = driver == "proxmox" and guest.lifecycle_snapshots_detach_bind_mounts
    return detach or takes_snapshots(guest, driver), detach

"""Checks on a guest's mount points and volumes: one target, one mount.

Phoenix matches mounts by their path in the guest (so a re-run never adds a second volume,
as the original tool did); two entries on one target would fight over it.
"""

from __future__ import annotations

from phoenix.inventory.core import LXC_FILE
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.problems import Problem, json_path


def mount_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    """Every mount target used twice (bind mounts, `zfs_volumes` and `volumes` together)."""
    if len(guest.mount_points) + len(guest.zfs_volumes) + len(guest.volumes) < 2:
        return []  # most guests: nothing to compare
    seen: dict[str, str] = {}
    out: list[Problem] = []
    entries = [("mount_points", i, m.container_path) for i, m in enumerate(guest.mount_points)]
    for key in ("zfs_volumes", "volumes"):
        volumes = getattr(guest, key)
        entries += [(key, i, v.mount_point) for i, v in enumerate(volumes)]
    for key, index, target in entries:
        normal = target.rstrip("/") or "/"
        where = f"{key}[{index}]"
        if normal in seen:
            out.append(
                Problem(
                    LXC_FILE,
                    json_path(["lxc_configs", str(ctid), key, index]),
                    f"{normal!r} is already mounted by {seen[normal]}: one mount per path",
                )
            )
        seen.setdefault(normal, where)
    return out

"""The cluster as one read: who is quorate and online (`/cluster/status`), where every guest
lives (`/cluster/resources`), and what a node's storage can do (`/nodes/X/storage`).

Pure parsers of pvesh's JSON (pve-manager `PVE/API2/ClusterConfig.pm`, `PVE/API2/Cluster.pm`
resources: `vmid`, `type` lxc|qemu, `node`, `status`), plus what moving a container
between nodes would meet (`migration_blockers`), the same rules pve-container's
`src/PVE/LXC/Migrate.pm` applies, asked before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.base import MountSettings, ObservedGuest

# pve-container src/PVE/LXC/Migrate.pm: local storage a volume can be copied from, and the
# local types whose snapshots travel with it.
MIGRATABLE_LOCAL = frozenset({"dir", "zfspool", "lvmthin", "lvm", "btrfs"})
SNAPSHOTS_MIGRATE = frozenset({"zfspool", "btrfs"})


@dataclass(frozen=True)
class Placed:
    """One guest of `/cluster/resources`."""

    kind: str  # lxc | qemu
    node: str
    status: str  # running | stopped | unknown (its node is offline)


@dataclass(frozen=True)
class Storage:
    name: str
    kind: str
    shared: bool


@dataclass
class ClusterView:
    """What one run knows of the cluster; `guests` is kept up to date as Phoenix creates,
    clones, moves and destroys guests."""

    quorate: bool
    online: dict[str, bool]
    guests: dict[int, Placed] = field(default_factory=dict)


def _flag(value: object) -> bool:
    return str(value) in ("1", "true", "True")


def parse_status(data: Any) -> tuple[bool, dict[str, bool]]:
    """(quorate, node -> online). A node in no cluster lists only itself: quorate."""
    rows = [r for r in data if isinstance(r, Mapping)] if isinstance(data, list) else []
    cluster = next((r for r in rows if r.get("type") == "cluster"), None)
    online = {str(r["name"]): _flag(r.get("online", 1)) for r in rows if r.get("type") == "node"}
    return (True if cluster is None else _flag(cluster.get("quorate", 0))), online


def parse_resources(data: Any) -> dict[int, Placed]:
    """vmid -> where it lives, for every guest (containers and VMs) of the cluster."""
    out: dict[int, Placed] = {}
    for row in data if isinstance(data, list) else []:
        if not isinstance(row, Mapping) or not is_digits(str(row.get("vmid", ""))):
            continue
        kind = str(row.get("type", "?"))
        out[int(str(row["vmid"]))] = Placed(
            kind, str(row.get("node", "?")), str(row.get("status", ""))
        )
    return out


def parse_storage(data: Any) -> dict[str, Storage]:
    """`/nodes/X/storage` -> storage id -> (type, shared)."""
    out: dict[str, Storage] = {}
    for row in data if isinstance(data, list) else []:
        if isinstance(row, Mapping) and "storage" in row:
            name = str(row["storage"])
            out[name] = Storage(name, str(row.get("type", "?")), _flag(row.get("shared", 0)))
    return out


def _bind_blocker(mount: MountSettings, here: str) -> str:
    return (
        f"its bind mount {mount.host_path} -> {mount.target} is a folder of node {here}, and "
        "Proxmox moves no bind mount not marked shared (`cannot migrate local bind mount "
        "point`): drop it from the inventory, or keep the guest on its node"
    )


def migration_blockers(
    observed: ObservedGuest,
    target: str,
    here: Mapping[str, Storage],
    there: Mapping[str, Storage],
    ha_managed: bool,
) -> tuple[str, ...]:
    """Why `pct migrate` would refuse (or leave behind) what the guest has: each a reason
    and the way out. `here`/`there`: the storages of its node and of `target`."""
    settings = observed.settings
    node = observed.node or "?"
    out: list[str] = []
    if ha_managed:
        out.append(
            "it is managed by Proxmox HA, which decides its node: give it `placement: ha` "
            f"(Phoenix then accepts HA's node) or move it with `ha-manager migrate ct:"
            f"{observed.ctid} {target}`"
        )
    if observed.locked:
        out.append(
            f"it is locked ({observed.locked}): `pct unlock {observed.ctid}` once "
            "whatever held the lock is done"
        )
    if settings is None:
        return tuple(out)
    if settings.gpus:
        gpus = ",".join(map(str, settings.gpus))
        out.append(
            f"GPU {gpus} is a device of node {node}: a guest with GPUs moves only with them "
            f"removed (`gpu_assignment: none`) or stays on {node}"
        )
    volumes = [(settings.storage, "root disk")]
    volumes += [(m.pool, f"volume {m.target}") for m in settings.mounts if m.pool is not None]
    for mount in settings.mounts:
        if mount.host_path is not None:
            out.append(_bind_blocker(mount, node))
    for storage, what in volumes:
        out += _volume_blockers(storage, what, target, here, there, bool(observed.snapshots))
    return tuple(out)


def _volume_blockers(
    storage: str,
    what: str,
    target: str,
    here: Mapping[str, Storage],
    there: Mapping[str, Storage],
    snapshots: bool,
) -> Sequence[str]:
    if storage not in there:
        return [
            f"its {what} is on storage {storage!r}, which node {target} does not have: add "
            f"{storage!r} to {target} (Datacenter > Storage), or keep the guest where it is"
        ]
    found = here.get(storage)
    if found is None or found.shared:
        return []
    if found.kind not in MIGRATABLE_LOCAL:
        return [
            f"its {what} is on local storage {storage!r} of type {found.kind}, which "
            "Proxmox cannot copy between nodes"
        ]
    if snapshots and found.kind not in SNAPSHOTS_MIGRATE:
        return [
            f"its {what} is on local {found.kind} storage {storage!r} and it has snapshots, "
            "which Proxmox cannot move (`non-migratable snapshot exists`): delete them "
            "(`pct delsnapshot`), or use zfs, btrfs or shared storage"
        ]
    return []


def downtime(observed: ObservedGuest, here: Mapping[str, Storage]) -> str:
    """How long the guest is down while it moves, in words."""
    if not observed.running:
        return "none (stopped)"
    settings = observed.settings
    storages = [settings.storage] if settings is not None else []
    if settings is not None:
        storages += [m.pool for m in settings.mounts if m.pool is not None]
    local = [s for s in storages if s in here and not here[s].shared]
    if local:
        return (
            "restart: stopped on its node, its disks copied from local storage "
            f"({', '.join(dict.fromkeys(local))}), started on the target; minutes per GiB"
        )
    return "restart: stopped, moved (shared storage: no copy), started on the target; seconds"

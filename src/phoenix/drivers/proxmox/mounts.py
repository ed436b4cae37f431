"""Mount points of a Proxmox guest (`mpN` options): parsed from a config, built as `pct set`.

Phoenix owns an `mpN` entry when its target (`mp=`) is one the inventory asks for, or one it
wrote before (the ownership record); every other entry is the administrator's and is neither
reported nor changed. A mount is matched by target, never by index, so a re-run reuses the
entry (and its volume) instead of adding one as the original tool did. Dropping a mount
deletes only the entry: a bind mount's data stays on the host, and Proxmox keeps a volume
as `unusedN` (Phoenix never passes `--destroy-unreferenced-disks` or deletes a volume).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from phoenix.drivers import idmaps
from phoenix.drivers.base import MountSettings
from phoenix.drivers.idmaps import IdRange
from phoenix.drivers.proxmox.properties import (
    parse_property_string,
    render_property_string,
    size_to_gib,
)
from phoenix.errors import DriverError

MAX_MOUNTS = 256  # mp[n]: n in 0..255 (pve-container)
_KEY = re.compile(r"^mp([0-9]+)$")


@dataclass(frozen=True)
class Present:
    """One `mpN` entry of a config: its key, raw value and what it mounts."""

    key: str
    value: str
    mount: MountSettings
    volume_id: str | None  # a volume's `storage:name` (None: a bind mount)


def parse_entries(config: Mapping[str, object]) -> list[Present]:
    """The `mpN` entries of `pvesh get .../config` output, in index order."""
    found: list[tuple[int, Present]] = []
    for key, raw in config.items():
        match = _KEY.match(str(key))
        if match is None:
            continue
        value = str(raw)
        props = parse_property_string(value, default_key="volume")
        source = props.get("volume", "")
        target = (props.get("mp", "").rstrip("/")) or "/"
        read_only = props.get("ro") == "1"
        if source.startswith("/"):
            mount = MountSettings(target=target, host_path=source, read_only=read_only)
            volume_id = None
        else:
            size = size_to_gib(props["size"]) if "size" in props else None
            mount = MountSettings(
                target=target, read_only=read_only, pool=source.split(":", 1)[0], size_gb=size
            )
            volume_id = source
        found.append((int(match.group(1)), Present(str(key), value, mount, volume_id)))
    return [p for _, p in sorted(found, key=lambda item: item[0])]


def owned(present: Iterable[Present], targets: Iterable[str]) -> list[Present]:
    wanted = set(targets)
    return [p for p in present if p.mount.target in wanted]


# The `mpN` keys Phoenix writes; the others (`backup`, `acl`, `shared`, `mountoptions`,
# `quota`, `replicate`) are the administrator's and a rewrite carries them over.
_MANAGED = frozenset({"volume", "mp", "ro", "size"})


def render(mount: MountSettings, volume_id: str | None, current: str | None = None) -> str:
    """An `mpN` value: bind `HOST,mp=T`; a new volume `POOL:SIZE,mp=T` (Proxmox allocates
    it); an existing volume keeps its id and size. `pct set --mpN` replaces the whole value
    (pve-container `src/PVE/LXC/Config.pm`, `update_pct_config`), so the keys Phoenix does
    not write are taken from `current`, the node's value."""
    if mount.host_path is not None:
        head = mount.host_path
    elif volume_id is not None:
        head = volume_id
    else:
        head = f"{mount.pool}:{mount.size_gb}"
    pairs = [("mp", mount.target)]
    if mount.read_only:
        pairs.append(("ro", "1"))
    if volume_id is not None and mount.size_gb is not None:
        pairs.append(("size", f"{mount.size_gb}G"))
    kept = parse_property_string(current, default_key="volume") if current else {}
    if current is None and mount.host_path is not None:
        # A bind mount cannot be replicated: storage replication of the guest dies "unable
        # to replicate mountpoint type 'bind'" unless the entry says replicate=0
        # (pve-container src/PVE/LXC/Config.pm, get_replicatable_volumes).
        kept = {"replicate": "0"}
    pairs += [(k, v) for k, v in kept.items() if k not in _MANAGED]
    return render_property_string(pairs, head=head)


@dataclass(frozen=True)
class MountChanges:
    """What converging the mounts takes: one `pct set` (or none) and volume resizes."""

    set_argv: list[str] | None
    resizes: list[list[str]]


def changes(
    ctid: int,
    wanted: Sequence[MountSettings],
    present: Sequence[Present],
    recorded: Iterable[str],
) -> MountChanges:
    """Entries to write (matched by target), entries to drop (recorded targets the inventory
    no longer names) and volumes to grow. Shrinking a volume is refused."""
    by_target = {p.mount.target: p for p in present}
    used = {int(p.key[2:]) for p in present}
    wanted_targets = {m.target for m in wanted}
    options: list[str] = []
    resizes: list[list[str]] = []
    for mount in wanted:
        have = by_target.get(mount.target)
        if have is not None and have.mount == mount:
            continue
        if have is None:
            index = next((i for i in range(MAX_MOUNTS) if i not in used), None)
            if index is None:
                raise DriverError(f"guest {ctid}: all {MAX_MOUNTS} mount point slots are used")
            used.add(index)
            options += [f"--mp{index}", render(mount, None)]
            continue
        kind_changed = (have.volume_id is not None) != mount.is_volume
        if have.volume_id is not None and mount.is_volume and have.mount.pool != mount.pool:
            raise DriverError(
                f"guest {ctid}: the volume at {mount.target} is on storage "
                f"{have.mount.pool!r}, the inventory says {mount.pool!r}; move it with "
                f"`pct move-volume {ctid} {have.key} {mount.pool}` (Phoenix does not move data)"
            )
        if have.volume_id is not None and not kind_changed:
            old_gb, new_gb = have.mount.size_gb or 0, mount.size_gb or 0
            if new_gb < old_gb:
                raise DriverError(
                    f"guest {ctid}: the volume at {mount.target} has {old_gb} GiB and the "
                    f"inventory asks for {new_gb} GiB: Proxmox only grows volumes"
                )
            if new_gb > old_gb:
                resizes.append(["pct", "resize", str(ctid), have.key, f"{new_gb}G"])
            if have.mount.read_only != mount.read_only:
                sized = MountSettings(
                    target=mount.target, read_only=mount.read_only, pool=mount.pool,
                    size_gb=have.mount.size_gb,
                )  # fmt: skip
                options += [f"--{have.key}", render(sized, have.volume_id, have.value)]
            continue
        if have.volume_id is not None:
            raise DriverError(
                f"guest {ctid}: {mount.target} is a volume ({have.volume_id}) and the "
                "inventory makes it a bind mount; Phoenix does not drop a volume's data: "
                f"detach it first (`pct set {ctid} --delete {have.key}` keeps it as unused)"
            )
        options += [f"--{have.key}", render(mount, None, have.value)]
    drop = [p.key for p in present if p.mount.target in set(recorded) - wanted_targets]
    if drop:
        options += ["--delete", ",".join(drop)]
    argv = ["pct", "set", str(ctid), *options] if options else None
    return MountChanges(argv, resizes)


def host_ids(
    mount: MountSettings, unprivileged: bool, ranges: tuple[IdRange, ...] = ()
) -> tuple[int, int]:
    """Host uid/gid for a bind source: the owner the guest sees, shifted when unprivileged
    through the guest's `lxc.idmap` lines (`ranges`; () is Proxmox's default map)."""
    uid = mount.owner_uid or 0
    gid = mount.owner_gid if mount.owner_gid is not None else uid
    if not unprivileged:
        return uid, gid
    host_uid = idmaps.to_host(ranges, "u", uid)
    host_gid = idmaps.to_host(ranges, "g", gid)
    if host_uid is None or host_gid is None:
        covered = ", ".join(
            f"{r.kind} {r.guest}..{r.guest + r.count - 1}" for r in idmaps.effective(ranges)
        )
        raise DriverError(
            f"mount {mount.target}: owner {uid}:{gid} is outside the guest's id map ({covered})"
        )
    return host_uid, host_gid


def probe_dir(path: str) -> list[str]:
    """Exit 0 when the host path is a directory (an absolute path: no option confusion)."""
    return ["test", "-d", path]


def make_dir(path: str) -> list[str]:
    return ["mkdir", "-p", "--", path]


def chown(path: str, uid: int, gid: int) -> list[str]:
    return ["chown", "--", f"{uid}:{gid}", path]

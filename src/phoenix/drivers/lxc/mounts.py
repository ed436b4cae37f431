"""Mount points and volumes of an LXC guest: `lxc.mount.entry` bind lines, and the host
directories behind them.

A bind mount shows the host's `host_path` at its target; a volume is a directory Phoenix
makes under the driver's volume root (LXC has no storage pools: `pool` and `size_gb` are
recorded, not enforced). Each mount is written as a `#phoenix.mount` comment holding its
settings, followed by its `lxc.mount.entry`, so a config parses back to the same settings.

Ownership: a directory Phoenix creates belongs to the guest's root, or to `owner_uid` /
`owner_gid` as the guest sees them, shifted through the guest's id map (uid 1000 in an
unprivileged guest is 101000 on the host with the default map; through its `id_maps` when
it has them). An existing directory is re-owned only when the
inventory names an owner. Nothing here ever deletes a directory: a mount dropped from the
inventory leaves its data where it was.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from phoenix.drivers import idmaps
from phoenix.drivers.base import MountSettings
from phoenix.drivers.idmaps import IdRange
from phoenix.drivers.lxc import idmap
from phoenix.errors import DriverError
from phoenix.files import OWNED_MARKER

MOUNT_KEY = "#phoenix.mount"
VOLUME_DIR = "phoenix-volumes"


def volume_path(volume_root: Path, ctid: int, mount: MountSettings) -> Path:
    """Where a volume's data lives: one directory per guest and target (a renamed volume
    keeps its data; two targets never share a directory)."""
    return volume_root / str(ctid) / (quote(mount.target.strip("/"), safe="") or "%2F")


def source_path(volume_root: Path, ctid: int, mount: MountSettings) -> Path:
    return (
        Path(mount.host_path)
        if mount.host_path is not None
        else volume_path(volume_root, ctid, mount)
    )


def _escape(path: str) -> str:
    """fstab escaping (LXC reads mount entries with getmntent): space, tab, newline, '\\'."""
    out = path
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        out = out.replace(char, code)
    return out


def entry(source: Path, mount: MountSettings) -> str:
    """The `lxc.mount.entry` value: target relative to the rootfs, created when missing."""
    options = "bind,create=dir" + (",ro" if mount.read_only else "")
    return f"{_escape(str(source))} {_escape(mount.target.lstrip('/'))} none {options} 0 0"


def _record(mount: MountSettings) -> str:
    data = {
        "target": mount.target,
        "host_path": mount.host_path,
        "read_only": mount.read_only,
        "pool": mount.pool,
        "size_gb": mount.size_gb,
        "name": mount.name,
    }
    return json.dumps({k: v for k, v in data.items() if v not in (None, "")}, sort_keys=True)


def render_keys(
    ctid: int, mounts: Sequence[MountSettings], volume_root: Path
) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for mount in mounts:
        keys.append((MOUNT_KEY, _record(mount)))
        keys.append(("lxc.mount.entry", entry(source_path(volume_root, ctid, mount), mount)))
    return keys


def parse_keys(records: Iterable[str]) -> tuple[MountSettings, ...]:
    """The mounts recorded in a config (unreadable records are dropped: drift, rewritten)."""
    mounts: list[MountSettings] = []
    for text in records:
        try:
            data = json.loads(text)
            mounts.append(
                MountSettings(
                    target=str(data["target"]),
                    host_path=data.get("host_path"),
                    read_only=bool(data.get("read_only", False)),
                    pool=data.get("pool"),
                    size_gb=data.get("size_gb"),
                    name=str(data.get("name", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return tuple(sorted(mounts, key=lambda m: m.target))


def host_ids(
    mount: MountSettings, unprivileged: bool, ranges: tuple[IdRange, ...] = ()
) -> tuple[int, int]:
    """The host uid/gid that the guest sees as the mount's owner (default: its root),
    through the guest's own map (`ranges`; () is the default map)."""
    uid = mount.owner_uid or 0
    gid = mount.owner_gid if mount.owner_gid is not None else uid
    if not unprivileged:
        return uid, gid
    host_uid = idmaps.to_host(ranges, "u", uid)
    host_gid = idmaps.to_host(ranges, "g", gid)
    for value, host, what, kind in (
        (uid, host_uid, "owner_uid", "u"),
        (gid, host_gid, "owner_gid", "g"),
    ):
        if host is None:
            raise DriverError(
                f"mount {mount.target}: {what} {value} is outside the guest's id map "
                f"({_describe(ranges, kind)}); an unprivileged guest cannot own it"
            )
    assert host_uid is not None and host_gid is not None
    return host_uid, host_gid


def _describe(ranges: tuple[IdRange, ...], kind: str) -> str:
    return ", ".join(
        f"{r.guest}..{r.guest + r.count - 1}" for r in idmaps.effective(ranges) if r.kind == kind
    )


def ensure_sources(
    ctid: int,
    mounts: Sequence[MountSettings],
    unprivileged: bool,
    volume_root: Path,
    ranges: tuple[IdRange, ...] = (),
) -> list[Path]:
    """Create missing host directories (owned as the guest expects) and re-own existing ones
    where the inventory names an owner. Returns the directories created.

    An unprivileged guest's root must pass through every directory above a source. Phoenix
    opens (`o+x`) only directories it made: one of someone else's that others cannot pass
    (`/root`, a home) is refused, before anything is made, with the ways out."""
    if unprivileged:
        for mount in mounts:
            _refuse_closed_parents(ctid, mount, source_path(volume_root, ctid, mount), ranges)
    created: list[Path] = []
    for mount in mounts:
        path = source_path(volume_root, ctid, mount)
        uid, gid = host_ids(mount, unprivileged, ranges)
        if path.exists() and not path.is_dir():
            raise DriverError(
                f"guest {ctid}: mount {mount.target}: {path} exists and is not a directory"
            )
        if not path.exists():
            _make_dirs(path)
            created.append(path)
            os.chown(path, uid, gid)
        elif mount.owner_uid is not None or mount.owner_gid is not None:
            os.chown(path, uid, gid)
        if unprivileged:
            idmap.make_traversable(path.parent, Path("/"))
    return created


def _make_dirs(path: Path) -> None:
    """`path` and its missing parents, each 0755 whatever the umask: a directory Phoenix
    makes on the way to a source is one the guest may pass."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)


def _refuse_closed_parents(
    ctid: int, mount: MountSettings, path: Path, ranges: tuple[IdRange, ...]
) -> None:
    """DriverError for the first directory above `path` that others cannot pass and that
    is not Phoenix's (no marker in it or above it)."""
    parents = [p for p in reversed(path.parents) if p.exists()]
    owned = False
    for directory in parents:
        owned = owned or (directory / OWNED_MARKER).is_file()
        mode = stat.S_IMODE(directory.stat().st_mode)
        if owned or mode & stat.S_IXOTH:
            continue
        uid = idmaps.to_host(ranges, "u", 0)
        raise DriverError(
            f"guest {ctid}: mount {mount.target}: the guest's root (host uid {uid}) cannot "
            f"pass through {directory} (mode {mode:04o}) to reach {path}, and Phoenix does "
            f"not open directories it did not create: move the source out of {directory} "
            f"(e.g. under /srv), or let the guest through yourself (setfacl -m u:{uid}:x "
            f"{directory}, or chmod o+x {directory})"
        )

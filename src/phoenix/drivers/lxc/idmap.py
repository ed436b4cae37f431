"""Unprivileged guests: the uid/gid map and a rootfs owned by the shifted ids.

As on Proxmox, root in an unprivileged guest is uid 100000 on the host, so the guest's
files must be owned by 100000 + their in-guest id. Tarballs are unpacked inside a user
namespace (`lxc-usernsexec`), which shifts ownership, setuid bits and file capabilities the
way the kernel sees them; `shift_tree` re-owns an existing tree (a clone whose source had a
different mapping).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

ID_BASE = 100_000
ID_COUNT = 65_536


def idmap_keys() -> list[tuple[str, str]]:
    return [
        ("lxc.idmap", f"u 0 {ID_BASE} {ID_COUNT}"),
        ("lxc.idmap", f"g 0 {ID_BASE} {ID_COUNT}"),
    ]


def usernsexec_prefix() -> list[str]:
    """Run the rest of an argv as root of the guest's user namespace."""
    return [
        "lxc-usernsexec",
        "-m",
        f"b:0:{ID_BASE}:{ID_COUNT}",
        "--",
    ]


def has_subids(text: str, user: str = "root") -> bool:
    """True when /etc/subuid (or subgid) text delegates our whole range to `user`."""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] != user:
            continue
        if not (parts[1].isdigit() and parts[2].isdigit()):
            continue
        start, count = int(parts[1]), int(parts[2])
        if start <= ID_BASE and start + count >= ID_BASE + ID_COUNT:
            return True
    return False


def shift_tree(root: Path, delta: int) -> None:
    """Add `delta` to the owner and group of every file under `root` (itself included).

    chown clears setuid/setgid bits, so each non-link's mode is restored afterwards. Hard
    links share an inode, which is shifted once.
    """
    if delta == 0:
        return
    seen: set[tuple[int, int]] = set()
    _shift_one(root, delta, seen)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            _shift_one(Path(dirpath) / name, delta, seen)


def _shift_one(path: Path, delta: int, seen: set[tuple[int, int]]) -> None:
    st = os.lstat(path)
    if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
    uid = _clamp(st.st_uid + delta)
    gid = _clamp(st.st_gid + delta)
    os.lchown(path, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))


def _clamp(value: int) -> int:
    if value < 0:
        raise ValueError(f"id shift would make a negative id ({value})")
    return value


def make_traversable(path: Path, stop: Path) -> None:
    """Give `o+x` to `path` and its parents up to `stop`, so the mapped root can reach the
    rootfs (LXC needs this for unprivileged guests)."""
    current = path
    while True:
        mode = stat.S_IMODE(current.stat().st_mode)
        if not mode & stat.S_IXOTH:
            current.chmod(mode | stat.S_IXOTH)
        if current == stop or current.parent == current:
            return
        current = current.parent

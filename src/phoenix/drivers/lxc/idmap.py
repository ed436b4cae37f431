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

from phoenix.digits import is_digits
from phoenix.drivers import idmaps
from phoenix.drivers.idmaps import IdRange

ID_BASE = 100_000
ID_COUNT = 65_536


def idmap_keys() -> list[tuple[str, str]]:
    return [
        ("lxc.idmap", f"u 0 {ID_BASE} {ID_COUNT}"),
        ("lxc.idmap", f"g 0 {ID_BASE} {ID_COUNT}"),
    ]


def usernsexec_prefix(ranges: tuple[IdRange, ...] = ()) -> list[str]:
    """Run the rest of an argv as root of the guest's user namespace (its own map: a
    custom `id_maps` unpacks the rootfs with exactly the owners the guest will see)."""
    if not ranges:
        return ["lxc-usernsexec", "-m", f"b:0:{ID_BASE}:{ID_COUNT}", "--"]
    argv = ["lxc-usernsexec"]
    for r in ranges:
        argv += ["-m", f"{r.kind}:{r.guest}:{r.host}:{r.count}"]
    return [*argv, "--"]


def root_owner(unprivileged: bool, ranges: tuple[IdRange, ...] = ()) -> int:
    """Host id of the guest's root (uid and gid are the same: the inventory checks it)."""
    return idmaps.root(ranges)[0] if unprivileged else 0


def subid_problems(ranges: tuple[IdRange, ...], subuid: str, subgid: str) -> list[str]:
    """Each range of the guest's map that /etc/subuid or /etc/subgid does not delegate to
    root (LXC refuses to start such a guest)."""
    out: list[str] = []
    files: tuple[tuple[idmaps.Kind, str, str], ...] = (
        ("u", subuid, "/etc/subuid"),
        ("g", subgid, "/etc/subgid"),
    )
    for kind, text, name in files:
        for r in idmaps.uncovered(ranges, kind, text):
            out.append(f"{name} does not delegate {r.host}:{r.count} to root (for '{r.value}')")
    return out


def reown_tree(
    root: Path, src: tuple[IdRange, ...] | None, dst: tuple[IdRange, ...] | None
) -> None:
    """Re-own a copied rootfs from its source's map to the new guest's (None: privileged):
    one shift when both maps are plain offsets, id by id otherwise."""
    if src == dst:
        return
    src_off = 0 if src is None else idmaps.offset(src)
    dst_off = 0 if dst is None else idmaps.offset(dst)
    if src_off is not None and dst_off is not None:
        shift_tree(root, dst_off - src_off)
    else:
        remap_tree(root, src, dst)


def remap_tree(
    root: Path, src: tuple[IdRange, ...] | None, dst: tuple[IdRange, ...] | None
) -> None:
    """Re-own every file under `root` from the `src` map to the `dst` map (None: a
    privileged guest, host ids are guest ids). An id the new map lacks becomes the guest's
    nobody (65534), as the kernel would show it."""

    def move(kind: idmaps.Kind, host_id: int) -> int:
        guest = host_id if src is None else idmaps.to_guest(src, kind, host_id)
        if guest is None:
            guest = 65534
        if dst is None:
            return guest
        new = idmaps.to_host(dst, kind, guest)
        if new is None:
            new = idmaps.to_host(dst, kind, 65534)
        if new is None:
            raise ValueError(f"the new id map covers neither id {guest} nor nobody (65534)")
        return new

    seen: set[tuple[int, int]] = set()
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths += [Path(dirpath) / name for name in dirnames + filenames]
    for path in paths:
        st = os.lstat(path)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        os.lchown(path, move("u", st.st_uid), move("g", st.st_gid))
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))


def has_subids(text: str, user: str = "root") -> bool:
    """True when /etc/subuid (or subgid) text delegates our whole range to `user`."""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] != user:
            continue
        if not (is_digits(parts[1]) and is_digits(parts[2])):
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

"""Removing a lab's files from the host once its guests are gone: the LXC path, LXC's lock
dirs for it, the state dir (journal, locks, the gateway CA) and, when asked, the template
cache. Parents left empty are removed too while they are Phoenix's own (named `phoenix*`).

Nothing is removed while a guest still has a config in the LXC path or anything is mounted
below it: the CA and the journal still matter then, and a mounted rootfs is not ours to
delete through. And only what Phoenix created goes: a directory is removed only when it
carries Phoenix's marker (left when Phoenix made it), is a real directory (not a link),
holds no other Phoenix directory (another lab's), and has nothing on another filesystem
below it; any other is kept, and the user is told why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from phoenix.errors import PhoenixError
from phoenix.files import OWNED_MARKER

LXC_LOCK_ROOT = Path("/run/lxc/lock")
CA_DIR = "gateway-ca"


def guests_left(lxc_path: Path) -> list[str]:
    """Names of the guests (dirs with a config) still defined in `lxc_path`."""
    if not lxc_path.is_dir():
        return []
    return sorted(p.parent.name for p in lxc_path.glob("*/config"))


def mounts_below(path: Path, mounts: str) -> list[str]:
    """Mount points (from /proc/self/mounts text) at or below `path`."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) > 1:
            target = fields[1].replace("\\040", " ")
            if target == str(path) or target.startswith(prefix):
                found.append(target)
    return found


def not_ours(path: Path, mounts: str) -> str | None:
    """Why `path` is not Phoenix's to remove recursively, or None when it is. `mounts`:
    /proc/self/mounts text (a bind mount of the same filesystem keeps its device number)."""
    try:
        top = os.lstat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not os.path.isdir(path) or os.path.islink(path):
        return "it is not a directory"
    if not (path / OWNED_MARKER).is_file():
        return f"Phoenix did not create it (no {OWNED_MARKER} in it)"
    mounted = mounts_below(path, mounts)
    if mounted:
        return f"still mounted below it: {', '.join(mounted)}"
    for root, dirs, files in os.walk(path, onerror=_raise):
        here = Path(root)
        if here != path and OWNED_MARKER in files:
            return f"{here} is another Phoenix directory"
        for name in dirs + files:
            if os.lstat(here / name).st_dev != top.st_dev:
                return f"{here / name} is on another filesystem"
    return None


def _raise(exc: OSError) -> None:
    raise PhoenixError(f"{exc.filename}: cannot be read ({exc.strerror})")


def _remove_owned(path: Path, what: str, mounts: str) -> tuple[bool, list[str]]:
    """Remove `path` if it is Phoenix's (see `not_ours`); (removed, lines for the user)."""
    if not os.path.lexists(path):
        return False, []
    why = not_ours(path, mounts)
    if why is not None:
        return False, [f"kept {what} {path}: {why}; remove it yourself if it is the lab's"]
    shutil.rmtree(path)
    _remove_empty_phoenix_parents(path)
    return True, []


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return f"{total / 1e6:.0f} MB"


def _remove_empty_phoenix_parents(path: Path) -> None:
    for parent in path.parents:
        if not any(part.startswith("phoenix") for part in parent.parts):
            return
        try:
            parent.rmdir()
        except OSError:
            return


def remove_lab_files(
    state_dir: Path,
    lxc_path: Path,
    *,
    mounts: str,
    lock_root: Path = LXC_LOCK_ROOT,
) -> list[str]:
    """Remove the lab's LXC path and state dir; returns what was removed, for the user."""
    left = guests_left(lxc_path)
    if left:
        raise PhoenixError(
            f"guest(s) {', '.join(left)} still exist in {lxc_path}; delete them first "
            "(phoenix delete --all --yes)"
        )
    mounted = mounts_below(lxc_path, mounts)
    if mounted:
        raise PhoenixError(f"still mounted below {lxc_path}: {', '.join(mounted)}")
    removed, done = _remove_owned(lxc_path, "the LXC path", mounts)
    if removed:
        done.append(f"removed the LXC path {lxc_path}")
    locks = lock_root / str(lxc_path).lstrip("/")
    if (removed or not lxc_path.exists()) and locks.is_dir():
        shutil.rmtree(locks)
        for parent in locks.parents:
            if parent == lock_root.parent or not parent.is_relative_to(lock_root.parent):
                break
            try:
                parent.rmdir()
            except OSError:
                break
    ca = state_dir / CA_DIR / "ca.crt"
    had_ca = ca.is_file()
    removed, kept = _remove_owned(state_dir, "the state dir", mounts)
    done += kept
    if removed:
        done.append(f"removed the state dir {state_dir} (journal, locks, gateway CA and keys)")
        if had_ca:
            done.append(
                f"the gateway CA {ca} is gone: clients that trust it should drop it "
                "(a new lab makes a new CA)"
            )
    return done


def _mounts() -> str:
    return Path("/proc/self/mounts").read_text()


def template_cache_note(cache: Path, purge: bool, mounts: str | None = None) -> list[str]:
    """Remove the template cache (`purge`) or say where it is kept and how to remove it."""
    if not cache.is_dir():
        return []
    if purge:
        size = _size(cache)
        removed, kept = _remove_owned(
            cache, "the template cache", _mounts() if mounts is None else mounts
        )
        return [f"removed the template cache {cache} ({size})"] if removed else kept
    return [
        f"kept the template cache {cache} ({_size(cache)}) so a new lab starts fast; "
        "remove it with --purge"
    ]

"""Removing a lab's files from the host once its guests are gone: the LXC path, LXC's lock
dirs for it, the state dir (journal, locks, the gateway CA) and, when asked, the template
cache. Parents left empty are removed too while they are Phoenix's own (named `phoenix*`).

Nothing is removed while a guest still has a config in the LXC path or anything is mounted
below it: the CA and the journal still matter then, and a mounted rootfs is not ours to
delete through.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from phoenix.errors import PhoenixError

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
    done: list[str] = []
    if lxc_path.is_dir():
        shutil.rmtree(lxc_path)
        done.append(f"removed the LXC path {lxc_path}")
        _remove_empty_phoenix_parents(lxc_path)
    locks = lock_root / str(lxc_path).lstrip("/")
    if locks.is_dir():
        shutil.rmtree(locks)
        for parent in locks.parents:
            if parent == lock_root.parent or not parent.is_relative_to(lock_root.parent):
                break
            try:
                parent.rmdir()
            except OSError:
                break
    if state_dir.is_dir():
        ca = state_dir / CA_DIR / "ca.crt"
        had_ca = ca.is_file()
        shutil.rmtree(state_dir)
        done.append(f"removed the state dir {state_dir} (journal, locks, gateway CA and keys)")
        if had_ca:
            done.append(
                f"the gateway CA {ca} is gone: clients that trust it should drop it "
                "(a new lab makes a new CA)"
            )
        _remove_empty_phoenix_parents(state_dir)
    return done


def template_cache_note(cache: Path, purge: bool) -> list[str]:
    """Remove the template cache (`purge`) or say where it is kept and how to remove it."""
    if not cache.is_dir():
        return []
    if purge:
        size = _size(cache)
        shutil.rmtree(cache)
        _remove_empty_phoenix_parents(cache)
        return [f"removed the template cache {cache} ({size})"]
    return [
        f"kept the template cache {cache} ({_size(cache)}) so a new lab starts fast; "
        "remove it with --purge"
    ]

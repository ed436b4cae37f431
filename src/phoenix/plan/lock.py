"""One lock per host: two Phoenix runs never change the same host at once.

Taking the lock also ends what a killed holder left running (see `reaper`), so the lock
covers the work and not only the process that started it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from phoenix.errors import LockBusy
from phoenix.files import make_owned_dir
from phoenix.plan import reaper

LOCK_NAME = "phoenix.lock"


def lock_path(state_dir: Path) -> Path:
    return state_dir / LOCK_NAME


@contextmanager
def host_lock(state_dir: Path, wait: float = 0.0) -> Iterator[Path]:
    """Hold `<state_dir>/phoenix.lock` for the block; LockBusy if another run holds it."""
    path = lock_path(state_dir)
    make_owned_dir(state_dir)
    lock = filelock.FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=wait)
    except filelock.Timeout:
        raise LockBusy(
            f"another phoenix run holds the host lock {path}; wait for it to finish "
            "(the lock is released when that process exits)"
        ) from None
    try:
        reaper.reap(path)
        reaper.tag(path)
        yield path
    finally:
        lock.release()

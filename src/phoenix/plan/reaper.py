"""Children of a killed run die before the next run works: the lock covers the work.

Every process a run starts carries `PHOENIX_RUN=<lock path>|<pid of the run>` in its
environment (set when the run takes the host lock; children and their children inherit it).
When a run is killed (kill -9, OOM), the kernel frees its lock at once, but its `tar`,
`cp`, `lxc-snapshot` or `lxc-attach` may still be working. So the next holder of the same
lock first ends every process tagged with that lock and a pid that is gone, and waits for
them to exit. Left alone: processes of other locks (another lab, a concurrent test
session), LXC's container monitors (they are the containers), and anything inside a
container's own pid namespace (a detached recipe must finish; see `recipes.runner`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from phoenix.digits import is_digits

ENV = "PHOENIX_RUN"
PROC = Path("/proc")


def tag(lock: Path) -> str:
    """Mark this process (and so every child it starts) as working under `lock`."""
    value = f"{lock}|{os.getpid()}"
    os.environ[ENV] = value
    return value


def _tag_of(pid_dir: Path) -> str | None:
    try:
        environ = (pid_dir / "environ").read_bytes()
    except OSError:
        return None
    prefix = f"{ENV}=".encode()
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def _alive(pid: int, proc: Path = PROC) -> bool:
    """Running (a zombie has ended: it only waits for its parent to collect it)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def orphans(lock: Path, proc: Path = PROC) -> list[int]:
    """Pids working under `lock` for a run that no longer exists."""
    try:
        own_ns = os.readlink(proc / "self/ns/pid")
    except OSError:
        own_ns = None
    found = []
    for entry in proc.iterdir():
        if not is_digits(entry.name) or int(entry.name) == os.getpid():
            continue
        value = _tag_of(entry)
        if value is None:
            continue
        path, _, owner = value.rpartition("|")
        if path != str(lock) or not is_digits(owner) or _alive(int(owner)):
            continue
        try:
            if own_ns is not None and os.readlink(entry / "ns/pid") != own_ns:
                continue  # inside a container
            if (entry / "cmdline").read_bytes().startswith(b"[lxc monitor]"):
                continue  # a running container's monitor
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def reap(lock: Path, timeout: float = 30.0, proc: Path = PROC) -> list[int]:
    """Kill the orphans of an earlier run under `lock` and wait until they are gone."""
    pids = orphans(lock, proc)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(p, proc) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids

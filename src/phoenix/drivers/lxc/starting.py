"""Starting a guest that an interrupted run may have left half-started.

A run killed during `lxc-start` leaves that `lxc-start` behind: it goes on in the
background, and for a moment the guest is STARTING (or ABORTING, if it fails). A second
`lxc-start` in that moment fails with "Received container state ABORTING instead of
RUNNING" although nothing is wrong with the guest. So the next run first waits for the
guest to settle (RUNNING or STOPPED), starts it only when it is STOPPED, and after a
failed start looks again: RUNNING means the earlier start won; STOPPED is worth one
more try, since the leftovers of the interrupted start are gone once it has settled.
"""

from __future__ import annotations

import contextlib
import resource
import time

from phoenix.drivers.lxc.context import LxcContext

SETTLED = ("RUNNING", "STOPPED")
START_TRIES = 2
# The hard limit of open files a guest inherits from `lxc-start`: a Proxmox guest's
# (pve-container@.service sets none, so systemd's default for services, 524,288), never
# that of the shell running Phoenix. The gateway's nginx raises its soft limit to 16,384 a
# worker (its unit asks 65,536); under an `ulimit -Hn 4096` shell it silently stayed at
# ~1,024 connections a worker. (`lxc.prlimit.nofile` cannot raise it: LXC applies it
# inside an unprivileged guest's user namespace, and the start fails.)
GUEST_OPEN_FILES = 524288


def room_for_open_files() -> None:
    """Raise this process's hard limit of open files (inherited by `lxc-start` and so by
    the guest) to GUEST_OPEN_FILES; never lower it. Needs root, as the driver does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < GUEST_OPEN_FILES:
        # Not root: the guest gets what this process has.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, GUEST_OPEN_FILES))


def settle(ctx: LxcContext, ctid: int, deadline: float) -> str:
    """The guest's state once it is RUNNING or STOPPED (or the deadline passed):
    `lxc-wait` blocks on LXC's own state events, so no polling."""
    state = ctx.state(ctid)
    if state in SETTLED:
        return state
    left = max(1, int(deadline - time.monotonic()))
    ctx.run("observe", ctx.lxc("lxc-wait", ctid, "-s", "|".join(SETTLED), "-t", str(left)))
    return ctx.state(ctid)


def start(ctx: LxcContext, ctid: int, deadline: float) -> None:
    """Start the guest unless it is (or becomes) RUNNING; CommandFailed when it cannot."""
    for attempt in range(1, START_TRIES + 1):
        if settle(ctx, ctid, deadline) == "RUNNING":
            return
        room_for_open_files()
        result = ctx.run("mutate", ctx.lxc("lxc-start", ctid))
        if result.ok or attempt == START_TRIES:
            result.check(f"starting guest {ctid}")
            return

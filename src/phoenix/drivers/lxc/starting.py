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

import time

from phoenix.drivers.lxc.context import LxcContext

SETTLED = ("RUNNING", "STOPPED")
START_TRIES = 2


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
        result = ctx.run("mutate", ctx.lxc("lxc-start", ctid))
        if result.ok or attempt == START_TRIES:
            result.check(f"starting guest {ctid}")
            return

"""Waiting for a started guest to be ready: init runs, its address is up, systemd booted.

Polling with a deadline, but as little of it as possible: while systemd has no control
socket yet a stat through /proc/PID/root every 10 ms (no process), then one
`systemctl is-system-running --wait` that blocks inside the guest until boot is over.
"""

from __future__ import annotations

import time
from pathlib import Path

from phoenix.digits import is_digits
from phoenix.drivers.lxc.config import ParsedConfig
from phoenix.drivers.lxc.context import LxcContext
from phoenix.errors import DriverError
from phoenix.runners.base import TIMED_OUT

# "offline": systemctl cannot reach systemd yet (it has not opened its socket).
NOT_READY = frozenset({"", "offline", "initializing", "starting"})
INIT_RENAME_GRACE = 2.0  # seconds an init still called "init" may take to show it is systemd


def wanted_ip(parsed: ParsedConfig) -> str | None:
    """The static address the guest's config gives its veth NIC, if any."""
    address = parsed.get("lxc.net.0.ipv4.address")
    if parsed.get("lxc.net.0.type") == "veth" and address:
        return address.split(" ")[0].split("/")[0]
    return None


def wait_ready(
    ctx: LxcContext,
    ctid: int,
    parsed: ParsedConfig,
    deadline: float,
    poll_interval: float,
    proc: Path = Path("/proc"),
) -> None:
    """Poll until init runs, the address is configured and systemd finished booting."""
    want_ip = wanted_ip(parsed)
    status = "not running"
    while True:
        if ctx.running(ctid):
            await_systemd_bus(ctx, ctid, deadline, proc)
            if want_ip is not None and want_ip not in ctx.ips(ctid):
                status = f"address {want_ip} not up yet"
            else:
                status = init_status(ctx, ctid, deadline)
                if status not in NOT_READY:
                    return
        if time.monotonic() >= deadline:
            raise DriverError(f"guest {ctid} did not become ready in time ({status})")
        time.sleep(poll_interval)


def await_systemd_bus(
    ctx: LxcContext, ctid: int, deadline: float, proc_root: Path = Path("/proc")
) -> None:
    """Until the guest's systemd has its control socket (a `systemctl` run before that
    fails at once, costing a poll interval): a stat through /proc/PID/root every 10 ms,
    no process. Returns early when init is not systemd or cannot be seen."""
    res = ctx.run("observe", ctx.lxc("lxc-info", ctid, "-p", "-H"))
    pid = res.stdout.strip()
    if not res.ok or not is_digits(pid):
        return
    proc = proc_root / pid
    bus = proc / "root/run/systemd/private"
    late = min(deadline, time.monotonic() + INIT_RENAME_GRACE)
    while not bus.exists() and time.monotonic() < deadline:
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            return  # init is gone; the caller's state check reports it
        # systemd names itself "systemd" early; "init" may still be systemd until then
        if comm != "systemd" and (comm != "init" or time.monotonic() >= late):
            return
        time.sleep(0.01)


def init_status(ctx: LxcContext, ctid: int, deadline: float) -> str:
    """systemd's state once boot is over: `--wait` blocks inside the guest until then,
    so there is no polling while systemd boots (bounded by the deadline)."""
    argv = ctx.lxc(
        "lxc-attach", ctid, "--clear-env", "--", "systemctl", "is-system-running", "--wait"
    )
    wait = max(1.0, min(60.0, deadline - time.monotonic()))
    res = ctx.run("observe", argv, timeout=wait)
    if res.returncode == TIMED_OUT:  # still booting when the wait ran out
        return "starting"
    out = res.stdout.strip()
    if res.returncode in (126, 127):  # no systemctl in the guest: init is not systemd
        return "no systemd"
    return out

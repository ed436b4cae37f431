"""Changes to a running guest (the config makes them stick across restarts).

A running guest's veth must hang on its bridge, its cgroup limits change through
`lxc-cgroup` without a restart, and a linked guest's identity files are replaced from
inside. Its bridge must exist before it starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.lxc import cgroups
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import ParsedConfig
from phoenix.drivers.lxc.context import LxcContext
from phoenix.errors import CommandFailed, DriverError
from phoenix.runners.base import CommandResult

DETACHED = "(detached)"
LIVE_LIMITS = frozenset({"memory_mb", "swap_mb", "cores"})


def check_bridge(ctx: LxcContext, ctid: int, parsed: ParsedConfig) -> None:
    """DriverError when the guest's bridge is missing (LXC's own error is obscure)."""
    bridge = parsed.get("lxc.net.0.link")
    if parsed.get("lxc.net.0.type") != "veth" or not bridge:
        return
    if not ctx.run("observe", ["ip", "-j", "link", "show", "dev", bridge]).ok:
        raise DriverError(
            f"guest {ctid} needs bridge {bridge!r}, which does not exist; "
            "run `phoenix setup` to create it"
        )


def attached(ctx: LxcContext, ctid: int, settings: GuestSettings) -> GuestSettings:
    """A running guest's veth must hang on its bridge: a bridge deleted and made again
    (`ip link del`, then `phoenix setup`) leaves it detached and the guest unreachable.
    Such a NIC observes as on bridge DETACHED, so the plan configures it again."""
    net = settings.net
    if net is None or not net.bridge:
        return settings
    res = ctx.run("observe", ["ip", "-j", "link", "show", "dev", lxcconf.veth_name(ctid)])
    try:
        links = json.loads(res.stdout or "[]") if res.ok else []
    except ValueError:
        links = []
    if links and isinstance(links[0], dict) and links[0].get("master") != net.bridge:
        return replace(settings, net=replace(net, bridge=DETACHED))
    return settings


def attach(ctx: LxcContext, ctid: int, parsed: ParsedConfig, bridge: str) -> None:
    """Hang a running guest's veth on its bridge again (see `attached`)."""
    check_bridge(ctx, ctid, parsed)
    veth = lxcconf.veth_name(ctid)
    ctx.run("mutate", ["ip", "link", "set", "dev", veth, "master", bridge]).check(
        f"attaching guest {ctid}'s {veth} to {bridge}"
    )
    ctx.run("mutate", ["ip", "link", "set", "dev", veth, "up"]).check(
        f"bringing guest {ctid}'s {veth} up"
    )


def apply_limits(ctx: LxcContext, cgroup: CgroupHost, ctid: int, settings: GuestSettings) -> None:
    """Running guests get new limits now; the config makes them stick across restarts.

    cgroup v1 refuses memory > memsw (and memsw < memory), so whichever write fails is
    retried once after the others went through."""
    prefix = cgroup.prefix + "."
    pending = [
        (key[len(prefix) :], value)
        for key, value in cgroups.limit_keys(
            cgroup, ctid, settings.memory_mb, settings.swap_mb, settings.cores
        )
    ]
    failed: list[tuple[str, str, CommandResult]] = []
    for _ in range(2):
        failed = []
        for name, value in pending:
            res = ctx.run("mutate", ctx.lxc("lxc-cgroup", ctid, name, value))
            if not res.ok:
                failed.append((name, value, res))
        if not failed:
            return
        pending = [(name, value) for name, value, _ in failed]
    failed[0][2].check(f"setting {failed[0][0]} on running guest {ctid}")


def write_files(
    exec: Callable[..., CommandResult], ctid: int, files: Sequence[tuple[str, str]]
) -> None:
    """A running linked guest's upper dir must not change under its mounted overlay
    (overlayfs leaves that undefined): the files are replaced from inside instead.
    `files` are (path in the guest, content); `exec` is the driver's."""
    script = 'cat > "$1.new" && chmod 644 "$1.new" && mv -f "$1.new" "$1"'
    for relative, text in files:
        argv = ["sh", "-c", script, "sh", "/" + relative]
        res = exec(ctid, argv, stdin=text.encode())
        if not res.ok:
            context = f"writing /{relative} in guest {ctid}"
            raise CommandFailed(argv, res.returncode, res.stdout, res.stderr, context)

"""Snapshots of LXC guests, taken with `lxc-snapshot` and named by its comment.

LXC numbers snapshots (`snaps/snap0`, `snap1`...); Phoenix's name for one is the comment
lxc-snapshot writes as its last act. A snapshot counts only once that comment is there and
its rootfs is whole, so a clone never uses a half-copied one; what an interrupted snapshot
or delete left is removed before the next snapshot is taken. A snapshot that is the lower
layer of a linked clone cannot be deleted while the clone exists.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from phoenix.digits import is_digits
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc import linked
from phoenix.drivers.lxc.context import LxcContext
from phoenix.errors import DriverError


def is_complete(snap: Path) -> bool:
    """lxc-snapshot copies config and rootfs, then writes `ts` and the comment (its last
    act): a snapshot without them, or whose rootfs is gone, is the remains of an
    interrupted snapshot or delete."""
    conf = snap / "config"
    if not (snap / "comment").is_file() or not conf.is_file():
        return False
    try:
        parsed = lxcconf.parse(conf.read_text())
    except OSError:
        return False
    # lxc-snapshot appends its new rootfs line at the end, after Phoenix's raw section
    values = [v for k, v in (*parsed.managed, *parsed.raw) if k == "lxc.rootfs.path"]
    value = values[-1] if values else ""
    if value.startswith("overlay"):  # a linked clone's snapshot: its upper over the base
        return True
    path = Path(value.split(":", 1)[1]) if value.startswith("dir:") else Path(value or "-")
    return (path / "etc").is_dir() or (snap / "rootfs" / "etc").is_dir()


def refuse_if_linked(ctx: LxcContext, ctid: int, snapshot_dir: str | None, what: str) -> None:
    """DriverError when a linked clone has its lower layer in `ctid`'s snapshot
    `snapshot_dir` (any snapshot when None)."""
    deps = sorted(
        {
            d.ctid
            for d in linked.dependents(ctx.lxc_path, ctid)
            if snapshot_dir is None or d.snapshot_dir == snapshot_dir
        }
    )
    if deps:
        names = ", ".join(str(d) for d in deps)
        raise DriverError(
            f"cannot {what}: linked clone(s) {names} use it as their base layer; "
            "delete those guests first"
        )


class Snapshots:
    """List, take and delete the snapshots of the guests in one LXC path."""

    def __init__(self, ctx: LxcContext) -> None:
        self.ctx = ctx

    def all(self, ctid: int) -> list[tuple[str, Path]]:
        """(Phoenix name, snapshot dir) in creation order; the name is lxc-snapshot's comment."""
        snaps = self.ctx.dir(ctid) / "snaps"
        found: list[tuple[int, str, Path]] = []
        if not snaps.is_dir():
            return []
        for entry in snaps.iterdir():
            if not entry.name.startswith("snap") or not is_digits(entry.name[4:]):
                continue
            if not is_complete(entry):
                continue
            name = (entry / "comment").read_text().strip()
            found.append((int(entry.name[4:]), name, entry))
        return [(name, path) for _, name, path in sorted(found)]

    def names(self, ctid: int) -> list[str]:
        return [name for name, _ in self.all(ctid)]

    def find(self, ctid: int, name: str) -> Path | None:
        for snap_name, path in self.all(ctid):
            if snap_name == name:
                return path
        return None

    def clear_incomplete(self, ctid: int) -> None:
        """Snapshot dirs an interrupted lxc-snapshot left (before a new one is taken)."""
        snaps = self.ctx.dir(ctid) / "snaps"
        if not snaps.is_dir():
            return
        for entry in sorted(snaps.iterdir()):
            if entry.name.startswith("snap") and not is_complete(entry):
                self.ctx.remove_tree(
                    entry, f"removing {entry}, an incomplete snapshot of guest {ctid}"
                )

    def take(self, ctid: int, name: str) -> None:
        """Snapshot a stopped guest as `name` (lxc-snapshot refuses a running one: a
        dir-backed rootfs can only be copied consistently while the guest is stopped)."""
        with tempfile.NamedTemporaryFile("w", suffix=".comment", delete=False) as fh:
            fh.write(name + "\n")
        try:
            argv = self.ctx.lxc("lxc-snapshot", ctid, "-c", fh.name)
            self.ctx.run("mutate", argv).check(f"snapshotting guest {ctid} as {name!r}")
        finally:
            os.unlink(fh.name)

"""Linked clones: a guest whose rootfs is an overlay on a snapshot of another guest.

Copying a ~400 MB rootfs per clone is metadata bound and does not scale with parallel
clones; an overlay needs two empty dirs. The price is a dependency: the snapshot's rootfs
is the clone's lower layer, so the snapshot (and its guest) must outlive every clone that
uses it. The dependency is recorded where LXC reads it, the clone's `lxc.rootfs.path`
(`overlay:<lower>:<upper>`), and found again by scanning the LXC path, so it cannot drift
from what LXC actually mounts.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from phoenix.digits import is_digits
from phoenix.drivers.lxc import config as lxcconf
from phoenix.errors import DriverError

# Relative to the clone's dir. LXC 5 puts the overlay's workdir beside the upper dir
# (`<dirname(upper)>/work`); both are made up front because an unprivileged guest mounts
# its rootfs inside its user namespace, where the mapped root cannot create them.
UPPER = Path("overlay/delta")
WORK = Path("overlay/work")
# Overlay mount options are a comma list and LXC splits the rootfs path at ':'.
_UNSAFE = (":", ",")


def paths_usable(*paths: Path) -> bool:
    """True when the paths can stand in an overlay rootfs spec and its mount options."""
    return not any(c in str(p) for p in paths for c in _UNSAFE)


def prepare(cdir: Path, lower: Path) -> Path:
    """Make the clone's empty upper and work dirs; the upper's root mirrors the lower's
    (the merged root takes its owner and mode from the upper)."""
    st = os.lstat(lower)
    if not stat.S_ISDIR(st.st_mode):
        raise DriverError(f"{lower} is not a directory")
    upper, work = cdir / UPPER, cdir / WORK
    for path, mode in ((upper.parent, 0o755), (upper, stat.S_IMODE(st.st_mode)), (work, 0o755)):
        path.mkdir(mode=0o700)
        os.chown(path, st.st_uid, st.st_gid)
        path.chmod(mode)
    return upper


@dataclass(frozen=True)
class Dependent:
    """Guest `ctid` (or one of its snapshots) has its lower layer in a snapshot of `source`."""

    ctid: int
    source: int
    snapshot_dir: str  # "snap0", ... under the source's `snaps/`


def dependents(lxc_path: Path, source: int) -> list[Dependent]:
    """Every guest in `lxc_path` whose rootfs, or a snapshot's, lies on `source`'s snapshots."""
    base = (lxc_path / str(source) / "snaps").resolve()
    found: list[Dependent] = []
    if not lxc_path.is_dir():
        return found
    for entry in sorted(lxc_path.iterdir(), key=lambda p: p.name):
        if not is_digits(entry.name) or int(entry.name) == source:
            continue
        configs = [entry / "config", *sorted((entry / "snaps").glob("snap*/config"))]
        for conf in configs:
            snap = _lower_snapshot(conf, base)
            if snap is not None:
                found.append(Dependent(int(entry.name), source, snap))
    return found


def _lower_snapshot(conf: Path, base: Path) -> str | None:
    if not conf.is_file():
        return None
    spec = lxcconf.rootfs_spec(lxcconf.parse(conf.read_text()))
    if spec is None or spec.lower is None:
        return None
    try:
        rel = spec.lower.resolve().relative_to(base)
    except ValueError:
        return None
    return rel.parts[0] if rel.parts else None


def merged_mount_argv(spec: lxcconf.RootfsSpec, target: Path) -> list[str]:
    """Mount a linked rootfs read-only (upper over lower) to copy it as one tree."""
    assert spec.lower is not None
    opts = ["ro"]
    if "userxattr" in spec.options.split(","):
        opts.append("userxattr")
    opts.append(f"lowerdir={spec.path}:{spec.lower}")
    return ["mount", "-t", "overlay", "overlay", "-o", ",".join(opts), str(target)]

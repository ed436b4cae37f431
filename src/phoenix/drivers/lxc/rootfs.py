"""A new guest's root filesystem: unpacked from a template, or cloned from another guest.

A clone is linked (an overlay on the source's snapshot, two empty dirs) when it can be,
else a full copy whose file owners are shifted when the source's id map differs from the
clone's. Everything here happens in the guest's own dir before its `config` exists, so an
interruption leaves only a dir the next create or clone removes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import mkdtemp
from typing import Literal

from phoenix.drivers import idmaps
from phoenix.drivers.idmaps import IdRange
from phoenix.drivers.lxc import guestfiles, idmap, linked
from phoenix.drivers.lxc.config import RootfsSpec
from phoenix.drivers.lxc.context import LxcContext
from phoenix.drivers.lxc.templates import resolve_template
from phoenix.errors import DriverError
from phoenix.files import make_owned_dir

CloneMode = Literal["linked", "full"]
CLONE_MODES: tuple[CloneMode, ...] = ("linked", "full")

# What tar keeps when unpacking a template (LXC populates /dev itself; device nodes cannot
# be made in a user namespace).
_TAR_FLAGS = (
    "--numeric-owner",
    "--xattrs",
    "--xattrs-include=security.capability",
    "--xattrs-include=user.*",
    "--exclude=./dev/*",
)


def owner(unprivileged: bool, ranges: tuple[IdRange, ...] = ()) -> int:
    """The host uid (and gid) of the guest's root, through its id map (() is the default)."""
    return idmap.root_owner(unprivileged, ranges)


class Rootfs:
    """Make guests' root filesystems in one LXC path."""

    def __init__(
        self,
        ctx: LxcContext,
        template_cache: Path,
        subid_files: tuple[Path, ...],
        clone_mode: CloneMode = "linked",
    ) -> None:
        if clone_mode not in CLONE_MODES:
            raise DriverError(f"unknown LXC clone mode {clone_mode!r} (linked or full)")
        self.ctx = ctx
        self.template_cache = template_cache
        self.subid_files = subid_files
        self.clone_mode: CloneMode = clone_mode

    def check_subids(self, ranges: tuple[IdRange, ...] = ()) -> None:
        """An unprivileged guest needs its id ranges delegated to root (`phoenix setup`
        delegates the default map and every range the inventory's `id_maps` use)."""
        texts = [p.read_text() if p.exists() else "" for p in self.subid_files]
        if not ranges:
            for path, text in zip(self.subid_files, texts, strict=True):
                if not idmap.has_subids(text):
                    raise DriverError(
                        f"{path} does not delegate {idmap.ID_BASE}:{idmap.ID_COUNT} to root; "
                        "run `phoenix setup` first"
                    )
            return
        problems = idmap.subid_problems(ranges, *texts)
        if problems:
            raise DriverError(
                "the guest's id_maps use host ids root was not given: "
                + "; ".join(problems)
                + " (run `phoenix setup`, or add 'root:START:COUNT' lines covering them)"
            )

    def make_dir(self, ctid: int) -> Path:
        """The guest's own dir (it must not exist yet)."""
        make_owned_dir(self.ctx.lxc_path)
        cdir = self.ctx.dir(ctid)
        self.ctx.log.file("mkdir", cdir)
        cdir.mkdir(mode=0o755)
        cdir.chmod(0o755)
        return cdir

    def remove(self, ctid: int) -> None:
        """What a failed create or clone made (never checked: the error is the caller's)."""
        self.ctx.run("mutate", ["rm", "-rf", "--one-file-system", "--", str(self.ctx.dir(ctid))])

    # ---- from a template ----------------------------------------------------------------

    def template(self, template: str) -> Path:
        """The template's tarball (built or downloaded into the cache when missing)."""
        return resolve_template(
            template, self.template_cache, lambda argv: self.ctx.run("mutate", argv)
        )

    def new_dir(self, ctid: int, unprivileged: bool, ranges: tuple[IdRange, ...] = ()) -> Path:
        """The guest's dir with an empty rootfs owned by the guest's root."""
        cdir = self.make_dir(ctid)
        rootfs = cdir / "rootfs"
        rootfs.mkdir(mode=0o755)
        if unprivileged:
            idmap.make_traversable(cdir, Path("/"))
            uid = owner(unprivileged, ranges)
            os.chown(rootfs, uid, uid)
        return rootfs

    def unpack(
        self,
        ctid: int,
        tarball: Path,
        rootfs: Path,
        unprivileged: bool,
        ranges: tuple[IdRange, ...] = (),
    ) -> None:
        """Unpack the template (inside the guest's user namespace when unprivileged, so
        owners come out shifted) and mask the units a container cannot run."""
        extract = ["tar", "-xpf", str(tarball), "-C", str(rootfs), *_TAR_FLAGS]
        if unprivileged:
            extract = idmap.usernsexec_prefix(ranges) + extract
        self.ctx.run("mutate", extract).check(f"unpacking {tarball} for guest {ctid}")
        masked = guestfiles.mask_for_container(rootfs, owner(unprivileged, ranges))
        if masked:
            self.ctx.log.file("mask-units", rootfs, *masked)

    # ---- from another guest ---------------------------------------------------------------

    def clone(
        self,
        ctid: int,
        source: int,
        src: RootfsSpec,
        *,
        from_snapshot: bool,
        src_unprivileged: bool,
        unprivileged: bool,
        src_ranges: tuple[IdRange, ...] = (),
        ranges: tuple[IdRange, ...] = (),
    ) -> RootfsSpec:
        """The clone's rootfs in its (made) dir: linked when possible, else a full copy.

        Linked needs a snapshot whose rootfs is a plain dir and the same unprivileged id
        map on both sides (an overlay cannot shift ids); privileged linked clones are not
        proven here and get full copies."""
        cdir = self.ctx.dir(ctid)
        link = (
            self.clone_mode == "linked"
            and from_snapshot
            and not src.linked
            and unprivileged
            and src_unprivileged
            and idmaps.effective(src_ranges) == idmaps.effective(ranges)
            and linked.paths_usable(src.path, cdir)
        )
        if link:
            self.ctx.log.file("link-rootfs", cdir / linked.UPPER, f"over {src.path}")
            spec = RootfsSpec(linked.prepare(cdir, src.path), src.path)
        else:
            spec = RootfsSpec(self._copy(src, cdir / "rootfs", source, ctid))
            old = idmaps.effective(src_ranges) if src_unprivileged else None
            new = idmaps.effective(ranges) if unprivileged else None
            if old != new:
                self.ctx.log.file("shift-ids", spec.path, "to the clone's id map")
                idmap.reown_tree(spec.path, old, new)
        if unprivileged:
            idmap.make_traversable(cdir, Path("/"))
        uid = owner(unprivileged, ranges)
        guestfiles.write(spec.path, "etc/machine-id", "", uid, 0o444, lower=spec.lower)
        return spec

    def _copy(self, src: RootfsSpec, dest: Path, source: int, ctid: int) -> Path:
        with self._readable_tree(src) as tree:
            self.ctx.run("mutate", ["cp", "-a", "--", str(tree), str(dest)]).check(
                f"copying guest {source}'s rootfs for clone {ctid}"
            )
        return dest

    @contextmanager
    def _readable_tree(self, spec: RootfsSpec) -> Iterator[Path]:
        """The rootfs as one tree: a dir as it is, a linked rootfs mounted read-only."""
        if spec.lower is None:
            yield spec.path
            return
        target = Path(mkdtemp(prefix=".merged-", dir=self.ctx.lxc_path))
        try:
            self.ctx.run("mutate", linked.merged_mount_argv(spec, target)).check(
                f"mounting linked rootfs {spec.path} to copy it"
            )
            try:
                yield target
            finally:
                self.ctx.run("mutate", ["umount", str(target)]).check(f"unmounting {target}")
        finally:
            target.rmdir()

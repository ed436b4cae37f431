"""The local LXC driver: Phoenix guest semantics with Debian's `lxc-*` tools.

Containers live in a dedicated LXC path (so Phoenix never sees or touches other containers
on the host) and are named by their CTID. The driver sequences its parts, each with one
job: `rootfs` (unpack a template, linked or full clone, id shift), `definition` (the
config, phoenix.json and identity files), `firewall` (the guest's nft chains),
`snapshots`, `readiness` (waiting for a started guest) and `live` (a running guest's
network and limits). Every host command goes through a Runner and is logged in
`self.log` as "observe" (reads), "mutate" (changes the host or a guest's definition) or
"exec" (work inside a running guest); files Phoenix changes in-process are logged as
"file" entries, so "a converged re-run logs no mutation" really means nothing changed.

Interruptions (kill -9, power loss) never leave a guest half-made or half-deleted where LXC
or the planner would take it for a whole one: a guest exists exactly when its `config` does,
and that file is written last (atomically) by create and clone; destroy first renames the
guest's dir to `.deleting-<ctid>` (one atomic step: the guest is gone) and then removes it.
What an interruption leaves (a dir without config, a `.deleting-` dir, a snapshot without
its comment) is reported by `observe` as `leftover` and removed by the next create,
clone, destroy or snapshot.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from phoenix.drivers import idmaps
from phoenix.drivers.base import CommandLog, GuestSettings, ObservedGuest
from phoenix.drivers.lxc import cgroups, firewall, linked, live, readiness, starting
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, ParsedConfig, RootfsSpec
from phoenix.drivers.lxc.context import LxcContext
from phoenix.drivers.lxc.definition import META_FILE, Definitions
from phoenix.drivers.lxc.rootfs import CLONE_MODES, CloneMode, Rootfs
from phoenix.drivers.lxc.snapshots import Snapshots, refuse_if_linked
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Runner, Stdin
from phoenix.runners.local import LocalRunner

__all__ = ["CLONE_MODES", "META_FILE", "CloneMode", "LxcDriver", "generate_mac"]

APPARMOR_DIR = Path("/sys/kernel/security/apparmor")
DELETING = ".deleting-"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Settings LXC applies only when the guest starts.
MOUNT_FIELDS = frozenset({"mounts", "gpus"})


def generate_mac(rng: random.Random | None = None) -> str:
    """A random locally administered unicast MAC (02:...), as LXC's `xx:xx` template does."""
    r = rng or random.SystemRandom()
    return "02:" + ":".join(f"{r.randrange(256):02X}" for _ in range(5))


class LxcDriver:
    """Driver for containers managed with `lxc-*` under one LXC path."""

    name = "lxc"

    def __init__(
        self,
        lxc_path: Path,
        template_cache: Path,
        runner: Runner | None = None,
        state_dir: Path | None = None,
        *,
        fw_table: str = firewall.DEFAULT_TABLE,
        cgroup: CgroupHost | None = None,
        apparmor: bool | None = None,
        resolv_conf: Path = Path("/etc/resolv.conf"),
        subid_files: tuple[Path, ...] = (Path("/etc/subuid"), Path("/etc/subgid")),
        poll_interval: float = 0.3,
        clone_mode: CloneMode = "linked",
        proc_devices: Path = Path("/proc/devices"),
        dev_dir: Path = Path("/dev"),
    ) -> None:
        self.lxc_path = Path(lxc_path)
        self.runner: Runner = runner or LocalRunner()
        self.log = CommandLog()
        self.ctx = LxcContext(self.lxc_path, self.runner, self.log)
        self.warnings = self.ctx.warnings
        self.rootfs = Rootfs(self.ctx, Path(template_cache), subid_files, clone_mode)
        self.cgroup = cgroup or cgroups.detect()
        self.defs = Definitions(
            self.ctx,
            cgroup=self.cgroup,
            apparmor=APPARMOR_DIR.is_dir() if apparmor is None else apparmor,
            resolv_conf=resolv_conf,
            proc_devices=proc_devices,
            dev_dir=dev_dir,
        )
        self.state_dir = Path(state_dir) if state_dir else self.lxc_path
        self.fw_table = fw_table
        self.firewall = firewall.GuestFirewall(
            self.ctx, fw_table, self.state_dir, lxcconf.veth_name, self.defs.exists
        )
        self.snaps = Snapshots(self.ctx)
        self.poll_interval = poll_interval

    @property
    def clone_mode(self) -> CloneMode:
        return self.rootfs.clone_mode

    # ---- reading ----------------------------------------------------------------------

    def _settings(self, ctid: int, parsed: ParsedConfig, meta: GuestMeta) -> GuestSettings:
        settings = lxcconf.to_settings(parsed, meta)
        if settings.firewall_enabled:
            applied = self.firewall.state().applied_marker(ctid)
            if applied != firewall.marker(settings.firewall_rules):
                settings = replace(settings, firewall_enabled=False, firewall_rules=())
        return settings

    def _trash(self, ctid: int) -> Path:
        return self.lxc_path / f"{DELETING}{ctid}"

    def _leftover(self, ctid: int) -> str | None:
        """What an interrupted create/clone or destroy left of a missing guest (or what
        outlived a guest removed behind Phoenix's back: its firewall chains)."""
        found = []
        if self.lxc_path.is_dir() and ctid in self.firewall.state().guests():
            found.append(f"its firewall chains in bridge {self.fw_table}")
        cdir = self.ctx.dir(ctid)
        if cdir.exists():
            found.append(f"{cdir} (a create or clone stopped before its config)")
        if self._trash(ctid).exists():
            found.append(f"{self._trash(ctid)} (a delete that did not finish)")
        return "; ".join(found) or None

    def _clear_leftovers(self, ctid: int) -> None:
        """Remove what an interrupted create/clone or destroy left (never a whole guest)."""
        cdir = self.ctx.dir(ctid)
        for path in (self._trash(ctid), cdir):
            if path.exists() and not (path == cdir and (path / "config").exists()):
                self.ctx.remove_tree(path, f"removing {path}, left by an interrupted run")

    def observe(self, ctid: int) -> ObservedGuest:
        parsed = self.defs.config(ctid)
        if parsed is None:
            return ObservedGuest(ctid, "missing", leftover=self._leftover(ctid))
        meta = self.defs.meta(ctid)
        running = self.ctx.running(ctid)
        settings = self._settings(ctid, parsed, meta)
        return ObservedGuest(
            ctid,
            "running" if running else "stopped",
            settings=live.attached(self.ctx, ctid, settings) if running else settings,
            snapshots=tuple(self.list_snapshots(ctid)),
            is_template=meta.template,
            ip_addresses=self.ctx.ips(ctid) if running else (),
        )

    # ---- creating -----------------------------------------------------------------------

    def _require_missing(self, ctid: int) -> None:
        if self.defs.exists(ctid):
            raise DriverError(f"guest {ctid} already exists in {self.lxc_path}")

    def _require(self, ctid: int) -> ParsedConfig:
        parsed = self.defs.config(ctid)
        if parsed is None:
            raise DriverError(f"guest {ctid} does not exist in {self.lxc_path}")
        return parsed

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        self._require_missing(ctid)
        self._clear_leftovers(ctid)
        if settings.unprivileged:
            self.rootfs.check_subids(idmaps.from_raw(settings.raw_lxc))
        tarball = self.rootfs.template(template)
        rootfs = self.rootfs.new_dir(ctid, settings.unprivileged, idmaps.from_raw(settings.raw_lxc))
        try:
            self.rootfs.unpack(
                ctid, tarball, rootfs, settings.unprivileged, idmaps.from_raw(settings.raw_lxc)
            )
            self._finish_new_guest(ctid, RootfsSpec(rootfs), settings, GuestMeta.of(settings))
        except BaseException:
            self.rootfs.remove(ctid)
            raise

    def _clone_source(
        self, source: int, snapshot: str | None, conf: ParsedConfig
    ) -> tuple[ParsedConfig, RootfsSpec]:
        """The config and rootfs a clone copies: the snapshot's, or the stopped guest's."""
        if snapshot is not None:
            snap_dir = self.snaps.find(source, snapshot)
            if snap_dir is None:
                raise DriverError(f"guest {source} has no snapshot {snapshot!r} to clone from")
            snap_conf = snap_dir / "config"
            if snap_conf.is_file():
                conf = lxcconf.parse(snap_conf.read_text())
            return conf, lxcconf.rootfs_spec(conf) or RootfsSpec(snap_dir / "rootfs")
        if self.ctx.running(source):
            raise DriverError(
                f"guest {source} is running: clone from a snapshot or a stopped template"
            )
        return conf, self.defs.rootfs(source, conf)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        """A linked clone (overlay on the snapshot) when possible, else a full copy."""
        src_conf = self._require(source)
        self._require_missing(ctid)
        self._clear_leftovers(ctid)
        src_conf, src = self._clone_source(source, snapshot, src_conf)
        if settings.unprivileged:
            self.rootfs.check_subids(idmaps.from_raw(settings.raw_lxc))
        self.rootfs.make_dir(ctid)
        meta = replace(GuestMeta.of(settings), template_source=f"{source}@{snapshot or ''}")
        try:
            spec = self.rootfs.clone(
                ctid,
                source,
                src,
                from_snapshot=snapshot is not None,
                src_unprivileged=bool(src_conf.idmap_values()),
                unprivileged=settings.unprivileged,
                src_ranges=idmaps.from_raw(("lxc.idmap", v) for v in src_conf.idmap_values()),
                ranges=idmaps.from_raw(settings.raw_lxc),
            )
            self._finish_new_guest(ctid, spec, settings, meta)
        except BaseException:
            self.rootfs.remove(ctid)
            raise

    def _finish_new_guest(
        self, ctid: int, rootfs: RootfsSpec, settings: GuestSettings, meta: GuestMeta
    ) -> None:
        if settings.net is not None and settings.net.mac is None:
            settings = replace(settings, net=replace(settings.net, mac=generate_mac()))
        self.defs.write_guest_files(rootfs, settings, files=("hostname", "net", "dns"))
        self.defs.write_meta(ctid, meta)
        self.defs.write_config(ctid, settings, rootfs)  # last: from now on the guest exists
        if settings.firewall_enabled:
            self.firewall.apply(ctid, settings.firewall_rules)

    # ---- changing -------------------------------------------------------------------------

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        parsed = self._require(ctid)
        if not changed:
            return
        if "unprivileged" in changed:
            raise DriverError(
                f"guest {ctid}: switching unprivileged on an existing guest is not supported; "
                "recreate it"
            )
        meta = self.defs.meta(ctid)
        current = lxcconf.to_settings(parsed, meta)
        updates = {name: getattr(settings, name) for name in changed}
        new = replace(current, **updates)
        if "net" in changed and new.net is not None and new.net.mac is None:
            kept = current.net.mac if current.net else None
            new = replace(new, net=replace(new.net, mac=kept or generate_mac()))
        rootfs = self.defs.rootfs(ctid, parsed)
        self.defs.write_config(ctid, new, rootfs)
        new_meta = GuestMeta.of(new, template=meta.template, source=meta.template_source)
        if new_meta != meta:
            self.defs.write_meta(ctid, new_meta)
        running = self.ctx.running(ctid)
        files = [name for name in ("hostname", "net") if name in changed]
        if files and running and rootfs.linked:
            live.write_files(self.exec, ctid, self.defs.guest_files(new, files))
        elif files:
            self.defs.write_guest_files(rootfs, new, files)
        if "net" in changed and running and new.net is not None and new.net.bridge:
            live.attach(self.ctx, ctid, parsed, new.net.bridge)
        if "hostname" in changed and running:
            self.exec(ctid, ["hostname", new.hostname])
        if running and changed & live.LIVE_LIMITS:
            live.apply_limits(self.ctx, self.cgroup, ctid, new)
        if changed & {"firewall_enabled", "firewall_rules"} or (
            new.firewall_enabled and "net" in changed
        ):
            if new.firewall_enabled:
                self.firewall.apply(ctid, new.firewall_rules)
            else:
                self.firewall.remove(ctid)
        if running and changed & MOUNT_FIELDS:
            # LXC mounts and admits devices when the guest starts: restart it.
            self.stop(ctid)
            self.start(ctid)

    def resize(self, ctid: int, disk_gb: int) -> None:
        self._require(ctid)
        meta = self.defs.meta(ctid)
        if disk_gb < meta.disk_gb:
            raise DriverError(
                f"guest {ctid}: cannot shrink the root disk from {meta.disk_gb} GB to {disk_gb} GB"
            )
        if disk_gb == meta.disk_gb:
            return
        # A dir-backed rootfs has no size to grow; the size is recorded so plans converge.
        self.defs.write_meta(ctid, replace(meta, disk_gb=disk_gb))

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        parsed = self._require(ctid)
        deadline = time.monotonic() + timeout
        if not self.ctx.running(ctid):
            live.check_bridge(self.ctx, ctid, parsed)
            starting.start(self.ctx, ctid, deadline)
        readiness.wait_ready(self.ctx, ctid, parsed, deadline, self.poll_interval)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        if not self.defs.exists(ctid) or not self.ctx.running(ctid):
            return
        argv = self.ctx.lxc("lxc-stop", ctid, "-t", str(int(timeout)))
        self.ctx.run("mutate", argv, timeout=timeout + 30).check(f"stopping guest {ctid}")

    def dependents(self, ctid: int) -> list[int]:
        """Guests whose linked rootfs lies on one of `ctid`'s snapshots."""
        return sorted({d.ctid for d in linked.dependents(self.lxc_path, ctid)})

    def destroy(self, ctid: int) -> None:
        """Stop, drop the firewall, rename the dir away (atomic: from here the guest is
        gone, snapshots included), then remove it; an interrupted destroy is finished by
        the next create, clone or destroy of that guest."""
        refuse_if_linked(self.ctx, ctid, None, f"destroy guest {ctid}")
        if self.defs.exists(ctid):
            self.stop(ctid)
            if self.ctx.running(ctid):
                raise DriverError(f"guest {ctid} is still running; cannot destroy it")
            self.firewall.remove(ctid)
            trash = self._trash(ctid)
            if trash.exists():
                self.ctx.remove_tree(trash, f"removing {trash}, left by an interrupted delete")
            self.log.file("rename", self.ctx.dir(ctid), f"to {trash}")
            self.ctx.dir(ctid).rename(trash)
        self._clear_leftovers(ctid)
        self.firewall.remove(ctid)

    # ---- in-guest work ---------------------------------------------------------------------

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        full = self.ctx.lxc("lxc-attach", ctid, "--clear-env")
        merged = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        for key, value in merged.items():
            full += ["--set-var", f"{key}={value}"]
        full += ["--", *argv]
        return self.ctx.run("exec", full, input=stdin, timeout=timeout)

    # ---- snapshots and templates ---------------------------------------------------------------

    def list_snapshots(self, ctid: int) -> list[str]:
        return self.snaps.names(ctid)

    def snapshot(self, ctid: int, name: str) -> None:
        """A running guest is stopped for the snapshot and started again."""
        self._require(ctid)
        if self.snaps.find(ctid, name) is not None:
            return
        self.snaps.clear_incomplete(ctid)
        was_running = self.ctx.running(ctid)
        if was_running:
            self.stop(ctid)
        try:
            self.snaps.take(ctid, name)
        finally:
            if was_running:
                self.start(ctid)

    def mark_template(self, ctid: int) -> None:
        self._require(ctid)
        meta = self.defs.meta(ctid)
        if meta.template:
            return
        if self.ctx.running(ctid):
            raise DriverError(f"guest {ctid} is running; stop it before making it a template")
        self.defs.write_meta(ctid, replace(meta, template=True))

"""The local LXC driver: Phoenix guest semantics with Debian's `lxc-*` tools.

Containers live in a dedicated LXC path (so Phoenix never sees or touches other containers
on the host) and are named by their CTID. Every host command goes through a Runner and is
logged in `self.log` as "observe" (reads), "mutate" (changes the host or a guest's
definition) or "exec" (work inside a running guest); in-process file writes are logged as
mutations too, so "a converged re-run logs no mutation" really means nothing changed.

Interruptions (kill -9, power loss) never leave a guest half-made or half-deleted where LXC
or the planner would take it for a whole one: a guest exists exactly when its `config` does,
and that file is written last (atomically) by create and clone; destroy first renames the
guest's dir to `.deleting-<ctid>` (one atomic step: the guest is gone) and then removes it.
What an interruption leaves (a dir without config, a `.deleting-` dir, a snapshot without
its comment) is reported by `observe` as `leftover` and removed by the next create,
clone, destroy or snapshot. A snapshot counts only once lxc-snapshot wrote its comment
(its last act) and its rootfs is there, so a clone never uses a half-copied one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Literal

from filelock import FileLock

from phoenix.drivers import gpu
from phoenix.drivers.base import (
    CommandLog,
    GuestSettings,
    ObservedGuest,
)
from phoenix.drivers.lxc import cgroups, firewall, guestfiles, idmap, linked, mounts
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, ParsedConfig, RenderContext, RootfsSpec
from phoenix.drivers.lxc.templates import resolve_template
from phoenix.errors import CommandFailed, DriverError
from phoenix.runners.base import TIMED_OUT, CommandResult, Runner
from phoenix.runners.local import LocalRunner

log = logging.getLogger(__name__)

APPARMOR_DIR = Path("/sys/kernel/security/apparmor")
META_FILE = "phoenix.json"
DELETING = ".deleting-"
DETACHED = "(detached)"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# "offline": systemctl cannot reach systemd yet (it has not opened its socket).
_NOT_READY = {"", "offline", "initializing", "starting"}
_INIT_RENAME_GRACE = 2.0  # seconds an init still called "init" may take to show it is systemd
_LIVE_LIMITS = frozenset({"memory_mb", "swap_mb", "cores"})
# Settings LXC applies only when the guest starts.
MOUNT_FIELDS = frozenset({"mounts", "gpus"})
CloneMode = Literal["linked", "full"]
CLONE_MODES: tuple[CloneMode, ...] = ("linked", "full")


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
        if clone_mode not in CLONE_MODES:
            raise DriverError(f"unknown LXC clone mode {clone_mode!r} (linked or full)")
        self.lxc_path = Path(lxc_path)
        self.volume_root = self.lxc_path / mounts.VOLUME_DIR
        self.proc_devices = proc_devices
        self.dev_dir = dev_dir
        self.template_cache = Path(template_cache)
        self.runner: Runner = runner or LocalRunner()
        self.state_dir = Path(state_dir) if state_dir else self.lxc_path
        self.fw_table = fw_table
        self.cgroup = cgroup or cgroups.detect()
        self.apparmor = APPARMOR_DIR.is_dir() if apparmor is None else apparmor
        self.resolv_conf = resolv_conf
        self.subid_files = subid_files
        self.poll_interval = poll_interval
        self.clone_mode: CloneMode = clone_mode
        self.log = CommandLog()
        self.warnings: list[str] = []
        self._nft_caps: firewall.NftCaps | None = None
        self._caps_lock = threading.Lock()

    # ---- plumbing -------------------------------------------------------------------

    def _run(
        self,
        kind: str,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.log.add(kind, argv)
        return self.runner.run(argv, input=input, timeout=timeout)

    def _lxc(self, tool: str, ctid: int, *args: str) -> list[str]:
        return [tool, "-P", str(self.lxc_path), "-n", str(ctid), *args]

    def _dir(self, ctid: int) -> Path:
        return self.lxc_path / str(ctid)

    def _write(self, path: Path, text: str, mode: int = 0o640) -> None:
        """Atomic write of a driver-owned file, logged as a mutation."""
        self.log.add("mutate", ["write", str(path)])
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        tmp.replace(path)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    # ---- reading ----------------------------------------------------------------------

    def _read_config(self, ctid: int) -> ParsedConfig | None:
        path = self._dir(ctid) / "config"
        if not path.is_file():
            return None
        return lxcconf.parse(path.read_text())

    def _read_meta(self, ctid: int) -> GuestMeta:
        path = self._dir(ctid) / META_FILE
        return GuestMeta.from_json(path.read_text()) if path.is_file() else GuestMeta()

    def _state(self, ctid: int) -> str:
        res = self._run("observe", self._lxc("lxc-info", ctid, "-s", "-H"))
        return res.stdout.strip().upper() if res.ok else "STOPPED"

    def _ips(self, ctid: int) -> tuple[str, ...]:
        res = self._run("observe", self._lxc("lxc-info", ctid, "-i", "-H"))
        return tuple(line.strip() for line in res.stdout.splitlines() if line.strip())

    def _fw_state(self) -> firewall.TableState:
        res = self._run("observe", ["nft", "-j", "list", "table", "bridge", self.fw_table])
        return firewall.parse_listing(res.stdout) if res.ok else firewall.TableState()

    def _settings(self, ctid: int, parsed: ParsedConfig, meta: GuestMeta) -> GuestSettings:
        settings = lxcconf.to_settings(parsed, meta)
        if settings.firewall_enabled:
            applied = self._fw_state().applied_marker(ctid)
            if applied != firewall.marker(settings.firewall_rules):
                settings = replace(settings, firewall_enabled=False, firewall_rules=())
        return settings

    def _trash(self, ctid: int) -> Path:
        return self.lxc_path / f"{DELETING}{ctid}"

    def _leftover(self, ctid: int) -> str | None:
        """What an interrupted create/clone or destroy left of a missing guest (or what
        outlived a guest removed behind Phoenix's back: its firewall chains)."""
        found = []
        if self.lxc_path.is_dir() and ctid in _chain_guests(self._fw_state()):
            found.append(f"its firewall chains in bridge {self.fw_table}")
        if self._dir(ctid).exists():
            found.append(f"{self._dir(ctid)} (a create or clone stopped before its config)")
        if self._trash(ctid).exists():
            found.append(f"{self._trash(ctid)} (a delete that did not finish)")
        return "; ".join(found) or None

    def _clear_leftovers(self, ctid: int) -> None:
        """Remove what an interrupted create/clone or destroy left (never a whole guest)."""
        for path in (self._trash(ctid), self._dir(ctid)):
            if path.exists() and not (path == self._dir(ctid) and (path / "config").exists()):
                self._run("mutate", ["rm", "-rf", "--one-file-system", "--", str(path)]).check(
                    f"removing {path}, left by an interrupted run"
                )

    def _attached(self, ctid: int, settings: GuestSettings) -> GuestSettings:
        """A running guest's veth must hang on its bridge: a bridge deleted and made again
        (`ip link del`, then `phoenix setup`) leaves it detached and the guest unreachable.
        Such a NIC observes as on bridge DETACHED, so the plan configures it again."""
        net = settings.net
        if net is None or not net.bridge:
            return settings
        res = self._run("observe", ["ip", "-j", "link", "show", "dev", lxcconf.veth_name(ctid)])
        try:
            links = json.loads(res.stdout or "[]") if res.ok else []
        except ValueError:
            links = []
        if links and isinstance(links[0], dict) and links[0].get("master") != net.bridge:
            return replace(settings, net=replace(net, bridge=DETACHED))
        return settings

    def observe(self, ctid: int) -> ObservedGuest:
        parsed = self._read_config(ctid)
        if parsed is None:
            return ObservedGuest(ctid, "missing", leftover=self._leftover(ctid))
        meta = self._read_meta(ctid)
        running = self._state(ctid) == "RUNNING"
        settings = self._settings(ctid, parsed, meta)
        return ObservedGuest(
            ctid,
            "running" if running else "stopped",
            settings=self._attached(ctid, settings) if running else settings,
            snapshots=tuple(self.list_snapshots(ctid)),
            is_template=meta.template,
            ip_addresses=self._ips(ctid) if running else (),
        )

    # ---- creating -----------------------------------------------------------------------

    def _require_missing(self, ctid: int) -> None:
        if (self._dir(ctid) / "config").exists():
            raise DriverError(f"guest {ctid} already exists in {self.lxc_path}")

    def _require(self, ctid: int) -> ParsedConfig:
        parsed = self._read_config(ctid)
        if parsed is None:
            raise DriverError(f"guest {ctid} does not exist in {self.lxc_path}")
        return parsed

    def _check_subids(self) -> None:
        for path in self.subid_files:
            text = path.read_text() if path.exists() else ""
            if not idmap.has_subids(text):
                raise DriverError(
                    f"{path} does not delegate {idmap.ID_BASE}:{idmap.ID_COUNT} to root; "
                    "run `phoenix setup` first"
                )

    def _prepare_dir(self, ctid: int, unprivileged: bool) -> Path:
        self.lxc_path.mkdir(parents=True, exist_ok=True)
        cdir = self._dir(ctid)
        self.log.add("mutate", ["mkdir", str(cdir)])
        cdir.mkdir(mode=0o755)
        cdir.chmod(0o755)
        rootfs = cdir / "rootfs"
        rootfs.mkdir(mode=0o755)
        if unprivileged:
            idmap.make_traversable(cdir, Path("/"))
            os.chown(rootfs, idmap.ID_BASE, idmap.ID_BASE)
        return rootfs

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        self._require_missing(ctid)
        self._clear_leftovers(ctid)
        if settings.unprivileged:
            self._check_subids()
        tarball = resolve_template(
            template, self.template_cache, lambda argv: self._run("mutate", argv)
        )
        rootfs = self._prepare_dir(ctid, settings.unprivileged)
        try:
            extract = [
                "tar",
                "-xpf",
                str(tarball),
                "-C",
                str(rootfs),
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=security.capability",
                "--xattrs-include=user.*",
                # LXC populates /dev itself; device nodes cannot be made in a user namespace.
                "--exclude=./dev/*",
            ]
            if settings.unprivileged:
                extract = idmap.usernsexec_prefix() + extract
            self._run("mutate", extract).check(f"unpacking {tarball} for guest {ctid}")
            owner = idmap.ID_BASE if settings.unprivileged else 0
            masked = guestfiles.mask_for_container(rootfs, owner)
            if masked:
                self.log.add("mutate", ["mask-units", str(rootfs), *masked])
            self._finish_new_guest(ctid, RootfsSpec(rootfs), settings, GuestMeta.of(settings))
        except BaseException:
            self._remove_dir(ctid)
            raise

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        """A linked clone (overlay on the snapshot) when possible, else a full copy.

        Linked needs a snapshot whose rootfs is a plain dir and the same unprivileged id
        map on both sides (an overlay cannot shift ids); privileged linked clones are not
        proven here and get full copies."""
        src_conf = self._require(source)
        self._require_missing(ctid)
        self._clear_leftovers(ctid)
        if snapshot is not None:
            snap_dir = self._snapshot_dir(source, snapshot)
            if snap_dir is None:
                raise DriverError(f"guest {source} has no snapshot {snapshot!r} to clone from")
            snap_conf = snap_dir / "config"
            if snap_conf.is_file():
                src_conf = lxcconf.parse(snap_conf.read_text())
            src = lxcconf.rootfs_spec(src_conf) or RootfsSpec(snap_dir / "rootfs")
        else:
            if self._state(source) == "RUNNING":
                raise DriverError(
                    f"guest {source} is running: clone from a snapshot or a stopped template"
                )
            src = lxcconf.rootfs_spec(src_conf) or RootfsSpec(self._dir(source) / "rootfs")
        if settings.unprivileged:
            self._check_subids()
        src_unpriv = bool(src_conf.all("lxc.idmap"))
        self.lxc_path.mkdir(parents=True, exist_ok=True)
        cdir = self._dir(ctid)
        link = (
            self.clone_mode == "linked"
            and snapshot is not None
            and not src.linked
            and settings.unprivileged
            and src_unpriv
            and linked.paths_usable(src.path, cdir)
        )
        self.log.add("mutate", ["mkdir", str(cdir)])
        cdir.mkdir(mode=0o755)
        cdir.chmod(0o755)
        meta = replace(GuestMeta.of(settings), template_source=f"{source}@{snapshot or ''}")
        try:
            if link:
                self.log.add("mutate", ["link-rootfs", str(src.path), str(cdir / linked.UPPER)])
                spec = RootfsSpec(linked.prepare(cdir, src.path), src.path)
            else:
                spec = RootfsSpec(self._copy_rootfs(src, cdir / "rootfs", f"{source}", ctid))
                delta = (idmap.ID_BASE if settings.unprivileged else 0) - (
                    idmap.ID_BASE if src_unpriv else 0
                )
                if delta:
                    self.log.add("mutate", ["shift-ids", str(spec.path), str(delta)])
                    idmap.shift_tree(spec.path, delta)
            if settings.unprivileged:
                idmap.make_traversable(cdir, Path("/"))
            owner = idmap.ID_BASE if settings.unprivileged else 0
            guestfiles.write(spec.path, "etc/machine-id", "", owner, 0o444, lower=spec.lower)
            self._finish_new_guest(ctid, spec, settings, meta)
        except BaseException:
            self._remove_dir(ctid)
            raise

    def _copy_rootfs(self, src: RootfsSpec, dest: Path, source: str, ctid: int) -> Path:
        with self._readable_tree(src) as tree:
            self._run("mutate", ["cp", "-a", "--", str(tree), str(dest)]).check(
                f"copying guest {source}'s rootfs for clone {ctid}"
            )
        return dest

    @contextmanager
    def _readable_tree(self, spec: RootfsSpec) -> Iterator[Path]:
        """The rootfs as one tree: a dir as it is, a linked rootfs mounted read-only."""
        if spec.lower is None:
            yield spec.path
            return
        target = Path(tempfile.mkdtemp(prefix=".merged-", dir=self.lxc_path))
        try:
            self._run("mutate", linked.merged_mount_argv(spec, target)).check(
                f"mounting linked rootfs {spec.path} to copy it"
            )
            try:
                yield target
            finally:
                self._run("mutate", ["umount", str(target)]).check(f"unmounting {target}")
        finally:
            target.rmdir()

    def _remove_dir(self, ctid: int) -> None:
        self._run("mutate", ["rm", "-rf", "--one-file-system", "--", str(self._dir(ctid))])

    def _finish_new_guest(
        self, ctid: int, rootfs: RootfsSpec, settings: GuestSettings, meta: GuestMeta
    ) -> None:
        if settings.net is not None and settings.net.mac is None:
            settings = replace(settings, net=replace(settings.net, mac=generate_mac()))
        self._write_guest_files(rootfs, settings, files=("hostname", "net", "dns"))
        self._write(self._dir(ctid) / META_FILE, meta.to_json())
        self._write_config(ctid, settings, rootfs)  # last: from now on the guest exists
        if settings.firewall_enabled:
            self._apply_firewall(ctid, settings)

    def _guest_files(self, settings: GuestSettings, files: Sequence[str]) -> list[tuple[str, str]]:
        """(path in the guest, content) of the identity files named in `files`."""
        out: list[tuple[str, str]] = []
        if "hostname" in files:
            out.append(("etc/hostname", settings.hostname + "\n"))
            out.append(("etc/hosts", guestfiles.hosts(settings.hostname)))
        if "net" in files and settings.net is not None:
            nic = settings.net.name
            out.append(("etc/network/interfaces", guestfiles.INTERFACES.format(nic=nic)))
        if "dns" in files:
            gw = settings.net.gw if settings.net else None
            text = guestfiles.resolv_conf(guestfiles.host_resolv_text(self.resolv_conf), gw)
            out.append(("etc/resolv.conf", text))
        return out

    def _write_guest_files(
        self, rootfs: RootfsSpec, settings: GuestSettings, files: Sequence[str]
    ) -> None:
        """Write into the (stopped) guest's own layer: the rootfs dir or the upper dir."""
        owner = idmap.ID_BASE if settings.unprivileged else 0
        self.log.add("mutate", ["write-guest-files", str(rootfs.path), *files])
        for relative, text in self._guest_files(settings, files):
            guestfiles.write(rootfs.path, relative, text, owner, lower=rootfs.lower)

    def _write_guest_files_live(
        self, ctid: int, settings: GuestSettings, files: Sequence[str]
    ) -> None:
        """A running linked guest's upper dir must not change under its mounted overlay
        (overlayfs leaves that undefined): the files are replaced from inside instead."""
        script = 'cat > "$1.new" && chmod 644 "$1.new" && mv -f "$1.new" "$1"'
        for relative, text in self._guest_files(settings, files):
            argv = ["sh", "-c", script, "sh", "/" + relative]
            res = self.exec(ctid, argv, stdin=text.encode())
            if not res.ok:
                context = f"writing /{relative} in guest {ctid}"
                raise CommandFailed(argv, res.returncode, res.stdout, res.stderr, context)

    def _render_ctx(self, rootfs: RootfsSpec) -> RenderContext:
        return RenderContext(
            rootfs=rootfs.path,
            cgroup=self.cgroup,
            apparmor=self.apparmor,
            lower=rootfs.lower,
            volume_root=self.volume_root,
            gpu_majors=self._gpu_majors(),
            dev_dir=self.dev_dir,
        )

    def _gpu_majors(self) -> dict[str, int]:
        """The host's character majors (nvidia, nvidia-uvm...), read when a config renders."""
        try:
            return gpu.char_majors(self.proc_devices.read_text())
        except OSError:
            return {}

    def _check_gpu_nodes(self, ctid: int, gpus: tuple[int, ...]) -> None:
        """Every node a guest's GPUs need exists here, with the numbers /proc/devices gives
        (LXC would otherwise fail the start with a bare mount error)."""
        for device in gpu.devices(gpus, self._gpu_majors()):
            node = self.dev_dir / device.path.removeprefix("/dev/")
            try:
                info = node.stat()
            except FileNotFoundError:
                fix = (
                    gpu.UVM_FIX
                    if device.path.startswith(gpu.UVM)
                    else ("check `nvidia-smi -L` on the host and gpu_assignment in the inventory")
                )
                raise DriverError(
                    f"guest {ctid}: {node} does not exist on this host: {fix}"
                ) from None
            if not stat.S_ISCHR(info.st_mode) or (
                os.major(info.st_rdev),
                os.minor(info.st_rdev),
            ) != (device.major, device.minor):
                raise DriverError(
                    f"guest {ctid}: {node} is not the character device "
                    f"{device.major}:{device.minor} that /proc/devices implies"
                )

    def _rootfs(self, ctid: int, parsed: ParsedConfig) -> RootfsSpec:
        return lxcconf.rootfs_spec(parsed) or RootfsSpec(self._dir(ctid) / "rootfs")

    def _write_config(self, ctid: int, settings: GuestSettings, rootfs: RootfsSpec) -> bool:
        if settings.apparmor_profile is not None and not self.apparmor:
            self._warn(
                f"guest {ctid}: AppArmor is not enabled on this host; profile "
                f"{settings.apparmor_profile!r} is recorded but not enforced"
            )
        self._check_gpu_nodes(ctid, settings.gpus)
        text = lxcconf.render(ctid, settings, self._render_ctx(rootfs))
        for made in mounts.ensure_sources(
            ctid, settings.mounts, settings.unprivileged, self.volume_root
        ):
            self.log.add("mutate", ["mkdir", str(made)])
        path = self._dir(ctid) / "config"
        if path.is_file() and path.read_text() == text:
            return False
        self._write(path, text)
        return True

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
        meta = self._read_meta(ctid)
        current = lxcconf.to_settings(parsed, meta)
        updates = {name: getattr(settings, name) for name in changed}
        new = replace(current, **updates)
        if "net" in changed and new.net is not None and new.net.mac is None:
            kept = current.net.mac if current.net else None
            new = replace(new, net=replace(new.net, mac=kept or generate_mac()))
        rootfs = self._rootfs(ctid, parsed)
        self._write_config(ctid, new, rootfs)
        new_meta = GuestMeta.of(new, template=meta.template, source=meta.template_source)
        if new_meta != meta:
            self._write(self._dir(ctid) / META_FILE, new_meta.to_json())
        running = self._state(ctid) == "RUNNING"
        files = [name for name in ("hostname", "net") if name in changed]
        if files and running and rootfs.linked:
            self._write_guest_files_live(ctid, new, files)
        elif files:
            self._write_guest_files(rootfs, new, files)
        if "net" in changed and running and new.net is not None and new.net.bridge:
            self._attach(ctid, parsed, new.net.bridge)
        if "hostname" in changed and running:
            self.exec(ctid, ["hostname", new.hostname])
        if running and changed & _LIVE_LIMITS:
            self._apply_live_limits(ctid, new)
        if changed & {"firewall_enabled", "firewall_rules"} or (
            new.firewall_enabled and "net" in changed
        ):
            if new.firewall_enabled:
                self._apply_firewall(ctid, new)
            else:
                self._remove_firewall(ctid)
        if running and changed & MOUNT_FIELDS:
            # LXC mounts and admits devices when the guest starts: restart it.
            self.stop(ctid)
            self.start(ctid)

    def _attach(self, ctid: int, parsed: ParsedConfig, bridge: str) -> None:
        """Hang a running guest's veth on its bridge again (see `_attached`)."""
        self._check_bridge(ctid, parsed)
        veth = lxcconf.veth_name(ctid)
        self._run("mutate", ["ip", "link", "set", "dev", veth, "master", bridge]).check(
            f"attaching guest {ctid}'s {veth} to {bridge}"
        )
        self._run("mutate", ["ip", "link", "set", "dev", veth, "up"]).check(
            f"bringing guest {ctid}'s {veth} up"
        )

    def _apply_live_limits(self, ctid: int, settings: GuestSettings) -> None:
        """Running guests get new limits now; the config makes them stick across restarts.

        cgroup v1 refuses memory > memsw (and memsw < memory), so whichever write fails is
        retried once after the others went through."""
        prefix = self.cgroup.prefix + "."
        pending = [
            (key[len(prefix) :], value)
            for key, value in cgroups.limit_keys(
                self.cgroup, ctid, settings.memory_mb, settings.swap_mb, settings.cores
            )
        ]
        failed: list[tuple[str, str, CommandResult]] = []
        for _ in range(2):
            failed = []
            for name, value in pending:
                res = self._run("mutate", self._lxc("lxc-cgroup", ctid, name, value))
                if not res.ok:
                    failed.append((name, value, res))
            if not failed:
                return
            pending = [(name, value) for name, value, _ in failed]
        failed[0][2].check(f"setting {failed[0][0]} on running guest {ctid}")

    def resize(self, ctid: int, disk_gb: int) -> None:
        self._require(ctid)
        meta = self._read_meta(ctid)
        if disk_gb < meta.disk_gb:
            raise DriverError(
                f"guest {ctid}: cannot shrink the root disk from {meta.disk_gb} GB to {disk_gb} GB"
            )
        if disk_gb == meta.disk_gb:
            return
        # A dir-backed rootfs has no size to grow; the size is recorded so plans converge.
        self._write(self._dir(ctid) / META_FILE, replace(meta, disk_gb=disk_gb).to_json())

    # ---- firewall -------------------------------------------------------------------------

    def nft_caps(self) -> firewall.NftCaps:
        """Probe (once) whether the bridge family has conntrack and REJECT on this kernel."""
        with self._caps_lock:  # guests converge in parallel: probe and warn only once
            return self._probe_nft_caps()

    def _probe_nft_caps(self) -> firewall.NftCaps:
        if self._nft_caps is None:
            probe = f"{self.fw_table}_probe"
            ok = []
            for statement in (firewall.CT_PROBE, firewall.REJECT_PROBE):
                res = self._run(
                    "observe",
                    ["nft", "-c", "-f", "-"],
                    input=firewall.probe_script(probe, statement),
                )
                ok.append(res.ok)
            self._nft_caps = firewall.NftCaps(conntrack=ok[0], reject=ok[1])
            if not ok[0]:
                self._warn(
                    "bridge conntrack is not available in this kernel: the guest firewall "
                    "recognises replies statelessly (TCP non-SYN, DNS/NTP, ICMP errors)"
                )
        return self._nft_caps

    def _fw_lock(self) -> FileLock:
        """Guests converge in parallel; creating the shared table must happen once."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.state_dir / f".{self.fw_table}.lock"), timeout=120)

    def _apply_firewall(self, ctid: int, settings: GuestSettings) -> None:
        caps = self.nft_caps()
        with self._fw_lock():
            self._apply_firewall_locked(ctid, settings, caps)

    def _apply_firewall_locked(
        self, ctid: int, settings: GuestSettings, caps: firewall.NftCaps
    ) -> None:
        if not self._fw_state().exists:
            self._run("mutate", ["nft", "-f", "-"], input=firewall.table_script(self.fw_table))
        script = firewall.guest_script(
            self.fw_table, ctid, lxcconf.veth_name(ctid), settings.firewall_rules, caps
        )
        self._run("mutate", ["nft", "-f", "-"], input=script).check(
            f"applying the firewall of guest {ctid}"
        )

    def _remove_firewall(self, ctid: int) -> None:
        with self._fw_lock():
            self._remove_firewall_locked(ctid)

    def _remove_firewall_locked(self, ctid: int) -> None:
        """Remove the guest's chains, and those of guests that vanished without a delete
        (no config left); the table goes with the last guest's chains."""
        state = self._fw_state()
        if not state.exists:
            return
        guests = _chain_guests(state)
        gone = {ctid} | {c for c in guests if self._read_config(c) is None}
        script = "".join(
            firewall.remove_script(self.fw_table, c, lxcconf.veth_name(c), state)
            for c in sorted(gone)
        )
        if script:
            self._run("mutate", ["nft", "-f", "-"], input=script).check(
                f"removing the firewall of guest {ctid}"
            )
        if not guests - gone:
            self._run("mutate", ["nft", "delete", "table", "bridge", self.fw_table]).check(
                f"removing the firewall table {self.fw_table} (no guest uses it)"
            )

    # ---- lifecycle --------------------------------------------------------------------------

    def _check_bridge(self, ctid: int, parsed: ParsedConfig) -> None:
        bridge = parsed.get("lxc.net.0.link")
        if parsed.get("lxc.net.0.type") != "veth" or not bridge:
            return
        if not self._run("observe", ["ip", "-j", "link", "show", "dev", bridge]).ok:
            raise DriverError(
                f"guest {ctid} needs bridge {bridge!r}, which does not exist; "
                "run `phoenix setup` to create it"
            )

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        parsed = self._require(ctid)
        if self._state(ctid) != "RUNNING":
            self._check_bridge(ctid, parsed)
            self._run("mutate", self._lxc("lxc-start", ctid)).check(f"starting guest {ctid}")
        self._wait_ready(ctid, parsed, time.monotonic() + timeout)

    def _wait_ready(self, ctid: int, parsed: ParsedConfig, deadline: float) -> None:
        """Poll until init runs, the address is configured and systemd finished booting."""
        want_ip = None
        address = parsed.get("lxc.net.0.ipv4.address")
        if parsed.get("lxc.net.0.type") == "veth" and address:
            want_ip = address.split(" ")[0].split("/")[0]
        status = "not running"
        while True:
            if self._state(ctid) == "RUNNING":
                self._await_systemd_bus(ctid, deadline)
                if want_ip is not None and want_ip not in self._ips(ctid):
                    status = f"address {want_ip} not up yet"
                else:
                    status = self._init_status(ctid, deadline)
                    if status not in _NOT_READY:
                        return
            if time.monotonic() >= deadline:
                raise DriverError(f"guest {ctid} did not become ready in time ({status})")
            time.sleep(self.poll_interval)

    def _await_systemd_bus(self, ctid: int, deadline: float) -> None:
        """Until the guest's systemd has its control socket (a `systemctl` run before that
        fails at once, costing a poll interval): a stat through /proc/PID/root every 10 ms,
        no process. Returns early when init is not systemd or cannot be seen."""
        res = self._run("observe", self._lxc("lxc-info", ctid, "-p", "-H"))
        pid = res.stdout.strip()
        if not res.ok or not pid.isdigit():
            return
        proc = Path("/proc") / pid
        bus = proc / "root/run/systemd/private"
        late = min(deadline, time.monotonic() + _INIT_RENAME_GRACE)
        while not bus.exists() and time.monotonic() < deadline:
            try:
                comm = (proc / "comm").read_text().strip()
            except OSError:
                return  # init is gone; the caller's state check reports it
            # systemd names itself "systemd" early; "init" may still be systemd until then
            if comm != "systemd" and (comm != "init" or time.monotonic() >= late):
                return
            time.sleep(0.01)

    def _init_status(self, ctid: int, deadline: float) -> str:
        """systemd's state once boot is over: `--wait` blocks inside the guest until then,
        so there is no polling while systemd boots (bounded by the deadline)."""
        argv = self._lxc(
            "lxc-attach", ctid, "--clear-env", "--", "systemctl", "is-system-running", "--wait"
        )
        wait = max(1.0, min(60.0, deadline - time.monotonic()))
        res = self._run("observe", argv, timeout=wait)
        if res.returncode == TIMED_OUT:  # still booting when the wait ran out
            return "starting"
        out = res.stdout.strip()
        if res.returncode in (126, 127):  # no systemctl in the guest: init is not systemd
            return "no systemd"
        return out

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        if self._read_config(ctid) is None or self._state(ctid) != "RUNNING":
            return
        argv = self._lxc("lxc-stop", ctid, "-t", str(int(timeout)))
        self._run("mutate", argv, timeout=timeout + 30).check(f"stopping guest {ctid}")

    def _refuse_if_linked(self, ctid: int, snapshot_dir: str | None, what: str) -> None:
        deps = sorted(
            {
                d.ctid
                for d in linked.dependents(self.lxc_path, ctid)
                if snapshot_dir is None or d.snapshot_dir == snapshot_dir
            }
        )
        if deps:
            names = ", ".join(str(d) for d in deps)
            raise DriverError(
                f"cannot {what}: linked clone(s) {names} use it as their base layer; "
                "delete those guests first"
            )

    def dependents(self, ctid: int) -> list[int]:
        """Guests whose linked rootfs lies on one of `ctid`'s snapshots."""
        return sorted({d.ctid for d in linked.dependents(self.lxc_path, ctid)})

    def destroy(self, ctid: int) -> None:
        """Stop, drop the firewall, rename the dir away (atomic: from here the guest is
        gone, snapshots included), then remove it; an interrupted destroy is finished by
        the next create, clone or destroy of that guest."""
        self._refuse_if_linked(ctid, None, f"destroy guest {ctid}")
        if self._read_config(ctid) is not None:
            self.stop(ctid)
            if self._state(ctid) == "RUNNING":
                raise DriverError(f"guest {ctid} is still running; cannot destroy it")
            self._remove_firewall(ctid)
            self._clear_leftovers_trash(ctid)
            self.log.add("mutate", ["rename", str(self._dir(ctid)), str(self._trash(ctid))])
            self._dir(ctid).rename(self._trash(ctid))
        self._clear_leftovers(ctid)
        self._remove_firewall(ctid)

    def _clear_leftovers_trash(self, ctid: int) -> None:
        trash = self._trash(ctid)
        if trash.exists():
            self._run("mutate", ["rm", "-rf", "--one-file-system", "--", str(trash)]).check(
                f"removing {trash}, left by an interrupted delete"
            )

    # ---- in-guest work ---------------------------------------------------------------------

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        full = self._lxc("lxc-attach", ctid, "--clear-env")
        merged = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        for key, value in merged.items():
            full += ["--set-var", f"{key}={value}"]
        full += ["--", *argv]
        return self._run("exec", full, input=stdin, timeout=timeout)

    def push(self, ctid: int, local: Path, guest_path: str, mode: int = 0o644) -> None:
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
        argv = ["sh", "-c", script, "sh", guest_path, f"{mode:o}"]
        res = self.exec(ctid, argv, stdin=Path(local).read_bytes())
        if not res.ok:
            context = f"pushing {local} to guest {ctid}:{guest_path}"
            raise CommandFailed(argv, res.returncode, res.stdout, res.stderr, context)

    # ---- snapshots and templates ---------------------------------------------------------------

    def _snapshots(self, ctid: int) -> list[tuple[str, Path]]:
        """(Phoenix name, snapshot dir) in creation order; the name is lxc-snapshot's comment."""
        snaps = self._dir(ctid) / "snaps"
        found: list[tuple[int, str, Path]] = []
        if not snaps.is_dir():
            return []
        for entry in snaps.iterdir():
            if not entry.name.startswith("snap") or not entry.name[4:].isdigit():
                continue
            if not _snapshot_complete(entry):
                continue
            name = (entry / "comment").read_text().strip()
            found.append((int(entry.name[4:]), name, entry))
        return [(name, path) for _, name, path in sorted(found)]

    def _clear_incomplete_snapshots(self, ctid: int) -> None:
        """Snapshot dirs an interrupted lxc-snapshot left (before a new one is taken)."""
        snaps = self._dir(ctid) / "snaps"
        if not snaps.is_dir():
            return
        for entry in sorted(snaps.iterdir()):
            if entry.name.startswith("snap") and not _snapshot_complete(entry):
                self._run("mutate", ["rm", "-rf", "--one-file-system", "--", str(entry)]).check(
                    f"removing {entry}, an incomplete snapshot of guest {ctid}"
                )

    def _snapshot_dir(self, ctid: int, name: str) -> Path | None:
        for snap_name, path in self._snapshots(ctid):
            if snap_name == name:
                return path
        return None

    def list_snapshots(self, ctid: int) -> list[str]:
        return [name for name, _ in self._snapshots(ctid)]

    def snapshot(self, ctid: int, name: str) -> None:
        self._require(ctid)
        if self._snapshot_dir(ctid, name) is not None:
            return
        # A dir-backed rootfs can only be copied consistently while the guest is stopped
        # (lxc-snapshot refuses a running one), so a running guest is stopped and restarted.
        self._clear_incomplete_snapshots(ctid)
        was_running = self._state(ctid) == "RUNNING"
        if was_running:
            self.stop(ctid)
        with tempfile.NamedTemporaryFile("w", suffix=".comment", delete=False) as fh:
            fh.write(name + "\n")
        try:
            argv = self._lxc("lxc-snapshot", ctid, "-c", fh.name)
            self._run("mutate", argv).check(f"snapshotting guest {ctid} as {name!r}")
        finally:
            os.unlink(fh.name)
            if was_running:
                self.start(ctid)

    def delete_snapshot(self, ctid: int, name: str) -> None:
        path = self._snapshot_dir(ctid, name)
        if path is None:
            return
        self._refuse_if_linked(ctid, path.name, f"delete snapshot {name!r} of guest {ctid}")
        argv = self._lxc("lxc-snapshot", ctid, "-d", path.name)
        self._run("mutate", argv).check(f"deleting snapshot {name!r} of guest {ctid}")

    def mark_template(self, ctid: int) -> None:
        self._require(ctid)
        meta = self._read_meta(ctid)
        if meta.template:
            return
        if self._state(ctid) == "RUNNING":
            raise DriverError(f"guest {ctid} is running; stop it before making it a template")
        self._write(self._dir(ctid) / META_FILE, replace(meta, template=True).to_json())


def _snapshot_complete(snap: Path) -> bool:
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


def _chain_guests(state: firewall.TableState) -> set[int]:
    """Guests with chains (`in_<ctid>`, `out_<ctid>`) in the firewall table."""
    return {
        int(name.partition("_")[2])
        for name in state.chains
        if name.partition("_")[0] in ("in", "out") and name.partition("_")[2].isdigit()
    }

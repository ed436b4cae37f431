"""A guest's definition on disk: its LXC `config`, its `phoenix.json` (what LXC's config
cannot hold) and the identity files in its rootfs (hostname, hosts, interfaces, resolv.conf).

The config is rendered from `GuestSettings` for this host (its cgroup hierarchy, AppArmor,
GPU majors) and written only when its text changes, so a converged guest logs no change.
A guest exists exactly when its config does: create and clone write it last.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from phoenix.drivers import gpu, idmaps
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc import guestfiles, mounts
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, ParsedConfig, RenderContext, RootfsSpec
from phoenix.drivers.lxc.context import LxcContext
from phoenix.drivers.lxc.rootfs import owner
from phoenix.errors import DriverError

META_FILE = "phoenix.json"


class Definitions:
    """Read and write the definitions of the guests in one LXC path."""

    def __init__(
        self,
        ctx: LxcContext,
        *,
        cgroup: CgroupHost,
        apparmor: bool,
        resolv_conf: Path,
        proc_devices: Path,
        dev_dir: Path,
    ) -> None:
        self.ctx = ctx
        self.cgroup = cgroup
        self.apparmor = apparmor
        self.resolv_conf = resolv_conf
        self.proc_devices = proc_devices
        self.dev_dir = dev_dir
        self.volume_root = ctx.lxc_path / mounts.VOLUME_DIR

    # ---- reading ------------------------------------------------------------------------

    def config(self, ctid: int) -> ParsedConfig | None:
        path = self.ctx.dir(ctid) / "config"
        if not path.is_file():
            return None
        return lxcconf.parse(path.read_text())

    def exists(self, ctid: int) -> bool:
        return (self.ctx.dir(ctid) / "config").is_file()

    def meta(self, ctid: int) -> GuestMeta:
        path = self.ctx.dir(ctid) / META_FILE
        return GuestMeta.from_json(path.read_text(), str(path)) if path.is_file() else GuestMeta()

    def rootfs(self, ctid: int, parsed: ParsedConfig) -> RootfsSpec:
        return lxcconf.rootfs_spec(parsed) or RootfsSpec(self.ctx.dir(ctid) / "rootfs")

    # ---- writing ------------------------------------------------------------------------

    def write_meta(self, ctid: int, meta: GuestMeta) -> None:
        self.ctx.write(self.ctx.dir(ctid) / META_FILE, meta.to_json())

    def write_config(self, ctid: int, settings: GuestSettings, rootfs: RootfsSpec) -> bool:
        """Render and write the config (and make its mount sources); False: unchanged."""
        if settings.apparmor_profile is not None and not self.apparmor:
            self.ctx.warn(
                f"guest {ctid}: AppArmor is not enabled on this host; profile "
                f"{settings.apparmor_profile!r} is recorded but not enforced"
            )
        self._check_gpu_nodes(ctid, settings.gpus)
        text = lxcconf.render(ctid, settings, self._render_ctx(rootfs))
        for made in mounts.ensure_sources(
            ctid,
            settings.mounts,
            settings.unprivileged,
            self.volume_root,
            idmaps.from_raw(settings.raw_lxc),
        ):
            self.ctx.log.file("mkdir", made)
        path = self.ctx.dir(ctid) / "config"
        if path.is_file() and path.read_text() == text:
            return False
        self.ctx.write(path, text)
        return True

    def guest_files(self, settings: GuestSettings, files: Sequence[str]) -> list[tuple[str, str]]:
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

    def write_guest_files(
        self, rootfs: RootfsSpec, settings: GuestSettings, files: Sequence[str]
    ) -> None:
        """Write into the (stopped) guest's own layer: the rootfs dir or the upper dir."""
        self.ctx.log.file("write-guest-files", rootfs.path, *files)
        for relative, text in self.guest_files(settings, files):
            guestfiles.write(
                rootfs.path,
                relative,
                text,
                owner(settings.unprivileged, idmaps.from_raw(settings.raw_lxc)),
                lower=rootfs.lower,
            )

    # ---- the host's devices ---------------------------------------------------------------

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

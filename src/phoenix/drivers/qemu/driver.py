"""The local VM driver: the `Driver` contract for VMs, with QEMU on this host.

`LocalVms` does the disk, seed and power work; this driver sequences it the way the LXC
driver does for containers: a VM's definition (`vm.json`, see `meta`) is written last, so
an interrupted create leaves a folder that `observe` reports as `leftover` and the next
create or destroy removes; a destroy first renames the folder to `.deleting-<vmid>` (the
VM is gone in one step). Its guest firewall is the containers' (nft chains in a bridge
table), keyed by the VM's tap, in a table of its own (`phoenix_vmfw`). KVM is used where
a probe guest really runs under it, TCG otherwise, said once.

Every command is logged ("observe" reads, "mutate" changes, "exec" in the guest; files
written in-process as "file"), so a converged VM lab re-runs with no mutation.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from phoenix.drivers.base import CommandLog, GuestSettings, ObservedGuest
from phoenix.drivers.lxc import firewall
from phoenix.drivers.lxc.context import LxcContext
from phoenix.drivers.lxc.guestfiles import host_resolv_text
from phoenix.drivers.lxc.templates import apt_mirror
from phoenix.drivers.qemu import meta
from phoenix.drivers.qemu.accel import choose_accel
from phoenix.drivers.qemu.baseimage import build_base_image
from phoenix.drivers.qemu.cloudinit import SeedSpec
from phoenix.drivers.qemu.machine import Accel, tap_name
from phoenix.drivers.qemu.vms import LocalVms, VmHardware
from phoenix.errors import DriverError, ParseError
from phoenix.files import write_atomic
from phoenix.runners.base import CommandResult, Runner, Stdin
from phoenix.runners.local import LocalRunner

log = logging.getLogger(__name__)

FW_TABLE = "phoenix_vmfw"
DELETING = ".deleting-"
SUITE = "bookworm"
# Settings QEMU or cloud-init read only at boot: a running VM restarts to take them.
BOOT_FIELDS = frozenset({"hostname", "cores", "memory_mb", "net", "vm"})
FIREWALL_FIELDS = frozenset({"firewall_enabled", "firewall_rules"})
# Under TCG a boot to cloud-init done takes a minute on a quiet host, several when loaded.
BOOT_TIMEOUT = 900.0


def host_nameservers(text: str, fallback: str | None) -> tuple[str, ...]:
    """The host's resolvers as a guest can use them (no loopback stub), as containers get
    them; the NIC's gateway when there is none."""
    found = [
        parts[1]
        for parts in (line.split() for line in text.splitlines())
        if len(parts) > 1 and parts[0] == "nameserver"
    ]
    usable = tuple(ns for ns in found if not ns.startswith("127.") and ns != "::1")
    return usable or ((fallback,) if fallback else ())


class QemuDriver:
    """VMs under one folder (`vm_path`), from base images cached in `image_cache`."""

    name = "qemu"

    def __init__(
        self,
        vm_path: Path,
        image_cache: Path,
        runner: Runner | None = None,
        state_dir: Path | None = None,
        *,
        fw_table: str = FW_TABLE,
        accel: Accel | None = None,
        resolv_conf: Path = Path("/etc/resolv.conf"),
        boot_timeout: float = BOOT_TIMEOUT,
        mirror: Callable[[], str] = apt_mirror,
    ) -> None:
        self.vm_path = Path(vm_path)
        self.image_cache = Path(image_cache)
        self.runner: Runner = runner or LocalRunner()
        self._log = CommandLog()
        self.vms = LocalVms(self.vm_path, self.runner, accel or "tcg", self._log)
        self._accel = accel
        self.ctx = LxcContext(self.vm_path, self.runner, self._log)
        self.firewall = firewall.GuestFirewall(
            self.ctx, fw_table, Path(state_dir or self.vm_path), tap_name, self._exists
        )
        self.resolv_conf = resolv_conf
        self.boot_timeout = boot_timeout
        self.mirror = mirror

    # The log is shared with the container driver when both serve one lab (SplitDriver).
    @property
    def log(self) -> CommandLog:
        return self._log

    @log.setter
    def log(self, value: CommandLog) -> None:
        self._log = value
        self.vms.log = value
        self.ctx.log = value

    # ---- reading ----------------------------------------------------------------------

    def _meta_path(self, vmid: int) -> Path:
        return self.vms.paths(vmid).root / meta.META_FILE

    def _exists(self, vmid: int) -> bool:
        return self._meta_path(vmid).is_file()

    def _trash(self, vmid: int) -> Path:
        return self.vm_path / f"{DELETING}{vmid}"

    def _definition(self, vmid: int) -> GuestSettings:
        path = self._meta_path(vmid)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ParseError(f"{path}: {exc}") from None
        return meta.from_json(data, self.vms.disk_gb(vmid), str(path))

    def observe(self, ctid: int) -> ObservedGuest:
        if not self._exists(ctid):
            return ObservedGuest(ctid, "missing", leftover=self._leftover(ctid))
        settings = self._definition(ctid)
        if settings.firewall_enabled:
            applied = self.firewall.state().applied_marker(ctid)
            if applied != firewall.marker(settings.firewall_rules):
                settings = replace(settings, firewall_enabled=False, firewall_rules=())
        running = self.vms.running(ctid)
        ips: tuple[str, ...] = ()
        if settings.net is not None and running:
            ips = (settings.net.ip.partition("/")[0],)
        return ObservedGuest(
            ctid,
            "running" if running else "stopped",
            settings,
            snapshots=tuple(self.vms.snapshots(ctid)),
            is_template=self.vms.is_template(ctid),
            ip_addresses=ips,
        )

    def _leftover(self, vmid: int) -> str | None:
        found = []
        root = self.vms.paths(vmid).root
        if root.exists():
            found.append(f"{root} (a create or clone stopped before its vm.json)")
        if self._trash(vmid).exists():
            found.append(f"{self._trash(vmid)} (a delete that did not finish)")
        if self.vm_path.is_dir() and vmid in self.firewall.state().guests():
            found.append(f"its firewall chains in bridge {self.firewall.table}")
        return "; ".join(found) or None

    def _clear_leftovers(self, vmid: int) -> None:
        self.vms.stop(vmid)  # a create stopped after its first boot may have left QEMU
        root = self.vms.paths(vmid).root
        for path in (self._trash(vmid), root):
            if path.exists() and not (path == root and (path / meta.META_FILE).exists()):
                self._log.file("remove", path)
                shutil.rmtree(path)
        if self.vm_path.is_dir() and vmid in self.firewall.state().guests():
            self.firewall.remove(vmid)

    # ---- making -----------------------------------------------------------------------

    def _image(self, template: str) -> Path:
        if not template:
            return build_base_image(
                self.image_cache, self.runner, SUITE, self.mirror(), progress=log.info
            )
        if "://" in template:
            raise DriverError(
                f"image {template}: the local driver takes image files; download it and "
                "name the file"
            )
        path = Path(template)
        if not path.is_file():
            raise DriverError(f"image {template}: no such file")
        return path

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        self._clear_leftovers(ctid)
        image = self._image(template)
        self.vms.create(ctid, image, settings.disk_gb or None)
        self._define(ctid, settings)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        self._clear_leftovers(ctid)
        linked = not (settings.vm and settings.vm.full_clone)
        self.vms.clone(source, ctid, linked, settings.disk_gb or None, snapshot)
        self._define(ctid, settings)

    def _define(self, vmid: int, settings: GuestSettings) -> None:
        """Seed, firewall, then the definition (last: the VM exists from here on)."""
        self.vms.write_seed(vmid, self._seed(settings))
        self._apply_firewall(vmid, settings)
        self._write_meta(vmid, settings)

    def _write_meta(self, vmid: int, settings: GuestSettings) -> None:
        path = self._meta_path(vmid)
        self._log.file("write", path)
        write_atomic(path, json.dumps(meta.to_json(settings), indent=2) + "\n", 0o600)

    def _seed(self, settings: GuestSettings) -> SeedSpec:
        vm = settings.vm
        net = settings.net
        if net is None:
            raise DriverError(f"VM {settings.hostname}: needs a NIC (network_config)")
        dhcp = net.ip == "dhcp"
        nameservers = vm.nameservers if vm and vm.nameservers else ()
        if not nameservers:
            nameservers = host_nameservers(host_resolv_text(self.resolv_conf), net.gw)
        return SeedSpec(
            hostname=settings.hostname,
            mac=net.mac or "",
            username=vm.username if vm else None,
            ssh_keys=vm.ssh_keys if vm else (),
            address=None if dhcp else net.ip,
            gateway=None if dhcp else net.gw,
            nameservers=nameservers,
            interface=net.name,
        )

    def _apply_firewall(self, vmid: int, settings: GuestSettings) -> None:
        if settings.firewall_enabled:
            self.firewall.apply(vmid, settings.firewall_rules)
        elif vmid in self.firewall.state().guests():
            self.firewall.remove(vmid)

    # ---- changing ---------------------------------------------------------------------

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        current = self._definition(ctid)
        merged = replace(settings, disk_gb=current.disk_gb)
        restart = bool(changed & BOOT_FIELDS) and self.vms.running(ctid)
        if restart:
            self.vms.shutdown(ctid, timeout=120)
        if changed & (BOOT_FIELDS - {"cores", "memory_mb"}):
            self.vms.write_seed(ctid, self._seed(merged))
        if changed & FIREWALL_FIELDS:
            self._apply_firewall(ctid, merged)
        self._write_meta(ctid, merged)
        if restart:
            self.start(ctid)

    def resize(self, ctid: int, disk_gb: int) -> None:
        """Grow the disk; growpart grows the root at the next boot (a running VM is shut
        down and started again)."""
        running = self.vms.running(ctid)
        if running:
            self.vms.shutdown(ctid, timeout=120)
        self.vms.resize(ctid, disk_gb)
        if running:
            self.start(ctid)

    def _hardware(self, vmid: int) -> VmHardware:
        s = self._definition(vmid)
        if s.net is None or not s.net.mac:
            raise DriverError(f"VM {vmid}: its definition has no NIC")
        return VmHardware(s.cores, s.memory_mb, s.net.mac, s.net.bridge)

    def _choose_accel(self) -> Accel:
        if self._accel is None:
            self._accel = choose_accel(self.ctx.warn)
            self.vms.accel = self._accel
        return self._accel

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        """Start QEMU and wait for the guest agent, then for cloud-init to be done."""
        if not self._exists(ctid):
            raise DriverError(f"VM {ctid} does not exist")
        self._choose_accel()
        hw = self._hardware(ctid)
        self.vms.start(ctid, hw)
        wait = max(timeout, self.boot_timeout)
        self.vms.wait_agent(ctid, wait)
        done = self.vms.exec(ctid, ["cloud-init", "status", "--wait"], timeout=wait)
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines()
            last = said[-1] if said else "no output"
            raise DriverError(
                f"VM {ctid}: cloud-init did not finish cleanly ({last}; "
                f"console: {self.vms.paths(ctid).console})"
            )

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        """Power off through ACPI, waiting up to `timeout`, then stop hard."""
        if not self.vms.shutdown(ctid, timeout):
            self.ctx.warn(f"VM {ctid} did not power off in {timeout:.0f}s; stopped it")

    def destroy(self, ctid: int) -> None:
        self.vms.stop(ctid)
        root = self.vms.paths(ctid).root
        if root.exists():
            trash = self._trash(ctid)
            if trash.exists():
                self._log.file("remove", trash)
                shutil.rmtree(trash)
            self._log.file("rename", root, str(trash))
            root.rename(trash)  # one atomic step: the VM is gone
        self._clear_leftovers(ctid)

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        if not self.vms.running(ctid):
            raise DriverError(f"VM {ctid} is not running")
        return self.vms.exec(ctid, argv, env=env, stdin=stdin, timeout=timeout)

    def snapshot(self, ctid: int, name: str) -> None:
        """A qcow2 internal snapshot: of the disk when the VM is stopped, of the disk and
        its memory (`savevm`, the guest paused meanwhile) when it runs."""
        if self.vms.running(ctid):
            self.vms.snapshot_running(ctid, name)
        else:
            self.vms.snapshot(ctid, name)

    def list_snapshots(self, ctid: int) -> list[str]:
        return self.vms.snapshots(ctid) if self._exists(ctid) else []

    def mark_template(self, ctid: int) -> None:
        """cloud-init's state cleaned inside (each clone is a new instance), shut down,
        the disk made read-only."""
        if self.vms.running(ctid):
            self.vms.exec(ctid, ["cloud-init", "clean", "--logs"], timeout=120).check(
                f"VM {ctid}: cleaning cloud-init before it becomes a template"
            )
            if not self.vms.shutdown(ctid, timeout=120):
                self.ctx.warn(f"VM {ctid} did not power off in 120s; stopped it")
        self.vms.mark_template(ctid)

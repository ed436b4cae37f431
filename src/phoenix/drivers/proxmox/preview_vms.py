"""The `qm` commands a fresh node would run for a plan's VMs, from the builders the VM
driver (`vmdriver.ProxmoxVmDriver`) calls, with the facts a fresh node would have: a VM
this plan made has its cloud-init drive (a clone gets its source's), the `.fw` files
written, which VMs run. `preview.Preview` hands its VM ids here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import qm
from phoenix.drivers.proxmox.commands import Version
from phoenix.drivers.proxmox.configure_commands import Command, firewall_part
from phoenix.drivers.proxmox.ownership import OwnedRaw

NODE = "localhost"  # the node an offline plan names (pvesh never proxies it)


@dataclass
class PreviewVms:
    """A fresh node's VMs; `add` appends to the preview's command list."""

    add: Callable[[Command], None]
    version: Version
    owned: OwnedRaw
    fw: dict[int, str]
    ids: set[int] = field(default_factory=set)
    running: set[int] = field(default_factory=set)
    templates: set[int] = field(default_factory=set)

    def _run(self, argv: Sequence[str]) -> None:
        self.add(Command(tuple(argv)))

    def create(self, vmid: int, image: str, settings: GuestSettings) -> None:
        self.ids.add(vmid)
        self._run(qm.create(vmid, image, settings, self.version))
        self.owned.forget(vmid)
        self._configure(vmid, settings, has_drive=False)
        self.resize(vmid, settings.disk_gb)

    def clone(self, source: int, vmid: int, snapshot: str | None, settings: GuestSettings) -> None:
        full = settings.vm.full_clone if settings.vm is not None else False
        if source in self.ids:
            qm.check_clone(vmid, source, full, source in self.templates)
        self.ids.add(vmid)
        self._run(qm.clone(source, vmid, snapshot, settings, full))
        if source in self.fw:  # Proxmox copies the source's `.fw` file
            self.fw[vmid] = self.fw[source]
        self.owned.copy(source, vmid)
        self._configure(vmid, settings, has_drive=source in self.ids)
        self.resize(vmid, settings.disk_gb)

    def configure(self, vmid: int, settings: GuestSettings) -> None:
        self._configure(vmid, settings, has_drive=True)

    def _configure(self, vmid: int, settings: GuestSettings, has_drive: bool) -> None:
        drive = {"ide2": f"{settings.storage}:vm-{vmid}-cloudinit"} if has_drive else {}
        self._run(qm.config(NODE, vmid, settings, qm.VmFacts(drive), self.version))
        extra = qm.set_options(vmid, settings.qm_options, qm.VmFacts({}))
        if extra is not None:
            self._run(extra)
        part = firewall_part(vmid, settings, self.fw.get(vmid), self.owned.fw_rules(vmid))
        for command in part.commands:
            self.add(command)
            self.fw[vmid] = command.content or ""
        part.owns.record(self.owned, vmid)

    def resize(self, vmid: int, disk_gb: int) -> None:
        argv = qm.resize(vmid, disk_gb, None)
        if argv is not None:
            self._run(argv)

    def start(self, vmid: int) -> None:
        self._run(qm.start(vmid))
        self.running.add(vmid)

    def stop(self, vmid: int, timeout: float) -> None:
        if vmid in self.running:
            self._run(qm.shutdown(vmid, timeout))
            self.running.discard(vmid)

    def destroy(self, vmid: int) -> None:
        self.stop(vmid, 60.0)
        self._run(qm.destroy(vmid))
        self.ids.discard(vmid)
        self.fw.pop(vmid, None)
        self.owned.forget(vmid)

    def snapshot(self, vmid: int, name: str) -> None:
        self._run(qm.snapshot(vmid, name))

    def mark_template(self, vmid: int, snapshots: Sequence[str]) -> None:
        qm.template(vmid, snapshots, running=False)
        if vmid in self.running:
            self.exec(vmid, ["cloud-init", "clean", "--logs"], None)
            self.stop(vmid, 120.0)
        self._run(qm.template(vmid, snapshots, running=False))
        self.templates.add(vmid)

    def exec(self, vmid: int, argv: Sequence[str], env: Mapping[str, str] | None) -> None:
        self._run(qm.guest_exec(vmid, argv, env, None))

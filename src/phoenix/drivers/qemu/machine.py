"""One VM as a QEMU command line, and where its run-time files live.

Pure: `qemu_argv` turns a `Machine` into the argv of a daemonized QEMU with a pidfile, a
QMP socket, the guest agent's virtio-serial socket, the serial console in a log file, the
disk and the cloud-init seed on virtio, and a tap on the lab bridge with the VM's fixed
MAC. The accelerator is given (see `accel`): KVM with the host's CPU, or TCG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Accel = Literal["kvm", "tcg"]
# UEFI firmware as one read-only image (ovmf): no per-VM variable store to keep; the base
# image boots through the removable-media path, which needs no boot entry.
FIRMWARE = Path("/usr/share/ovmf/OVMF.fd")
QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class VmPaths:
    """A VM's folder: its disk, seed and the files of its running QEMU."""

    root: Path

    @property
    def disk(self) -> Path:
        return self.root / "disk.qcow2"

    @property
    def seed(self) -> Path:
        return self.root / "seed.img"

    @property
    def pidfile(self) -> Path:
        return self.root / "qemu.pid"

    @property
    def qmp(self) -> Path:
        return self.root / "qmp.sock"

    @property
    def agent(self) -> Path:
        return self.root / "qga.sock"

    @property
    def console(self) -> Path:
        return self.root / "console.log"


@dataclass(frozen=True)
class Machine:
    vmid: int
    cores: int
    memory_mb: int
    mac: str
    paths: VmPaths
    tap: str | None = None
    accel: Accel = "tcg"
    firmware: Path = FIRMWARE


def tap_name(vmid: int) -> str:
    """The VM's tap device: at most 15 characters for any vmid (9 digits)."""
    return f"phxvm{vmid}"


def process_name(vmid: int) -> str:
    """What `ps` shows for the VM's QEMU, and what Phoenix checks a pid against."""
    return f"phoenix-vm-{vmid}"


def qemu_argv(m: Machine) -> list[str]:
    p = m.paths
    cpu = "host" if m.accel == "kvm" else "max"
    accel = "kvm" if m.accel == "kvm" else "tcg,thread=multi"
    argv = [
        QEMU,
        "-name",
        f"vm{m.vmid},process={process_name(m.vmid)}",
        "-nodefaults",
        "-no-user-config",
        "-machine",
        "q35",
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-smp",
        str(m.cores),
        "-m",
        str(m.memory_mb),
        "-bios",
        str(m.firmware),
        "-display",
        "none",
        "-serial",
        f"file:{p.console}",
        "-drive",
        f"file={p.disk},if=virtio,format=qcow2,discard=unmap,cache=writeback",
        "-drive",
        f"file={p.seed},if=virtio,format=raw,readonly=on",
        "-device",
        "virtio-rng-pci",
        "-chardev",
        f"socket,id=qmp,path={p.qmp},server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
        "-chardev",
        f"socket,id=qga,path={p.agent},server=on,wait=off",
        "-device",
        "virtio-serial-pci",
        "-device",
        "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
        "-pidfile",
        str(p.pidfile),
        "-daemonize",
    ]
    if m.tap is not None:
        argv += [
            "-netdev",
            f"tap,id=net0,ifname={m.tap},script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev=net0,mac={m.mac.lower()}",
        ]
    return argv

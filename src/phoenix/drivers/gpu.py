"""NVIDIA GPU passthrough as data: which device nodes a guest with GPUs `0,1` needs, their
major/minor numbers on this host, and the device-cgroup rules that admit exactly them.

The majors come from the host's `/proc/devices` (the original tool hard-coded 195 and 243;
nvidia-uvm is 238 on the H200 host in tests/fixtures/nvidia-h200, 511/234/235 elsewhere).
Minors are the driver's fixed ones: GPU i is 195:i, nvidiactl 195:255, nvidia-uvm M:0,
nvidia-uvm-tools M:1. Both drivers use this module: the LXC driver as mount entries plus
cgroup rules, the Proxmox driver as `devN` entries (or the same raw lines before PVE 8.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from phoenix.digits import is_digits
from phoenix.errors import DriverError

UVM = "/dev/nvidia-uvm"
UVM_FIX = (
    "/dev/nvidia-uvm appears only when CUDA first runs on the host (or the nvidia-uvm module "
    "is loaded): create it now with `nvidia-modprobe -u -c=0`, and for every boot add a udev "
    "rule on the host, e.g. /etc/udev/rules.d/70-nvidia-uvm.rules with "
    'KERNEL=="nvidia", RUN+="/usr/bin/nvidia-modprobe -u -c=0"'
)


@dataclass(frozen=True)
class Device:
    path: str
    major: int
    minor: int

    @property
    def relative(self) -> str:
        return self.path.lstrip("/")


def char_majors(proc_devices: str) -> dict[str, int]:
    """`/proc/devices` text -> {name: major} of its character devices (first wins)."""
    majors: dict[str, int] = {}
    section = ""
    for line in proc_devices.splitlines():
        stripped = line.strip()
        if stripped.endswith(":"):
            section = stripped
            continue
        number, _, name = stripped.partition(" ")
        if section.startswith("Character") and is_digits(number) and name:
            majors.setdefault(name.strip(), int(number))
    return majors


def device_paths(gpus: Sequence[int]) -> list[str]:
    """The nodes a guest with these GPUs gets, in a stable order (none without GPUs)."""
    if not gpus:
        return []
    return [*(f"/dev/nvidia{i}" for i in sorted(gpus)), "/dev/nvidiactl", UVM, UVM + "-tools"]


def devices(gpus: Sequence[int], majors: dict[str, int]) -> list[Device]:
    """Device nodes with numbers; refuses a host without the NVIDIA driver or nvidia-uvm."""
    if not gpus:
        return []
    if "nvidia" not in majors and "nvidiactl" not in majors:
        raise DriverError(
            "the inventory assigns GPUs but this host's /proc/devices has no 'nvidia' "
            "character device: the NVIDIA kernel driver is not loaded"
        )
    if "nvidia-uvm" not in majors:
        raise DriverError(f"the host's /proc/devices has no 'nvidia-uvm': {UVM_FIX}")
    nv = majors.get("nvidia", majors.get("nvidiactl", 195))
    uvm = majors["nvidia-uvm"]
    return [
        *(Device(f"/dev/nvidia{i}", nv, i) for i in sorted(gpus)),
        Device("/dev/nvidiactl", majors.get("nvidiactl", nv), 255),
        Device(UVM, uvm, 0),
        Device(UVM + "-tools", uvm, 1),
    ]


def mount_entry(device: Device) -> str:
    return f"{device.path} {device.relative} none bind,optional,create=file"


def cgroup_rule(device: Device) -> str:
    """One device-cgroup allow rule: this node only (not the whole major)."""
    return f"c {device.major}:{device.minor} rwm"


def gpu_index(path: str) -> int | None:
    """`/dev/nvidia3` -> 3; any other path -> None."""
    name = path.removeprefix("/dev/nvidia")
    return int(name) if name != path and is_digits(name) else None

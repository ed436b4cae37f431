"""GPU passthrough on a Proxmox node: `devN` entries (PVE >= 8.1), built and parsed.

The NVIDIA nodes (`/dev/nvidia<i>`, nvidiactl, nvidia-uvm, nvidia-uvm-tools) the inventory
names are added; an entry is deleted only when Phoenix recorded it as its own (it wrote it,
or the inventory named it) and the inventory no longer names it. Every other `devN` entry
belongs to the administrator and is left alone: an adopted NVIDIA guest whose inventory
entry says nothing about GPUs keeps them. Raw `lxc.mount.entry` lines for GPUs
(written by the original tool) count as passing the GPU; Phoenix does not edit them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from phoenix.drivers import gpu
from phoenix.drivers.proxmox.properties import parse_property_string, render_property_string
from phoenix.errors import DriverError

DEV_SINCE = (8, 1)  # `devN` appeared in pve-container 5.0.x with PVE 8.1
MAX_DEVICES = 256
_KEY = re.compile(r"^dev([0-9]+)$")
_RAW_GPU = re.compile(r"^/dev/nvidia([0-9]+)\s")


@dataclass(frozen=True)
class DevEntry:
    key: str
    path: str


def parse_entries(config: Mapping[str, object]) -> list[DevEntry]:
    found: list[tuple[int, DevEntry]] = []
    for key, raw in config.items():
        match = _KEY.match(str(key))
        if match is not None:
            path = parse_property_string(str(raw), default_key="path").get("path", "")
            found.append((int(match.group(1)), DevEntry(str(key), path)))
    return [e for _, e in sorted(found, key=lambda item: item[0])]


def observed_gpus(entries: Iterable[DevEntry], raw: Iterable[tuple[str, str]]) -> tuple[int, ...]:
    """GPU indices passed by `devN` or by raw `lxc.mount.entry` lines."""
    found = {i for e in entries if (i := gpu.gpu_index(e.path)) is not None}
    for key, value in raw:
        match = _RAW_GPU.match(value) if key == "lxc.mount.entry" else None
        if match:
            found.add(int(match.group(1)))
    return tuple(sorted(found))


def _managed(path: str) -> bool:
    return gpu.gpu_index(path) is not None or path in (
        "/dev/nvidiactl",
        gpu.UVM,
        gpu.UVM + "-tools",
    )


def render(path: str, unprivileged: bool) -> str:
    """`devN` value; in an unprivileged guest the node is world-usable (the host's mode for
    NVIDIA nodes is 0666, but Proxmox creates it root-only inside the guest otherwise)."""
    return render_property_string([("mode", "0666")] if unprivileged else [], head=path)


def set_argv(
    ctid: int,
    gpus: Sequence[int],
    present: Sequence[DevEntry],
    raw: Iterable[tuple[str, str]],
    unprivileged: bool,
    version: tuple[int, int] | None,
    mine: Collection[str] = (),
) -> list[str] | None:
    """`pct set` adding the missing NVIDIA `devN` entries and deleting the unwanted ones
    among `mine` (the device paths Phoenix recorded as its own)."""
    if version is not None and version < DEV_SINCE and gpus:
        raise DriverError(
            f"guest {ctid}: Proxmox VE {version[0]}.{version[1]} has no `devN` (8.1 and "
            "later): the GPUs are passed as raw lines with the majors of the node's "
            "/proc/devices, which an offline plan cannot know; plan against the node"
        )
    check_stale_raw(ctid, gpus, raw)
    wanted = gpu.device_paths(gpus)
    have = {e.path for e in present}
    used = {int(e.key[3:]) for e in present}
    options: list[str] = []
    for path in wanted:
        if path in have:
            continue
        index = next((i for i in range(MAX_DEVICES) if i not in used), None)
        if index is None:
            raise DriverError(f"guest {ctid}: all {MAX_DEVICES} device slots are used")
        used.add(index)
        options += [f"--dev{index}", render(path, unprivileged)]
    drop = [e.key for e in present if e.path in mine and _managed(e.path) and e.path not in wanted]
    if drop:
        options += ["--delete", ",".join(drop)]
    return ["pct", "set", str(ctid), *options] if options else None


def check_stale_raw(ctid: int, gpus: Sequence[int], raw: Iterable[tuple[str, str]]) -> None:
    """Refuse GPU raw lines Phoenix did not write for GPUs the inventory does not name."""
    stale = sorted(set(observed_gpus((), raw)) - set(gpus))
    if stale:
        raise DriverError(
            f"guest {ctid}: its config passes GPU(s) {', '.join(map(str, stale))} with raw "
            "lxc.mount.entry lines (the original tool's), which its gpu_assignment does not "
            f"name; Phoenix does not edit lines it did not write: remove them from "
            f"/etc/pve/lxc/{ctid}.conf"
        )


def raw_lines(gpus: Sequence[int], majors: dict[str, int]) -> list[tuple[str, str]]:
    """Before PVE 8.1 (no `devN`): a bind mount and one cgroup2 rule per node, as raw keys
    (PVE 7 and later run the unified cgroup hierarchy)."""
    lines: list[tuple[str, str]] = []
    for device in gpu.devices(gpus, majors):
        lines.append(("lxc.cgroup2.devices.allow", gpu.cgroup_rule(device)))
        lines.append(("lxc.mount.entry", gpu.mount_entry(device)))
    return lines


def probe(path: str) -> list[str]:
    """Exit 0 when the node has this character device."""
    return ["test", "-c", path]

"""Which raw `lxc.*` lines of a container config Phoenix owns, so it never removes the rest.

A guest made by hand or by the original tool carries lines Phoenix knows nothing about: the
GPU passthrough (`lxc.mount.entry: /dev/nvidia0 ...`, `lxc.cgroup2.devices.allow: c 195:*
rwm`), extra mounts, hooks. Rewriting "all raw keys" from the inventory would drop them, and
the guest would lose its GPUs at the restart that follows. So Phoenix owns exactly:

- the lines it wrote (recorded here, per guest, after each write), and
- the lines the inventory asks for now; for a key that holds one value (`lxc.apparmor.profile`,
  `lxc.init.cmd`...) the inventory asking for the key owns whatever line holds it.

Keys LXC reads many times (`lxc.mount.entry`, `lxc.idmap`, `lxc.cgroup2.devices.allow`, hooks,
capabilities) are owned line by line: the inventory's `lxc.mount.entry` for one path does not
own a GPU's mount entry. Everything not owned stays in the file, in place, and is not reported
as the guest's settings (so it is never drift). The record lives in the state dir of the
machine running Phoenix (`proxmox-owned-raw.json`); without it Phoenix still owns what the
inventory asks for, and a line it wrote earlier that the inventory dropped is left in place
instead of removed — nothing is lost either way.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from phoenix.files import make_owned_dir, write_atomic

Line = tuple[str, str]

_MULTI = re.compile(
    r"^lxc\.(mount\.entry|mount\.auto|idmap|include|cap\.(drop|keep)|hook\..+|"
    r"environment(\.runtime|\.hooks)?|apparmor\.raw|cgroup2?\.devices\.(allow|deny)|"
    r"seccomp\.notify\..+)$"
)

RECORD_NAME = "proxmox-owned-raw.json"


def multi_valued(key: str) -> bool:
    """LXC reads this key many times (each line adds), so lines are owned one by one."""
    return bool(_MULTI.match(key))


def owned_lines(
    present: Iterable[Line], wanted: Sequence[Line], recorded: Iterable[Line]
) -> list[Line]:
    """The lines of `present` Phoenix owns, in their order (see the module docstring)."""
    mine = set(wanted) | set(recorded)
    single_keys = {k for k, _ in wanted if not multi_valued(k)}
    return [line for line in present if line in mine or line[0] in single_keys]


class OwnedRaw:
    """The record of raw lines Phoenix wrote, per guest; in memory, or kept in a JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._guard = threading.Lock()
        self._data: dict[str, list[list[str]]] | None = None

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> OwnedRaw:
        return cls(state_dir / RECORD_NAME)

    def _load(self) -> dict[str, list[list[str]]]:
        if self._data is None:
            self._data = {}
            if self.path is not None and self.path.is_file():
                try:
                    loaded = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    loaded = {}  # unreadable record: own only what the inventory asks for
                if isinstance(loaded, dict):
                    self._data = loaded
        return self._data

    def get(self, ctid: int) -> list[Line]:
        with self._guard:
            return [(str(k), str(v)) for k, v in self._load().get(str(ctid), [])]

    def set(self, ctid: int, lines: Sequence[Line]) -> None:
        with self._guard:
            data = self._load()
            if [list(line) for line in lines] == data.get(str(ctid)):
                return
            data[str(ctid)] = [list(line) for line in lines]
            self._save(data)

    def mount_targets(self, ctid: int) -> list[str]:
        """The `mpN` targets Phoenix wrote (`drivers.proxmox.mounts`), kept beside the lines."""
        with self._guard:
            return [str(t) for (t,) in self._load().get(f"{ctid}.mounts", [])]

    def set_mount_targets(self, ctid: int, targets: Sequence[str]) -> None:
        with self._guard:
            data = self._load()
            rows = [[t] for t in targets]
            if rows == data.get(f"{ctid}.mounts", []):
                return
            data[f"{ctid}.mounts"] = rows
            self._save(data)

    def gpu_lines(self, ctid: int) -> list[Line]:
        """The raw GPU lines Phoenix wrote on a node without `devN` (`proxmox.devices`)."""
        with self._guard:
            return [(str(k), str(v)) for k, v in self._load().get(f"{ctid}.gpu-raw", [])]

    def set_gpu_lines(self, ctid: int, lines: Sequence[Line]) -> None:
        with self._guard:
            data = self._load()
            rows = [list(line) for line in lines]
            if rows == data.get(f"{ctid}.gpu-raw", []):
                return
            data[f"{ctid}.gpu-raw"] = rows
            self._save(data)

    def _rows(self, key: str) -> list[str]:
        with self._guard:
            return [str(row) for (row,) in self._load().get(key, [])]

    def _set_rows(self, key: str, values: Sequence[str]) -> None:
        with self._guard:
            data = self._load()
            rows = [[v] for v in values]
            if rows == data.get(key, []):
                return
            data[key] = rows
            self._save(data)

    def fw_rules(self, ctid: int) -> list[str]:
        """The `.fw` rule lines Phoenix wrote (`drivers.proxmox.firewall`): its own rules."""
        return self._rows(f"{ctid}.fw")

    def set_fw_rules(self, ctid: int, lines: Sequence[str]) -> None:
        self._set_rows(f"{ctid}.fw", lines)

    def dev_paths(self, ctid: int) -> list[str]:
        """The device paths of the `devN` entries Phoenix wrote (`drivers.proxmox.devices`):
        the only ones it may delete."""
        return self._rows(f"{ctid}.devs")

    def set_dev_paths(self, ctid: int, paths: Sequence[str]) -> None:
        self._set_rows(f"{ctid}.devs", paths)

    def copy(self, source: int, ctid: int) -> None:
        """A clone carries its source's lines, mounts, devices and `.fw` file (Proxmox
        copies them), which Phoenix wrote there."""
        self.set(ctid, self.get(source))
        self.set_mount_targets(ctid, self.mount_targets(source))
        self.set_gpu_lines(ctid, self.gpu_lines(source))
        self.set_fw_rules(ctid, self.fw_rules(source))
        self.set_dev_paths(ctid, self.dev_paths(source))

    def forget(self, ctid: int) -> None:
        with self._guard:
            data = self._load()
            keys = (str(ctid), *(f"{ctid}.{k}" for k in ("mounts", "gpu-raw", "fw", "devs")))
            gone = [data.pop(key, None) for key in keys]
            if any(g is not None for g in gone):
                self._save(data)

    def _save(self, data: dict[str, list[list[str]]]) -> None:
        if self.path is None:
            return
        make_owned_dir(self.path.parent)
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

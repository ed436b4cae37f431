"""Lifecycle snapshots of a container with host-path bind mounts, when the inventory asks
for them (`lifecycle_snapshots_detach_bind_mounts`).

Proxmox refuses to snapshot such a guest: `pct snapshot` checks every mount point
(pve-container `src/PVE/LXC/Config.pm`, `has_feature`) and a host path has no snapshot
feature (pve-storage `src/PVE/Storage.pm`). On a stopped guest the bind mounts can be taken
out of its config for the snapshot and put back after it:

    pct shutdown N --timeout 60 --forceStop 1   (a running guest: a deletion would wait
                                                 in [pve:pending] and block the snapshot)
    pct set N --delete mp0,mp2
    pct snapshot N final-form
    pct set N --mp0 <value> --mp2 <value>       (the values as they were, byte for byte)
    pct start N                                 (when it was running)

The lines go to a record in Phoenix's state dir (`proxmox-detached-binds.json`, written and
fsynced) before the `--delete`, and leave it only once the config read back holds them
again: a run killed anywhere in between leaves the record, and the next run puts the lines
back before it plans anything (`resume`). The snapshot itself holds no bind mounts, so a
`pct rollback` to it gives a guest without them: the next converge adds the inventory's
bind mounts again (they are drift), and the snapshot's description lists every line it
left out, for the ones added by hand.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.base import Check
from phoenix.drivers.proxmox import commands
from phoenix.drivers.proxmox.properties import parse_property_string
from phoenix.errors import PhoenixError
from phoenix.files import make_owned_dir, write_atomic

RECORD_NAME = "proxmox-detached-binds.json"

_MOUNT_KEY = re.compile(r"^mp([0-9]+)$")

Lines = dict[str, str]  # `mpN` -> its value, as the config holds it


def bind_lines(config: Mapping[str, Any]) -> Lines:
    """The config's host-path bind mounts (`mpN: /host/path,mp=...`), in mpN order."""
    found = {
        key: str(value)
        for key, value in config.items()
        if _MOUNT_KEY.match(key) and str(value).split(",")[0].startswith("/")
    }
    return {key: found[key] for key in sorted(found, key=_index)}


def _index(key: str) -> int:
    match = _MOUNT_KEY.match(key)
    return int(match.group(1)) if match else -1


def detach_cmd(ctid: int, lines: Lines) -> list[str]:
    return ["pct", "set", str(ctid), "--delete", ",".join(lines)]


def attach_cmd(ctid: int, lines: Lines) -> list[str]:
    argv = ["pct", "set", str(ctid)]
    for key, value in lines.items():
        argv += [f"--{key}", value]
    return argv


def snapshot_cmd(ctid: int, name: str, lines: Lines) -> list[str]:
    """`pct snapshot` with a description naming what the snapshot left out, for whoever
    rolls back to it."""
    held = "; ".join(f"{key}: {value}" for key, value in lines.items())
    note = f"Taken by Phoenix with its bind mounts detached (after a rollback, add back: {held})"
    return [*commands.snapshot(ctid, name), "--description", note]


def same(recorded: str, found: object) -> bool:
    """Whether the config holds the recorded mount again. Compared as properties: Proxmox
    prints a mount point it parsed in its own key order (pve-container
    `src/PVE/LXC/Config.pm`, `print_ct_mountpoint`)."""
    if not isinstance(found, str):
        return False
    return parse_property_string(recorded, "volume") == parse_property_string(found, "volume")


def conflicts(lines: Lines, config: Mapping[str, Any]) -> list[str]:
    """The recorded `mpN` slots the config now holds with something else."""
    return [key for key, value in lines.items() if key in config and not same(value, config[key])]


def missing(lines: Lines, config: Mapping[str, Any]) -> Lines:
    """The recorded lines the config does not hold (the ones to put back)."""
    return {key: value for key, value in lines.items() if key not in config}


class DetachedBinds:
    """The bind mounts detached for a snapshot and not yet put back, per node and guest; in
    memory, or kept in a JSON file (written before each `--delete`)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._guard = threading.Lock()
        self._memory: dict[str, Lines] = {}

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> DetachedBinds:
        return cls(state_dir / RECORD_NAME)

    def _load(self) -> dict[str, Lines]:
        if self.path is None:
            return self._memory
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Losing this record would lose the guest's bind mounts: never read it as empty.
            raise PhoenixError(
                f"{self.path}: unreadable ({exc}); it lists bind mounts Phoenix detached for "
                "a snapshot and must put back: repair it, or put them back by hand "
                "(`pct set N --mpX ...`) and remove it"
            ) from None
        if not isinstance(loaded, dict):
            raise PhoenixError(f"{self.path}: not a JSON object; it lists bind mounts to put back")
        return {
            str(k): {str(mp): str(v) for mp, v in lines.items()}
            for k, lines in loaded.items()
            if isinstance(lines, dict)
        }

    def _save(self, data: dict[str, Lines]) -> None:
        if self.path is None:
            self._memory = data
            return
        make_owned_dir(self.path.parent)
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def nodes(self) -> list[str]:
        """The nodes with bind mounts still detached."""
        with self._guard:
            return sorted({key.rpartition("/")[0] for key in self._load()})

    def of_node(self, node: str) -> dict[int, Lines]:
        """ctid -> the lines detached on `node`."""
        with self._guard:
            prefix = f"{node}/"
            return {
                int(key[len(prefix) :]): lines
                for key, lines in self._load().items()
                if key.startswith(prefix) and is_digits(key[len(prefix) :])
            }

    def put(self, node: str, ctid: int, lines: Lines) -> None:
        with self._guard:
            data = self._load()
            data[f"{node}/{ctid}"] = dict(lines)
            self._save(data)

    def drop(self, node: str, ctid: int) -> None:
        with self._guard:
            data = self._load()
            if data.pop(f"{node}/{ctid}", None) is not None:
                self._save(data)


def doctor_check(record: DetachedBinds) -> Check:
    """`phoenix doctor`: bind mounts a killed run left detached are a finding, with the way
    back (converge puts them back before anything else)."""
    try:
        held = {node: record.of_node(node) for node in record.nodes()}
    except PhoenixError as exc:
        return Check("detached bind mounts", False, str(exc), "")
    out = [
        f"guest {ctid} on {node}: {', '.join(f'{k}: {v}' for k, v in lines.items())}"
        for node, guests in held.items()
        for ctid, lines in sorted(guests.items())
    ]
    if not out:
        return Check("detached bind mounts", True, "none left out by an interrupted snapshot")
    return Check(
        "detached bind mounts",
        False,
        f"a run killed during a snapshot left these detached ({record.path}): " + "; ".join(out),
        "run `phoenix converge`: it puts them back before anything else",
    )

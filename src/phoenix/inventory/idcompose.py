"""A guest's `id_maps` as the ranges LXC and Proxmox are given (`lxc.idmap` lines).

Two forms mean two things. Entries written `u|g|b` (or `"u 0 100000 65536"`) are the whole
map, as written. Entries written as the original tool did (`"type": "uid"|"gid"`, `size`)
are pass-throughs: each keeps its guest ids at the given host ids (gid 33 inside is gid 33
on the host, so files on a shared bind mount keep their owner) and every other id keeps
the default map every unprivileged guest gets (guest 0..65535 -> host 100000..165535).
Composing them gives, for uids and gids separately, the default range below each
pass-through, the pass-through, and the default range above it: the lines Proxmox's
documentation gives for this case (pve.proxmox.com/wiki/Unprivileged_LXC_containers, "Using
local directory bind mount points"), with `root:ID:COUNT` in /etc/subuid or /etc/subgid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from phoenix.inventory.models import IdMap

Kind = Literal["u", "g"]
DEFAULT_HOST = 100_000  # Proxmox's and LXC's default: guest root is host 100000
DEFAULT_SIZE = 65_536


@dataclass(frozen=True)
class MapRange:
    """`count` guest ids from `guest` are host ids from `host`; `entry` is the index of the
    inventory entry it came from (None: a piece of the default map)."""

    kind: Kind
    guest: int
    host: int
    count: int
    entry: int | None = None

    @property
    def line(self) -> str:
        return f"{self.kind} {self.guest} {self.host} {self.count}"


def is_passthrough_map(maps: list[IdMap]) -> bool:
    """True when the entries are the original tool's pass-throughs (validate refuses a
    mix of both forms)."""
    return bool(maps) and all(m.passthrough for m in maps)


def compose(maps: list[IdMap]) -> list[MapRange]:
    """The ranges of the guest's map: [] when it has none (the driver's default map), the
    entries as written, or the default map with the pass-throughs punched in (uids first,
    then gids, each by guest id)."""
    if not maps:
        return []
    if not is_passthrough_map(maps):
        return [
            MapRange(kind, m.container_id, m.host_id, m.count, index)
            for index, m in enumerate(maps)
            for kind in m.kinds
        ]
    out: list[MapRange] = []
    for kind in ("u", "g"):
        holes = sorted(
            (m.container_id, m.host_id, m.count, index)
            for index, m in enumerate(maps)
            if kind in m.kinds
        )
        out += _around(kind, holes)
    return out


def _around(kind: Kind, holes: list[tuple[int, int, int, int]]) -> list[MapRange]:
    """The default map of `kind` with `holes` (guest, host, count, entry) passed through;
    overlapping holes are kept as written (validate reports them)."""
    out: list[MapRange] = []
    cursor = 0
    for guest, host, count, index in holes:
        end = min(guest, DEFAULT_SIZE)
        if end > cursor:
            out.append(MapRange(kind, cursor, DEFAULT_HOST + cursor, end - cursor))
        out.append(MapRange(kind, guest, host, count, index))
        cursor = max(cursor, guest + count)
    if cursor < DEFAULT_SIZE:
        out.append(MapRange(kind, cursor, DEFAULT_HOST + cursor, DEFAULT_SIZE - cursor))
    return out

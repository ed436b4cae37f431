"""A guest's uid/gid map as both drivers write it: `lxc.idmap = KIND GUEST HOST COUNT` lines.

The inventory's `id_maps` become `lxc.idmap` raw lines (the form Proxmox reads from the
container's conf, and LXC from its config), so the raw lines are the single truth: this
module reads a map back from them, translates ids through it (a mount's owner as the guest
sees it -> the host id to chown to) and checks a map against the host's delegated ranges
(`/etc/subuid`, `/etc/subgid`). A guest without `lxc.idmap` lines gets the default map both
drivers use: guest 0..65535 -> host 100000..165535.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from phoenix.digits import is_digits

Kind = Literal["u", "g"]
KEY = "lxc.idmap"
DEFAULT_BASE = 100_000
DEFAULT_COUNT = 65_536


@dataclass(frozen=True, order=True)
class IdRange:
    """`count` guest ids from `guest` are host ids from `host` (for uids or gids)."""

    kind: Kind
    guest: int
    host: int
    count: int

    @property
    def value(self) -> str:
        return f"{self.kind} {self.guest} {self.host} {self.count}"


DEFAULT: tuple[IdRange, ...] = (
    IdRange("u", 0, DEFAULT_BASE, DEFAULT_COUNT),
    IdRange("g", 0, DEFAULT_BASE, DEFAULT_COUNT),
)


def parse_value(value: str) -> list[IdRange]:
    """One `lxc.idmap` value (`b` stands for both kinds); ValueError when malformed."""
    parts = value.split()
    if (
        len(parts) != 4
        or parts[0] not in ("u", "g", "b")
        or not all(is_digits(p) for p in parts[1:])
    ):
        raise ValueError(f"{value!r} is not 'u|g|b GUEST_ID HOST_ID COUNT'")
    guest, host, count = (int(p) for p in parts[1:])
    if count < 1:
        raise ValueError(f"{value!r}: the count must be at least 1")
    kinds: tuple[Kind, ...] = ("u", "g") if parts[0] == "b" else ((parts[0],))  # type: ignore[assignment]
    return [IdRange(k, guest, host, count) for k in kinds]


def from_raw(raw: Iterable[tuple[str, str]]) -> tuple[IdRange, ...]:
    """The map written as `lxc.idmap` raw lines (malformed ones skipped), () when none."""
    ranges: list[IdRange] = []
    for key, value in raw:
        if key == KEY:
            try:
                ranges += parse_value(value)
            except ValueError:
                continue
    return tuple(ranges)


def effective(ranges: tuple[IdRange, ...]) -> tuple[IdRange, ...]:
    return ranges or DEFAULT


def to_host(ranges: tuple[IdRange, ...], kind: Kind, guest_id: int) -> int | None:
    """The host id of `guest_id` (None: the guest's map does not cover it)."""
    for r in effective(ranges):
        if r.kind == kind and r.guest <= guest_id < r.guest + r.count:
            return r.host + guest_id - r.guest
    return None


def to_guest(ranges: tuple[IdRange, ...], kind: Kind, host_id: int) -> int | None:
    for r in effective(ranges):
        if r.kind == kind and r.host <= host_id < r.host + r.count:
            return r.guest + host_id - r.host
    return None


def root(ranges: tuple[IdRange, ...]) -> tuple[int, int]:
    """Host uid and gid of the guest's root (the inventory check makes sure both exist)."""
    uid = to_host(ranges, "u", 0)
    gid = to_host(ranges, "g", 0)
    if uid is None or gid is None:
        raise ValueError("the id map does not map the guest's root (uid/gid 0)")
    return uid, gid


def offset(ranges: tuple[IdRange, ...]) -> int | None:
    """The single shift the map applies to every id (the default: 100000), or None when
    it is not one shift for uids and gids alike (a custom map with holes)."""
    rs = effective(ranges)
    shifts = {r.host - r.guest for r in rs}
    if len(shifts) != 1:
        return None
    return shifts.pop()


def delegated(text: str, user: str = "root") -> list[tuple[int, int]]:
    """(start, count) ranges that /etc/subuid-style text delegates to `user`."""
    out: list[tuple[int, int]] = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user and is_digits(parts[1]) and is_digits(parts[2]):
            out.append((int(parts[1]), int(parts[2])))
    return out


def uncovered(ranges: tuple[IdRange, ...], kind: Kind, text: str) -> list[IdRange]:
    """The ranges of `kind` whose host ids are not all delegated to root in `text`
    (/etc/subuid for `u`, /etc/subgid for `g`)."""
    have: list[tuple[int, int]] = []
    for start, count in sorted(delegated(text)):  # adjacent lines cover one range together
        if have and start <= have[-1][0] + have[-1][1]:
            first, n = have[-1]
            have[-1] = (first, max(n, start + count - first))
        else:
            have.append((start, count))
    return [
        r
        for r in effective(ranges)
        if r.kind == kind
        and not any(start <= r.host and r.host + r.count <= start + count for start, count in have)
    ]

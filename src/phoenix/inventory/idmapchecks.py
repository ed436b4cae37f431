"""Checks on a guest's `id_maps`: a map LXC and Proxmox will accept and Phoenix can honour.

What the inventory alone can tell: the map belongs to an unprivileged guest, is written
once (not also as raw `lxc.idmap` lines) and in one form, maps the guest's root for uids and
gids (to one host id: Phoenix writes the guest's own files as that root), never maps host
root, and has no two ranges sharing a guest or host id. A pass-through (the original
tool's `"type": "uid"|"gid"`) never includes the guest's root, which stays on the default
map, and its host ids may not be ones the default map still uses. Whether the host
delegates the ranges to root (`/etc/subuid`, `/etc/subgid`) is a host fact: the LXC driver
checks it before creating (and `phoenix setup` writes it), `phoenix doctor` on both drivers.
"""

from __future__ import annotations

import itertools

from phoenix.inventory.core import LXC_FILE
from phoenix.inventory.idcompose import MapRange, compose, is_passthrough_map
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.problems import Problem, json_path

_KIND_NAME = {"u": "uid", "g": "gid"}


def _root(ranges: list[MapRange], kind: str) -> int | None:
    for r in ranges:
        if r.kind == kind and r.guest <= 0 < r.guest + r.count:
            return r.host - r.guest
    return None


def idmap_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    if not guest.id_maps:
        return []

    def problem(message: str, index: int | None = None) -> Problem:
        return _problem(ctid, message, index)

    if not guest.unprivileged:
        return [problem("an id map is for unprivileged guests: set 'unprivileged': true")]
    out: list[Problem] = []
    if any(k == "lxc.idmap" for k, _ in guest.lxc_option_pairs):
        out.append(problem("the map is also written as lxc.idmap in lxc_options: keep one"))
    forms = {m.passthrough for m in guest.id_maps}
    if len(forms) > 1:
        return [
            *out,
            problem(
                "mixes pass-throughs ('type': 'uid'|'gid', kept beside the default map) with "
                "ranges of a whole map ('type': 'u'|'g'|'b'): write every entry one way"
            ),
        ]
    passthrough = is_passthrough_map(guest.id_maps)
    if passthrough:
        for index, m in enumerate(guest.id_maps):
            if m.container_id == 0:
                out.append(
                    problem(
                        "a pass-through cannot include the guest's root (id 0), which stays "
                        "host id 100000: start at 1 or more",
                        index,
                    )
                )
    ranges = compose(guest.id_maps)
    for kind in ("u", "g"):
        out += _overlaps(ctid, ranges, kind, passthrough)
        if _root(ranges, kind) is None:
            out.append(
                problem(
                    f"no range maps the guest's root {_KIND_NAME[kind]} 0: add "
                    f"'{kind} 0 HOST_ID COUNT' (LXC refuses to start such a guest)"
                )
            )
    uid, gid = _root(ranges, "u"), _root(ranges, "g")
    if uid is not None and gid is not None and uid != gid:
        out.append(
            problem(
                f"the guest's root is uid {uid} but gid {gid} on the host: map uid 0 and gid 0 "
                "to the same host id (Phoenix writes the guest's files as its root)"
            )
        )
    return out


def _problem(ctid: int, message: str, index: int | None = None) -> Problem:
    parts: list[str | int] = ["lxc_configs", str(ctid), "id_maps"]
    return Problem(LXC_FILE, json_path(parts if index is None else [*parts, index]), message)


def _later(a: MapRange, b: MapRange) -> int | None:
    """The entry written later of two that clash (a default piece is never to blame)."""
    entries = [r.entry for r in (a, b) if r.entry is not None]
    return max(entries) if entries else None


def _overlaps(ctid: int, ranges: list[MapRange], kind: str, passthrough: bool) -> list[Problem]:
    """Guest and host ids mapped twice (the kernel refuses such a map), and host root."""

    def problem(message: str, index: int | None) -> Problem:
        return _problem(ctid, message, index)

    out: list[Problem] = []
    name = _KIND_NAME[kind]
    mine = sorted((r for r in ranges if r.kind == kind), key=lambda r: r.guest)
    for a, b in itertools.pairwise(mine):
        if b.guest < a.guest + a.count:
            out.append(problem(f"{name} {b.guest} is mapped twice", _later(a, b)))
    by_host = sorted(mine, key=lambda r: (r.host, r.entry is not None))
    for a, b in itertools.pairwise(by_host):
        if b.host < a.host + a.count:
            entry = _later(a, b)
            first = max(a.host, b.host)
            if passthrough and (a.entry is None or b.entry is None):
                default = a if a.entry is None else b
                guest_id = default.guest + first - default.host
                message = (
                    f"host {name} {first} is the default map's host id of guest {name} "
                    f"{guest_id}: pass through another host id, or guest {name} {guest_id} too"
                )
            else:
                message = f"host {name} {first} is mapped twice"
            out.append(problem(message, entry))
    for r in mine:
        if r.host == 0 and r.entry is not None:
            out.append(problem("maps host root (id 0) into the guest: start at 1 or more", r.entry))
    return out


def proxmox_idmap_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    """On Proxmox the template is unpacked under the default map (guest ids 0..65535) and
    Phoenix re-owns the files through the guest's own map before its first start; a file
    whose owner the map lacks becomes the guest's nobody (65534), which the map must have."""
    if not guest.id_maps or not guest.unprivileged:
        return []
    ranges = compose(guest.id_maps)
    return [
        _problem(
            ctid,
            f"on Proxmox the map must give guest {_KIND_NAME[kind]} 65534 (nobody) a host id: "
            "the template is unpacked under guest ids 0..65535 and Phoenix re-owns its files "
            "through this map before the first start, a file whose owner the map lacks "
            f"becoming nobody. Map the guest's {_KIND_NAME[kind]}s 0..65535",
        )
        for kind in ("u", "g")
        if not any(r.kind == kind and r.guest <= 65534 < r.guest + r.count for r in ranges)
    ]

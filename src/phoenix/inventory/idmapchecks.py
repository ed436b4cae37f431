"""Checks on a guest's `id_maps`: a map LXC and Proxmox will accept and Phoenix can honour.

What the inventory alone can tell: the map belongs to an unprivileged guest, is written
once (not also as raw `lxc.idmap` lines), maps the guest's root for uids and gids (to one
host id: Phoenix writes the guest's own files as that root), never maps host root, and has
no two ranges sharing a guest or host id. Whether the host delegates the ranges to root
(`/etc/subuid`, `/etc/subgid`) is a host fact: the LXC driver checks it before creating,
and `phoenix doctor` on a Proxmox node.
"""

from __future__ import annotations

import itertools

from phoenix.inventory.core import LXC_FILE
from phoenix.inventory.models import IdMap, LxcGuest
from phoenix.inventory.problems import Problem, json_path

_KIND_NAME = {"u": "uid", "g": "gid"}


def _expand(maps: list[IdMap]) -> list[tuple[int, str, int, int, int]]:
    """(index, kind, container_id, host_id, count) with `b` split into `u` and `g`."""
    kinds = {"u": ("u",), "g": ("g",), "b": ("u", "g")}
    return [
        (i, k, m.container_id, m.host_id, m.count)
        for i, m in enumerate(maps)
        for k in kinds[m.type]
    ]


def _root(ranges: list[tuple[int, str, int, int, int]], kind: str) -> int | None:
    for _, k, guest, host, count in ranges:
        if k == kind and guest <= 0 < guest + count:
            return host - guest
    return None


def idmap_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    if not guest.id_maps:
        return []
    where = json_path(["lxc_configs", str(ctid), "id_maps"])

    def problem(message: str, index: int | None = None) -> Problem:
        path = where if index is None else json_path(["lxc_configs", str(ctid), "id_maps", index])
        return Problem(LXC_FILE, path, message)

    if not guest.unprivileged:
        return [problem("an id map is for unprivileged guests: set 'unprivileged': true")]
    out: list[Problem] = []
    if any(k == "lxc.idmap" for k, _ in guest.lxc_option_pairs):
        out.append(problem("the map is also written as lxc.idmap in lxc_options: keep one"))
    ranges = _expand(guest.id_maps)
    for kind in ("u", "g"):
        mine = sorted((r for r in ranges if r[1] == kind), key=lambda r: r[2])
        for a, b in itertools.pairwise(mine):
            if b[2] < a[2] + a[4]:
                out.append(problem(f"{_KIND_NAME[kind]} {b[2]} is mapped twice", b[0]))
        by_host = sorted(mine, key=lambda r: r[3])
        for a, b in itertools.pairwise(by_host):
            if b[3] < a[3] + a[4]:
                out.append(problem(f"host {_KIND_NAME[kind]} {b[3]} is mapped twice", b[0]))
        for index, _, _, host, _ in mine:
            if host == 0:
                out.append(
                    problem("maps host root (id 0) into the guest: start at 1 or more", index)
                )
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

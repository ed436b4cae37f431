"""Memory, swap and CPU limits as LXC config keys for the cgroup hierarchy the host has.

LXC ignores (with a warning) keys for the hierarchy the host does not run, so the driver
detects v1 or v2 at runtime and writes only the keys that take effect. Observing parses the
same keys back, so a converged guest compares equal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from phoenix.digits import is_digits

MIB = 1024 * 1024
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupHost:
    """What the host's cgroup hierarchy offers for container limits."""

    version: Literal[1, 2]
    memsw: bool  # v1: memory.memsw.* present (swap accounting enabled)
    cpus: int

    @property
    def prefix(self) -> str:
        return "lxc.cgroup" if self.version == 1 else "lxc.cgroup2"


def detect(root: Path = Path("/sys/fs/cgroup")) -> CgroupHost:
    """cgroup v2 when the root is the unified hierarchy, else v1 (legacy or hybrid)."""
    cpus = os.cpu_count() or 1
    if (root / "cgroup.controllers").exists():
        return CgroupHost(2, memsw=False, cpus=cpus)
    memsw = (root / "memory" / "memory.memsw.limit_in_bytes").exists()
    return CgroupHost(1, memsw=memsw, cpus=cpus)


def cpuset(ctid: int, cores: int, host_cpus: int) -> str:
    """`cores` of the host's CPUs (never more than exist), starting at CPU `ctid % host_cpus`
    and wrapping, so guests spread over the host as Proxmox balances them instead of every
    1-core guest sharing CPU 0. Stable per CTID: re-rendering never moves a guest."""
    n = max(1, min(cores, host_cpus))
    if n == host_cpus:
        return _span(0, host_cpus - 1)
    first = ctid % host_cpus
    last = first + n - 1
    if last < host_cpus:
        return _span(first, last)
    return f"{_span(0, last - host_cpus)},{_span(first, host_cpus - 1)}"


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def limit_keys(
    host: CgroupHost, ctid: int, memory_mb: int, swap_mb: int, cores: int
) -> list[tuple[str, str]]:
    """Config (key, value) pairs enforcing the limits. Cores are a CFS quota (exact, even
    above the host's CPU count) plus a cpuset of at most the host's CPUs."""
    p = host.prefix
    quota = cores * CFS_PERIOD_US
    if host.version == 1:
        keys = [(f"{p}.memory.limit_in_bytes", str(memory_mb * MIB))]
        if host.memsw:
            keys.append((f"{p}.memory.memsw.limit_in_bytes", str((memory_mb + swap_mb) * MIB)))
        keys += [
            (f"{p}.cpuset.cpus", cpuset(ctid, cores, host.cpus)),
            (f"{p}.cpu.cfs_period_us", str(CFS_PERIOD_US)),
            (f"{p}.cpu.cfs_quota_us", str(quota)),
        ]
        return keys
    return [
        (f"{p}.memory.max", str(memory_mb * MIB)),
        (f"{p}.memory.swap.max", str(swap_mb * MIB)),
        (f"{p}.cpuset.cpus", cpuset(ctid, cores, host.cpus)),
        (f"{p}.cpu.max", f"{quota} {CFS_PERIOD_US}"),
    ]


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None
    swap_mb: int | None
    cores: int | None


def parse_limits(pairs: dict[str, str]) -> Limits:
    """Read memory/swap/cores back from config keys of either hierarchy (None: not set)."""
    memory = swap = cores = None
    v1_mem = pairs.get("lxc.cgroup.memory.limit_in_bytes")
    v2_mem = pairs.get("lxc.cgroup2.memory.max")
    if v1_mem is not None:
        memory = _mib(v1_mem)
        memsw = pairs.get("lxc.cgroup.memory.memsw.limit_in_bytes")
        if memsw is not None and memory is not None:
            total = _mib(memsw)
            swap = None if total is None else total - memory
    elif v2_mem is not None:
        memory = _mib(v2_mem)
        swap_max = pairs.get("lxc.cgroup2.memory.swap.max")
        swap = None if swap_max is None else _mib(swap_max)
    quota = pairs.get("lxc.cgroup.cpu.cfs_quota_us")
    period = pairs.get("lxc.cgroup.cpu.cfs_period_us", str(CFS_PERIOD_US))
    if "lxc.cgroup2.cpu.max" in pairs:
        quota, _, period = pairs["lxc.cgroup2.cpu.max"].partition(" ")
        period = period or str(CFS_PERIOD_US)
    if quota is not None and is_digits(quota) and is_digits(period) and int(period) > 0:
        cores = max(1, int(quota) // int(period))
    else:
        cpus = pairs.get("lxc.cgroup.cpuset.cpus") or pairs.get("lxc.cgroup2.cpuset.cpus")
        if cpus:
            cores = count_cpus(cpus)
    return Limits(memory, swap, cores)


def _mib(value: str) -> int | None:
    value = value.strip()
    return int(value) // MIB if is_digits(value) else None


def count_cpus(spec: str) -> int:
    """`0-3,6` -> 5."""
    total = 0
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        total += (int(hi) - int(lo) + 1) if hi else 1
    return total

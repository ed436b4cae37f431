"""Converge benchmarks on real LXC (root): printed side by side in one run.

1. `converge` of an already-converged lab of 5 guests (a template and 4 clones), median of
   several runs (target: < 2 s): observation and in-guest marker reads only.
2. Converging 4 (and 2) independent new guests vs 1 (clone, configure, start, application),
   interleaved in the same run (target ratio <= 1.5): the executor's parallelism, bounded by
   the machine's cores; the CPU one new guest costs is printed with the floor it implies.

    sudo .venv/bin/python bench/converge_bench.py [--runs 5] [--clone linked|full]

Clones are linked (overlay on the template's snapshot, the driver's default) unless
`--clone full` asks for full rootfs copies, to compare the two.

Uses its own bridge (phxbench0, 10.213.95.0/24), LXC path, nft tables and state dir under
/var/lib/phoenix-bench, all removed at the end; the template is cached with the tests'.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.lxc.hostprep import BridgeSpec, HostSetup, routes_overlapping
from phoenix.drivers.lxc.rootfs import CLONE_MODES
from phoenix.inventory import load_inventory
from phoenix.plan.run import converge
from phoenix.runners.local import LocalRunner

ROOT = Path("/var/lib/phoenix-bench")
TEMPLATES = Path(os.environ.get("PHOENIX_TEST_TEMPLATES", "/var/cache/phoenix-test/templates"))
BRIDGE, SUBNET = "phxbench0", ipaddress.IPv4Network("10.213.95.0/24")
FW_TABLE, NAT_TABLE = "phoenix_fw_bench", "phoenix_nat_bench"
TEMPLATE = 7850
APP = "#!/bin/sh\nset -eu\nmkdir -p /var/lib/phxbench\necho ok > /var/lib/phxbench/app\n"


def _entry(name: str, n: int, **extra: Any) -> dict[str, Any]:
    net = {
        "name": "eth0",
        "bridge": BRIDGE,
        "ip": f"{SUBNET.network_address + n}/24",
        "gw": str(SUBNET.network_address + 1),
    }
    return {
        "name": name,
        "memory_mb": 256,
        "swap_mb": 128,
        "cores": 1,
        "storage_size_gb": 2,
        "network_config": net,
        **extra,
    }


def _write_inventory(etc: Path, guests: dict[int, dict[str, Any]], state: Path) -> None:
    hyp = {
        "phoenix": {
            "driver": "lxc",
            "lxc_path": str(ROOT / "lxc"),
            "state_dir": str(state),
            "template_cache": str(TEMPLATES),
            "parallel": 4,
        }
    }
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
    lxc = {"lxc_configs": {str(c): e for c, e in guests.items()}}
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps(lxc))


def _timed_converge(etc: Path, driver: LxcDriver, state: Path, ids: list[int] | None) -> float:
    inventory = load_inventory(etc)
    os.sync()  # start each measurement without the previous step's writeback pending
    start = time.perf_counter()
    outcome = converge(inventory, driver, ids, state_dir=state)
    elapsed = time.perf_counter() - start
    outcome.result.raise_for_failures()
    return elapsed


def _host_cpu() -> float:
    """CPU seconds of this process and the commands it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _guest_cpu(ctid: int) -> float:
    """CPU seconds the running guest's cgroup used (boot, in-guest commands), v1 or v2."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/lxc.payload.{ctid}/cpuacct.usage")
    if v1.is_file():
        return int(v1.read_text()) / 1e9
    v2 = Path(f"/sys/fs/cgroup/lxc.payload.{ctid}/cpu.stat")
    if v2.is_file():
        stats = dict(line.split() for line in v2.read_text().splitlines())
        return int(stats["usage_usec"]) / 1e6
    return 0.0


def _template_and(clones: dict[int, int]) -> dict[int, dict[str, Any]]:
    guests = {
        TEMPLATE: _entry(
            "phxbench-base",
            50,
            template="debootstrap:bookworm",
            template_snapshot_name="final-form",
        )
    }
    for ctid, n in clones.items():
        guests[ctid] = _entry(
            f"phxbench-{ctid}", n, clone_from_ctid=str(TEMPLATE), application_script="app.sh"
        )
    return guests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clone", choices=CLONE_MODES, default="linked")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (real containers)", file=sys.stderr)
        return 2
    routes = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if routes_overlapping(routes, SUBNET, ignore_dev=BRIDGE):
        print(f"{SUBNET} overlaps a host route; not benchmarking", file=sys.stderr)
        return 2
    state = ROOT / "state"
    setup = HostSetup(LocalRunner(), state, nat_table=NAT_TABLE, fw_table=FW_TABLE)
    setup.apply([BridgeSpec(BRIDGE, ipaddress.IPv4Interface(f"{SUBNET.network_address + 1}/24"))])
    driver = LxcDriver(
        ROOT / "lxc", TEMPLATES, LocalRunner(), state, fw_table=FW_TABLE, clone_mode=args.clone
    )
    etc = Path(tempfile.mkdtemp(prefix="phxbench-"))
    (etc / "scripts").mkdir()
    (etc / "scripts" / "app.sh").write_text(APP)
    made: set[int] = set()
    try:
        # 1. A converged lab of 5 guests: build it (not timed), then time re-runs.
        lab = {7851: 51, 7852: 52, 7853: 53, 7854: 54}
        _write_inventory(etc, _template_and(lab), state)
        made |= {TEMPLATE, *lab}
        build = _timed_converge(etc, driver, state, None)
        reruns = [_timed_converge(etc, driver, state, None) for _ in range(args.runs)]
        for ctid in lab:
            driver.destroy(ctid)

        # 2. 1 vs 2 vs 4 new independent guests (the template already exists), interleaved.
        walls: dict[int, list[float]] = {1: [], 2: [], 4: []}
        cpu_per_guest: list[float] = []
        for _ in range(max(1, args.runs // 2)):
            for count in walls:
                guests = {7861 + i: 61 + i for i in range(count)}
                _write_inventory(etc, _template_and(guests), state)
                made |= set(guests)
                host_before = _host_cpu()
                walls[count].append(_timed_converge(etc, driver, state, list(guests)))
                if count == 1:
                    guest = sum(_guest_cpu(ctid) for ctid in guests)
                    cpu_per_guest.append(guest + _host_cpu() - host_before)
                for ctid in guests:
                    driver.destroy(ctid)
    finally:
        for ctid in sorted(made, reverse=True):
            driver.destroy(ctid)
        setup.teardown()
        shutil.rmtree(etc, ignore_errors=True)
        shutil.rmtree(ROOT, ignore_errors=True)

    rerun = statistics.median(reruns)
    one, two, many = (statistics.median(walls[n]) for n in (1, 2, 4))
    cpu = statistics.median(cpu_per_guest)
    print(f"clones: {args.clone}")
    print(f"first build of the 5-guest lab (template cached): {build:7.2f} s")
    print(
        f"converge, already converged, 5 guests (median of {len(reruns)}): {rerun:7.3f} s"
        f"   target < 2 s: {'ok' if rerun < 2 else 'MISSED'}"
    )
    runs = len(walls[1])
    print(
        f"converge 1 new guest  (median of {runs}): {one:7.2f} s"
        f"   CPU used: {cpu:.2f} CPU-s (guest cgroup + Phoenix and its commands)"
    )
    print(
        f"converge 2 new guests (median of {runs}): {two:7.2f} s   ratio 2 vs 1: {two / one:5.2f}x"
    )
    print(
        f"converge 4 new guests (median of {runs}): {many:7.2f} s   ratio 4 vs 1: "
        f"{many / one:5.2f}x   target <= 1.5x: {'ok' if many / one <= 1.5 else 'MISSED'}"
    )
    cores = os.cpu_count() or 1
    print(
        f"CPU floor for 4 guests on {cores} cores: 4 x {cpu:.2f} / {cores} = "
        f"{4 * cpu / cores:.2f} s = {4 * cpu / cores / one:.2f}x the 1-guest wall time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

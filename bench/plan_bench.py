"""Plan time for synthetic inventories of 100, 1,000 and 10,000 guests.

The observed state is recorded in a FakeDriver (every guest converged: settings as desired,
running, snapshots taken, applied-markers in place), so the figure is the planner's own
cost: ordering, desired settings, bundle digests, one observe and one marker read per
guest. Target: 10,000 guests in < 1 s, growing linearly (flat time per guest).

    python bench/plan_bench.py [--sizes 100 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from phoenix.drivers.fake import FakeDriver
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import HypervisorConfig, LxcGuest
from phoenix.plan.desired import guest_settings
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.recipes import runner
from phoenix.recipes.runner import marker_name


def synthetic(config_dir: Path, n: int) -> Inventory:
    """One template guest, the rest clones of it; every other guest has an application,
    every tenth depends on its predecessor."""
    guests: dict[int, LxcGuest] = {}
    base: dict[str, Any] = {
        "memory_mb": 1024,
        "cores": 2,
        "features": ["base_setup"],
        "pct_options": ["nesting=1"],
        "lxc_options": ["lxc.mount.auto: sys:rw"],
        "firewall": {
            "enabled": True,
            "rules": [{"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "80"}],
        },
    }
    for i in range(n):
        ctid = 1000 + i
        entry: dict[str, Any] = {
            **base,
            "name": f"bench-{i}",
            "network_config": {
                "name": "eth0",
                "bridge": "vmbr0",
                "ip": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{(i & 255) or 1}/8",
                "gw": "10.0.0.1",
            },
            "boot_order": i % 5,
        }
        if i == 0:
            entry.update(template="debootstrap:bookworm", template_snapshot_name="golden")
        else:
            entry["clone_from_ctid"] = 1000
            if i % 2:
                entry["application_script"] = "app.sh"
            if i % 10 == 0:
                entry["dependencies"] = [ctid - 1]
        guests[ctid] = LxcGuest.model_validate(entry)
    hyp = HypervisorConfig.model_validate({"timezone": "UTC"})
    return Inventory(config_dir, hyp, guests)


def recorded_state(inventory: Inventory, state_dir: Path) -> FakeDriver:
    """A fake host where every guest is already converged."""
    driver = FakeDriver(runner)
    planner = Planner(inventory, driver, PlanOptions(state_dir=state_dir))
    for ctid, guest in inventory.guests.items():
        markers = {
            marker_name(b.name): b.digest for _, b, _ in planner.bundles(ctid) if b is not None
        }
        snaps = [guest.template_snapshot_name] if guest.template_snapshot_name else []
        driver.add_guest(ctid, guest_settings(guest), "running", snaps, markers)
    driver.log.entries.clear()
    return driver


def measure(n: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as tmp:
        config_dir = Path(tmp)
        (config_dir / "scripts").mkdir()
        (config_dir / "scripts" / "app.sh").write_text("#!/bin/sh\necho app\n")
        inventory = synthetic(config_dir, n)
        driver = recorded_state(inventory, config_dir / "state")
        best = float("inf")
        for _ in range(repeat):
            options = PlanOptions(state_dir=config_dir / "state")
            gc.collect()
            start = time.perf_counter()
            plan = Planner(inventory, driver, options).plan(None)
            best = min(best, time.perf_counter() - start)
            assert plan.up_to_date, "the recorded state must plan to 'up to date'"
            assert len(plan.guests) == n
    return {"guests": n, "seconds": best, "us_per_guest": best / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(n, args.repeat) for n in args.sizes]
    if args.json:
        print(json.dumps(rows))
        return
    first = rows[0]["us_per_guest"]
    print(f"{'guests':>8} {'plan time':>11} {'per guest':>11} {'vs smallest':>12}")
    for row in rows:
        print(
            f"{int(row['guests']):>8} {row['seconds'] * 1000:>9.1f}ms "
            f"{row['us_per_guest']:>9.1f}us {row['us_per_guest'] / first:>11.2f}x"
        )
    last = rows[-1]
    verdict = "meets" if last["guests"] < 10000 or last["seconds"] < 1.0 else "MISSES"
    print(f"target: 10,000 guests < 1 s and flat per-guest time -> {verdict}")


if __name__ == "__main__":
    main()

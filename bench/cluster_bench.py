"""Plan and preview time of a Proxmox cluster lab: 3 nodes x 300, 1,000 and 3,000 guests.

Plan: the real planner and cluster driver (one `ProxmoxDriver` per node, the cluster read
once) against the fake three-node cluster of the unit tests, where every guest already
exists on its node (its config in the shared cluster filesystem, running): each guest is
observed through its own node's runner (the other nodes over the real `SshRunner` and a
stand-in ssh), so the figure includes the fake nodes' own work (reading and parsing each
config). Preview: the offline plan and its command listing (`plan --offline --commands`)
of the same inventory. Both should grow linearly: flat time per guest.

    python bench/cluster_bench.py [--per-node 300 1000 3000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the unit tests' fake cluster

from tests.unit.proxmox.fakecluster import FakeCluster

from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import HypervisorConfig, LxcGuest
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import plan_listing

NODES = ("pve1", "pve2", "pve3")
TEMPLATE = "/var/lib/vz/template/cache/debian-12.tar.zst"


def synthetic(config_dir: Path, per_node: int) -> Inventory:
    """`per_node` guests on each node, every tenth depending on the one before it."""
    guests: dict[int, LxcGuest] = {}
    for i in range(per_node * len(NODES)):
        entry: dict[str, Any] = {
            "name": f"bench-{i}",
            "node": NODES[i % len(NODES)],
            "template": TEMPLATE,
            "storage_pool": "local-zfs",
            "memory_mb": 512,
            "network_config": {
                "name": "eth0",
                "bridge": "vmbr0",
                "ip": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{(i & 255) or 1}/8",
                "gw": "10.0.0.1",
            },
        }
        if i % 10 == 9:
            entry["dependencies"] = [1000 + i - 1]
        guests[1000 + i] = LxcGuest.model_validate(entry)
    nodes = {"pve1": {}, "pve2": {"ssh_host": "pve2"}, "pve3": {"ssh_host": "pve3"}}
    phoenix = {"driver": "proxmox", "nodes": nodes, "state_dir": str(config_dir / "state")}
    hyp = HypervisorConfig.model_validate({"phoenix": phoenix})
    return Inventory(config_dir, hyp, guests)


def populate(cluster: FakeCluster, inventory: Inventory) -> None:
    """Every guest already made, running, on its node."""
    for ctid, guest in inventory.guests.items():
        net = guest.network_config
        assert net is not None and guest.node is not None
        mac = f"BC:24:11:{(ctid >> 16) & 255:02X}:{(ctid >> 8) & 255:02X}:{ctid & 255:02X}"
        cluster.conf_path(guest.node, ctid).write_text(
            f"arch: amd64\ncores: 1\nhostname: {guest.name}\nmemory: 512\n"
            f"net0: name=eth0,bridge=vmbr0,gw={net.gw},hwaddr={mac},ip={net.ip},type=veth\n"
            f"ostype: debian\nrootfs: local-zfs:subvol-{ctid}-disk-0,size=8G\nswap: 512\n"
            "unprivileged: 1\n"
        )
        cluster.nodes[guest.node].running.add(ctid)


def driver_for(cluster: FakeCluster, inventory: Inventory) -> ClusterDriver:
    owned = OwnedRaw.in_state_dir(inventory.state_dir)
    nodes = {n: ProxmoxDriver(cluster.runner(n), n, owned=owned) for n in NODES}
    return ClusterDriver(nodes, inventory.placement(), "pve1")


def measure(per_node: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as tmp:
        root = Path(tmp)
        inventory = synthetic(root, per_node)
        cluster = FakeCluster(root / "cluster")
        populate(cluster, inventory)
        n = len(inventory.guests)
        gc.collect()
        start = time.perf_counter()
        plan = Planner(inventory, driver_for(cluster, inventory), PlanOptions()).plan(None)
        planned = time.perf_counter() - start
        assert len(plan.guests) == n and {g.node for g in plan.guests} == set(NODES)
        gc.collect()
        start = time.perf_counter()
        offline = Planner(inventory, OfflineDriver("proxmox"), PlanOptions()).plan(None)
        lines = plan_listing(offline).lines()
        previewed = time.perf_counter() - start
        assert lines
    return {"guests": n, "plan": planned, "preview": previewed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-node", type=int, nargs="+", default=[300, 1000, 3000])
    args = parser.parse_args()
    rows = [measure(n) for n in args.per_node]
    first = rows[0]
    print(
        f"{'guests':>8} {'plan':>9} {'per guest':>10} {'ratio':>6}   "
        f"{'preview':>9} {'per guest':>10} {'ratio':>6}"
    )
    for row in rows:
        n = row["guests"]
        cells = []
        for key in ("plan", "preview"):
            per = row[key] / n * 1e6
            ratio = per / (first[key] / first["guests"] * 1e6)
            cells.append(f"{row[key]:>8.2f}s {per:>8.0f}us {ratio:>5.2f}x")
        print(f"{int(n):>8} " + "   ".join(cells))
    print("ratio: time per guest against the smallest lab (1.00x: linear)")


if __name__ == "__main__":
    main()

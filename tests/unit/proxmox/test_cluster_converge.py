"""A lab spread over a three-node fake cluster (fakecluster.py), converged by the real
planner and executor through the cluster driver: each guest made on its node (a clone
onto another node with `--target`), one moved by a migration, one node going away (the
others converge, the plan says what is held), and re-runs that change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.factory import make_driver
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.errors import PlanError
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.model import Migrate, Plan
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.run import converge
from tests.unit.proxmox.fakecluster import FakeCluster

TEMPLATE = "/var/lib/vz/template/cache/debian-12.tar.zst"
NODES = ("pve1", "pve2", "pve3")


def _guest(name: str, ip: int, **more: Any) -> dict[str, Any]:
    net = {"name": "eth0", "bridge": "vmbr0", "ip": f"10.9.0.{ip}/24", "gw": "10.9.0.1"}
    return {"name": name, "memory_mb": 512, "cores": 1, "network_config": net, **more}


def lab(tmp_path: Path, **changes: dict[str, Any]) -> Inventory:
    """Template 900 on pve1 (shared storage), 101 cloned from it onto pve2, 102 made on
    pve3, 103 on pve1 depending on 102."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    nodes = {"pve1": {}, "pve2": {"ssh_host": "pve2"}, "pve3": {"ssh_host": "pve3"}}
    phoenix = {"driver": "proxmox", "nodes": nodes, "state_dir": str(tmp_path / "state")}
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps({"phoenix": phoenix}))
    guests = {
        "900": _guest("tpl", 90, template=TEMPLATE, storage_pool="ceph", is_template=True),
        "101": _guest("web", 11, clone_from_ctid=900, storage_pool="ceph", node="pve2"),
        "102": _guest("db", 12, template=TEMPLATE, storage_pool="local-zfs", node="pve3"),
        "103": _guest("app", 13, template=TEMPLATE, storage_pool="local-zfs", dependencies=[102]),
    }
    for ctid, change in changes.items():
        guests[ctid].update(change)
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": guests}))
    return load_inventory(etc)


def driver_for(cluster: FakeCluster, inventory: Inventory) -> ClusterDriver:
    """A new Phoenix process: one driver per node over its runner, the cluster read anew."""
    owned = OwnedRaw.in_state_dir(inventory.state_dir)
    nodes = {
        name: ProxmoxDriver(cluster.runner(name), name, sleep=lambda _: None, owned=owned)
        for name in NODES
    }
    default = inventory.hypervisor.phoenix.default_node
    return ClusterDriver(nodes, inventory.placement(), default)


def plan(cluster: FakeCluster, inventory: Inventory, migrate: bool = False) -> Plan:
    options = PlanOptions(migrate=migrate, persist_secrets=False)
    return Planner(inventory, driver_for(cluster, inventory), options).plan()


def run(cluster: FakeCluster, inventory: Inventory, migrate: bool = False) -> ClusterDriver:
    driver = driver_for(cluster, inventory)
    outcome = converge(inventory, driver, options=PlanOptions(migrate=migrate), parallel=4)
    assert outcome.result.ok or outcome.result.blocked, outcome.result.failed
    return driver


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return FakeCluster(tmp_path / "cluster")


def test_a_lab_over_three_nodes_converges_each_guest_on_its_node(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    inventory = lab(tmp_path)
    first = plan(cluster, inventory)
    assert {g.ctid: g.node for g in first.guests} == {
        900: "pve1",
        101: "pve2",
        102: "pve3",
        103: "pve1",
    }
    driver = run(cluster, inventory)
    assert [cluster.owner(c) for c in (900, 101, 102, 103)] == ["pve1", "pve2", "pve3", "pve1"]
    assert {101, 102, 103} <= set().union(*(n.running for n in cluster.nodes.values()))
    # pct ran on the node holding the guest: the clone on its source's node, with --target.
    clone = [c for c in cluster.nodes["pve1"].calls if c[:2] == ("pct", "clone")]
    assert clone == [
        (
            "pct", "clone", "900", "101", "--full", "1", "--storage", "ceph",
            "--hostname", "web", "--target", "pve2",
        )
    ]  # fmt: skip
    assert any(c[:3] == ("pct", "create", "102") for c in cluster.nodes["pve3"].calls)
    assert not any(c[:3] == ("pct", "set", "102") for c in cluster.nodes["pve1"].calls)
    assert any(c[:3] == ("pct", "set", "101") for c in cluster.nodes["pve2"].calls)
    assert driver.log.mutations()
    again = run(cluster, inventory)
    assert again.log.mutations() == []
    assert plan(cluster, inventory).up_to_date


def test_a_placement_change_is_drift_until_migrations_are_asked_for(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    run(cluster, lab(tmp_path))
    moved = lab(tmp_path, **{"103": {"node": "pve2"}})
    drift = plan(cluster, moved).guest(103)
    assert drift.steps == () and not drift.up_to_date
    assert "runs on node pve1, the inventory places it on pve2" in drift.drift[0]
    assert "--migrate" in drift.drift[0] and "restart" in drift.drift[0]
    # Without --migrate the rest still converges, and 103 stays where it is.
    run(cluster, moved)
    assert cluster.owner(103) == "pve1"
    planned = plan(cluster, moved, migrate=True).guest(103)
    assert [type(s) for s in planned.steps] == [Migrate]
    assert "migrate pve1 -> pve2 (downtime: restart" in planned.steps[0].detail
    run(cluster, moved, migrate=True)
    assert cluster.owner(103) == "pve2" and 103 in cluster.nodes["pve2"].running
    assert ("pct", "migrate", "103", "pve2", "--restart", "1") in cluster.nodes["pve1"].calls
    assert plan(cluster, moved).up_to_date
    assert run(cluster, moved).log.mutations() == []


def test_what_blocks_a_migration_is_refused_at_plan_time(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    bind = [{"host_path": "/srv/app", "container_path": "/data"}]
    cluster.nodes["pve1"].path("/srv/app").mkdir(parents=True)
    inventory = lab(tmp_path, **{"103": {"mount_points": bind}})
    run(cluster, inventory)
    moved = lab(tmp_path, **{"103": {"mount_points": bind, "node": "pve2"}})
    with pytest.raises(PlanError, match="bind mount /srv/app -> /data is a folder of node pve1"):
        plan(cluster, moved, migrate=True)
    assert "it could not move" in plan(cluster, moved).guest(103).drift[0]
    assert cluster.owner(103) == "pve1"


def test_a_node_going_away_holds_its_guests_and_the_rest_converge(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    run(cluster, lab(tmp_path))
    cluster.down.add("pve3")
    changed = lab(
        tmp_path,
        **{"101": {"memory_mb": 1024}, "102": {"memory_mb": 1024}, "103": {"memory_mb": 1024}},
    )
    shown = plan(cluster, changed)
    held = {g.ctid: g.held for g in shown.guests if g.held is not None}
    assert set(held) == {102, 103}
    assert "node pve3 is offline" in (held[102] or "")
    assert (held[103] or "").startswith("needs 102, held: node pve3 is offline")
    driver = driver_for(cluster, changed)
    outcome = converge(changed, driver, options=PlanOptions())
    assert set(outcome.result.blocked) == {102, 103}
    assert 101 in outcome.result.done and not outcome.result.failed
    assert "memory: 1024" in cluster.conf_path("pve2", 101).read_text()
    tried = [argv for argv in driver.log.mutations() if {"102", "103"} & set(argv)]
    assert tried == []  # nothing was even tried on the held guests
    cluster.down.clear()  # it comes back: the held guests converge, then nothing is left
    run(cluster, changed)
    assert "memory: 1024" in cluster.conf_path("pve3", 102).read_text()
    assert plan(cluster, changed).up_to_date


def test_without_quorum_nothing_changes(cluster: FakeCluster, tmp_path: Path) -> None:
    run(cluster, lab(tmp_path))
    cluster.down |= {"pve2", "pve3"}
    shown = plan(cluster, lab(tmp_path, **{"900": {"memory_mb": 1024}}))
    assert all(g.held and "no quorum" in g.held for g in shown.guests)
    before = list(cluster.nodes["pve1"].mutations())
    outcome = converge(lab(tmp_path), driver_for(cluster, lab(tmp_path)), options=PlanOptions())
    assert set(outcome.result.blocked) == {900, 101, 102, 103}
    assert cluster.nodes["pve1"].mutations() == before


def test_the_factory_builds_the_cluster_driver_from_the_inventory(tmp_path: Path) -> None:
    inventory = lab(tmp_path)
    driver = make_driver(inventory.hypervisor.phoenix, placement=inventory.placement())
    assert isinstance(driver, ClusterDriver)
    assert sorted(driver.nodes) == list(NODES)
    assert driver.placement == {900: "pve1", 101: "pve2", 102: "pve3", 103: "pve1"}


def test_a_guest_on_a_node_the_inventory_does_not_list_is_held(tmp_path: Path) -> None:
    """Moved by hand onto a node the inventory does not list: held with the way out."""
    cluster = FakeCluster(tmp_path / "cluster", names=(*NODES, "pve4"))
    run(cluster, lab(tmp_path))
    cluster.conf_path("pve3", 102).rename(cluster.conf_path("pve4", 102))
    shown = plan(cluster, lab(tmp_path))
    assert "phoenix.nodes does not list" in (shown.guest(102).held or "")
    assert (shown.guest(103).held or "").startswith("needs 102")
    assert shown.guest(101).held is None


def test_a_clone_onto_another_node_off_shared_storage_is_refused_before_it_runs(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    local = {"900": {"storage_pool": "local-zfs"}, "101": {"storage_pool": "local-zfs"}}
    inventory = lab(tmp_path, **local)
    outcome = converge(inventory, driver_for(cluster, inventory), options=PlanOptions())
    assert "shared storage" in str(outcome.result.failed[101])
    assert not any(c[:2] == ("pct", "clone") for c in cluster.nodes["pve1"].calls)


def test_a_held_guest_not_made_yet_is_shown_on_its_placement_node(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    """The plan's node column of a guest nothing can be done for: where the inventory
    puts it, when no node has it yet."""
    cluster.down |= {"pve2", "pve3"}
    shown = plan(cluster, lab(tmp_path))
    assert all(g.held for g in shown.guests)
    assert {g.ctid: g.node for g in shown.guests} == lab(tmp_path).placement()

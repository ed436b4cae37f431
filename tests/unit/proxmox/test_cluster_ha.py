"""`placement: ha`: Phoenix writes a guest's HA resource and node affinity (a rule on PVE
9, a group on PVE 8), then accepts the node HA chose; over the fake cluster's HA
(fakeha.py), with the real planner and executor, golden argv and both API schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.drivers.base import HaPlacement
from phoenix.drivers.proxmox import haplace
from phoenix.drivers.proxmox.haplace import HaConfig
from phoenix.plan.model import HaPlace, Migrate
from tests.unit.proxmox.apischema import check_argv
from tests.unit.proxmox.fakecluster import FakeCluster
from tests.unit.proxmox.test_cluster_converge import lab, plan, run

WANTED = HaPlacement((("pve2", 2), ("pve3", 1)))
HA_101 = {"placement": "ha", "ha_nodes": ["pve3"]}
VERSIONS = {"9.1": "9.1.2", "8.4": "8.4.1"}


def _argvs(config: HaConfig, wanted: HaPlacement = WANTED) -> list[list[str]]:
    return [a.argv for a in haplace.actions(config, 101, wanted)]


def test_golden_argv_on_pve9_a_resource_then_a_node_affinity_rule() -> None:
    assert _argvs(HaConfig({}, {}, {})) == [
        ["pvesh", "create", "/cluster/ha/resources", "--sid", "ct:101", "--state", "started"],
        [
            "pvesh", "create", "/cluster/ha/rules", "--rule", "phoenix-ct-101",
            "--type", "node-affinity", "--resources", "ct:101", "--nodes", "pve2:2,pve3:1",
            "--strict", "0", "--comment", "written by Phoenix (placement: ha)",
        ],
    ]  # fmt: skip
    ours = {"rule": "phoenix-ct-101", "type": "node-affinity", "resources": "ct:101"}
    config = HaConfig({"ct:101": {"state": "started"}}, {"phoenix-ct-101": {**ours}}, {})
    assert _argvs(config, HaPlacement((("pve2", 2),), strict=True)) == [
        [
            "pvesh", "set", "/cluster/ha/rules/phoenix-ct-101", "--type", "node-affinity",
            "--nodes", "pve2:2", "--strict", "1",
        ]
    ]  # fmt: skip
    same = {**ours, "nodes": "pve3:1,pve2:2", "strict": "0"}
    assert _argvs(HaConfig({"ct:101": {}}, {"phoenix-ct-101": same}, {})) == []


def test_golden_argv_on_pve8_a_group_then_the_resource_in_it() -> None:
    assert _argvs(HaConfig({}, None, {})) == [
        [
            "pvesh", "create", "/cluster/ha/groups", "--group", "phoenix-ct-101",
            "--nodes", "pve2:2,pve3:1", "--restricted", "0",
            "--comment", "written by Phoenix (placement: ha)",
        ],
        [
            "pvesh", "create", "/cluster/ha/resources", "--sid", "ct:101", "--state", "started",
            "--group", "phoenix-ct-101",
        ],
    ]  # fmt: skip
    adopted = HaConfig({"ct:101": {"state": "started"}}, None, {"phoenix-ct-101": {}})
    assert _argvs(adopted)[-1] == [
        "pvesh", "set", "/cluster/ha/resources/ct:101", "--group", "phoenix-ct-101",
    ]  # fmt: skip


def test_what_an_administrator_set_is_kept() -> None:
    """An existing resource is adopted as it is; another node affinity decides alone."""
    theirs = {"type": "node-affinity", "resources": "ct:100,ct:101", "nodes": "pve1"}
    resource = {"ct:101": {"state": "stopped", "max_restart": "3"}}
    assert _argvs(HaConfig(resource, {"admin": theirs}, {})) == []
    assert _argvs(HaConfig({"ct:101": {"group": "gpu"}}, None, {"gpu": {}})) == []
    # A resource without any node affinity gets Phoenix's, and keeps its own options.
    argvs = _argvs(HaConfig(resource, {}, {}))
    assert [a[:3] for a in argvs] == [["pvesh", "create", "/cluster/ha/rules"]]


@pytest.mark.parametrize("version", ["9.1", "8.4"])
def test_every_ha_argv_fits_its_api_schema(version: str) -> None:
    """Rules exist only from PVE 9, groups are refused there: each version gets its own."""
    rules: dict[str, dict[str, str]] | None = {} if version == "9.1" else None
    ours = {"type": "node-affinity", "resources": "ct:101", "nodes": "pve1:1"}
    configs = [
        HaConfig({}, rules, {}),
        HaConfig({"ct:101": {}}, {"phoenix-ct-101": ours} if rules is not None else None, {}),
        HaConfig({"ct:101": {}}, rules, {"phoenix-ct-101": {"nodes": "pve1"}}),
    ]
    argvs = [a for c in configs for a in _argvs(c, HaPlacement(WANTED.nodes, strict=True))]
    assert len(argvs) >= 4
    reports = [check_argv(version, a, "pve1") for a in argvs]
    assert [p for r in reports for p in r.problems] == []
    assert set().union(*(r.unchecked for r in reports)) == set()  # every format checked
    bad = ["pvesh", "set", "/cluster/ha/rules/ours", "--type", "node-affinity", "--nodes", "a:x"]
    if version == "9.1":
        assert "is not a valid pve-ha-node-list" in check_argv(version, bad).problems[0]
    other = "8.4" if version == "9.1" else "9.1"
    if version == "9.1":  # a rule is no PVE 8 path
        assert any("has no path" in p for a in argvs for p in check_argv(other, a).problems)


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_ha_places_the_guest_and_phoenix_accepts_its_node(tmp_path: Path, version: str) -> None:
    cluster = FakeCluster(tmp_path / "cluster", version=VERSIONS[version])
    inventory = lab(tmp_path, **{"101": HA_101})
    first = plan(cluster, inventory).guest(101)
    assert isinstance(first.steps[-1], HaPlace) and first.placed_by_ha
    assert first.to_json()["placement"] == "ha"
    run(cluster, inventory)
    assert cluster.nodes["pve2"].ha == {101: "started"}
    if version == "9.1":
        rule = cluster.ha.rules["phoenix-ct-101"]
        assert (rule["nodes"], rule["strict"], rule["resources"]) == (
            "pve2:2,pve3:1",
            "0",
            "ct:101",
        )
    else:
        assert cluster.ha.groups["phoenix-ct-101"]["nodes"] == "pve2:2,pve3:1"
        assert cluster.ha.options[101]["group"] == "phoenix-ct-101"
    assert run(cluster, inventory).log.mutations() == []
    # pve2 goes away: HA recovers 101 to pve3, and Phoenix neither moves it back nor
    # calls it drift, with or without --migrate.
    cluster.down.add("pve2")
    assert cluster.ha.crm_round() == {101: "pve3"}
    for migrate in (False, True):
        shown = plan(cluster, inventory, migrate=migrate).guest(101)
        assert (shown.node, shown.steps, shown.drift, shown.held) == ("pve3", (), (), None)
    driver = run(cluster, inventory, migrate=True)
    assert driver.log.mutations() == []
    # Back again: with failback HA returns it to its preferred node, still no drift.
    cluster.down.clear()
    assert cluster.ha.crm_round() == {101: "pve2"}
    assert plan(cluster, inventory, migrate=True).up_to_date


def test_a_changed_node_list_updates_phoenixs_rule_only(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path / "cluster", version="9.1.2")
    run(cluster, lab(tmp_path, **{"101": HA_101}))
    strict = lab(tmp_path, **{"101": {**HA_101, "ha_strict": True, "ha_nodes": ["pve1"]}})
    step = plan(cluster, strict).guest(101).steps
    assert [type(s) for s in step] == [HaPlace]
    assert "pve2:2,pve3:1 (strict 0) -> pve1:1,pve2:2 (strict 1)" in step[0].detail
    run(cluster, strict)
    assert cluster.ha.rules["phoenix-ct-101"]["nodes"] == "pve1:1,pve2:2"
    assert plan(cluster, strict).up_to_date


def test_an_existing_ha_resource_is_adopted_as_the_admin_set_it(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path / "cluster", version="9.1.2")
    run(cluster, lab(tmp_path))
    node = cluster.nodes["pve1"]
    node.run(["pvesh", "create", "/cluster/ha/resources", "--sid", "ct:101", "--max_restart", "3"])
    admin = ["--type", "node-affinity", "--resources", "ct:101", "--nodes", "pve2,pve1"]
    node.run(["pvesh", "create", "/cluster/ha/rules", "--rule", "gpu-box", *admin])
    before = {r: dict(p) for r, p in cluster.ha.rules.items()}
    inventory = lab(tmp_path, **{"101": HA_101})
    assert plan(cluster, inventory).up_to_date
    assert run(cluster, inventory).log.mutations() == []
    assert cluster.ha.rules == before and cluster.ha.options[101] == {"max_restart": "3"}


def test_a_guest_not_placed_by_ha_is_still_a_migration(tmp_path: Path) -> None:
    """Only `placement: ha` hands the node over: without it a move is a migration."""
    cluster = FakeCluster(tmp_path / "cluster")
    run(cluster, lab(tmp_path))
    moved = plan(cluster, lab(tmp_path, **{"103": {"node": "pve2"}}), migrate=True)
    assert [type(s) for s in moved.guest(103).steps] == [Migrate]
    assert not moved.guest(103).placed_by_ha


def test_the_fake_refuses_what_pve_ha_manager_refuses(tmp_path: Path) -> None:
    nine = FakeCluster(tmp_path / "nine", version="9.1.2")
    eight = FakeCluster(tmp_path / "eight")
    create = ["pvesh", "create", "/cluster/ha/resources", "--sid", "ct:555"]
    for cluster in (nine, eight):
        result = cluster.nodes["pve1"].run(create)
        assert "resource 'ct:555' does not exist in cluster" in result.stderr
    group = ["pvesh", "create", "/cluster/ha/groups", "--group", "g", "--nodes", "pve1"]
    assert "ha groups have been migrated to rules" in nine.nodes["pve1"].run(group).stderr
    rule = ["pvesh", "create", "/cluster/ha/rules", "--rule", "r", "--type", "node-affinity"]
    rule += ["--resources", "ct:101", "--nodes", "pve1"]
    assert "No 'create' handler" in eight.nodes["pve1"].run(rule).stderr
    assert "cannot use unmanaged resource(s) ct:101" in nine.nodes["pve1"].run(rule).stderr

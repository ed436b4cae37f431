"""The cluster's commands hold to the contract of the single node's: the exact argv of
every new command (golden), and each command a converge over the fake cluster ran (the
cluster reads, a clone onto another node, a migration) valid for the PVE 8.4 and 9.1 API
schemas (tests/fixtures/pve)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.proxmox import commands, pvesh
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import plan_listing
from phoenix.plan.run import converge
from tests.unit.proxmox.apischema import VERSIONS, check_argv
from tests.unit.proxmox.fakecluster import FakeCluster
from tests.unit.proxmox.test_cluster_converge import driver_for, lab
from tests.unit.proxmox.test_schema import ASSIGNED_MAC


def test_golden_cluster_commands() -> None:
    assert commands.migrate(103, "pve2", running=True) == [
        "pct", "migrate", "103", "pve2", "--restart", "1",
    ]  # fmt: skip
    assert commands.migrate(103, "pve2", running=False) == ["pct", "migrate", "103", "pve2"]
    assert pvesh.cluster_status_cmd() == [
        "pvesh",
        "get",
        "/cluster/status",
        "--output-format",
        "json",
    ]
    assert pvesh.cluster_resources_cmd() == [
        "pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json",
    ]  # fmt: skip
    assert pvesh.storage_cmd("pve3") == [
        "pvesh", "get", "/nodes/pve3/storage", "--output-format", "json",
    ]  # fmt: skip


def cluster_commands(tmp_path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(node, argv) of every command a three-node converge, a migration and a re-run ran."""
    cluster = FakeCluster(tmp_path / "cluster")
    for inventory, migrate in (
        (lab(tmp_path), False),
        (lab(tmp_path, **{"103": {"node": "pve2"}}), True),
        (lab(tmp_path, **{"103": {"node": "pve2"}}), False),
    ):
        outcome = converge(
            inventory, driver_for(cluster, inventory), options=PlanOptions(migrate=migrate)
        )
        assert outcome.result.ok, outcome.result.failed
    return [(name, argv) for name, node in cluster.nodes.items() for argv in node.calls]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_cluster_command_fits_the_api_schema(tmp_path: Path, version: str) -> None:
    seen = cluster_commands(tmp_path)
    argvs = [argv for _, argv in seen]
    # The scenario covers what is new: cluster reads, storage per node, --target, migrate.
    assert any(a[:3] == ("pvesh", "get", "/cluster/status") for a in argvs)
    assert any(a[:3] == ("pvesh", "get", "/cluster/resources") for a in argvs)
    assert any(a[:2] == ("pct", "clone") and "--target" in a for a in argvs)
    assert ("pct", "migrate", "103", "pve2", "--restart", "1") in argvs
    problems = []
    for node, argv in seen:
        report = check_argv(version, argv, node)
        problems += report.problems
    assert problems == []


def test_the_offline_preview_names_each_guests_node(tmp_path: Path) -> None:
    """`plan --offline --commands` of a cluster lab: which node runs each guest's commands,
    and the clone onto another node with --target (run on its source's node)."""
    inventory = lab(tmp_path)
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions()).plan(None)
    assert {g.ctid: g.node for g in plan.guests} == {
        900: "pve1",
        101: "pve2",
        102: "pve3",
        103: "pve1",
    }
    lines = plan_listing(plan).lines()
    assert "# guest 102: on node pve3" in lines
    note = "# guest 101: on node pve2 (its `pct clone --target` runs on pve1, the source's node)"
    after = lines[lines.index(note) + 1]
    assert after.startswith("pct clone 900 101 ") and after.endswith("--target pve2")
    for version in VERSIONS:
        preview = plan_listing(plan).preview
        argvs = [
            [re.sub(r"<MAC of \d+>", ASSIGNED_MAC, a) for a in c.argv] for c in preview.commands
        ]
        problems = [p for a in argvs for p in check_argv(version, a).problems]
        assert problems == []

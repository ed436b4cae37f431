"""`placement: ha` for a VM: its HA resource is `vm:N` (pve-ha-manager PVEVM.pm), with the
same node-affinity rule (PVE 9) or group (PVE 8) as a container's, and Phoenix accepts
the node HA chose; over the fake cluster's HA (fakeha.py), whose CRM moves a VM live."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, HaPlacement
from phoenix.drivers.proxmox import haplace
from phoenix.drivers.proxmox.haplace import HaConfig
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.model import GuestPlan, HaPlace, Migrate
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.vmplan import plan_vm
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import validate_json
from tests.unit.proxmox.apischema import check_argv
from tests.unit.proxmox.fakecluster import FakeCluster
from tests.unit.proxmox.test_cluster_vms import build, drivers, vm_cluster, vm_lab_settings

WANTED = HaPlacement((("pve2", 2), ("pve3", 1)))
VERSIONS = {"9.1": "9.1.3", "8.4": "8.4.1"}


def _vm_lab(etc: Path, **vm: object) -> Path:
    """The original tool's VM inventory over three nodes, VM 1001 changed by `vm`."""
    shutil.copy(shared_fixture("phoenix-vm-newest") / "phoenix_vm_configs.json", etc)
    hyp = etc / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    nodes = {"pve1": {}, "pve2": {"ssh_host": "pve2"}, "pve3": {"ssh_host": "pve3"}}
    data.setdefault("phoenix", {}).update(driver="proxmox", nodes=nodes, node="pve1")
    hyp.write_text(json.dumps(data))
    path = etc / "phoenix_vm_configs.json"
    vms = json.loads(path.read_text())
    for entry in vms["vms"]:
        if entry["vmid"] == 1001:
            entry.update(vm)
    path.write_text(json.dumps(vms))
    return etc


@pytest.fixture
def desired(minimal_dir: Path) -> dict[int, GuestSettings]:
    return vm_lab_settings(minimal_dir)


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return vm_cluster(tmp_path / "cluster")


def _plan(cluster: FakeCluster, inventory: Inventory, migrate: bool = True) -> GuestPlan:
    options = PlanOptions(migrate=migrate, persist_secrets=False)
    return plan_vm(Planner(inventory, drivers(cluster), options), 1001)


def test_golden_argv_names_the_vm_resource_on_both_versions() -> None:
    rules = [a.argv for a in haplace.actions(HaConfig({}, {}, {}), 1001, WANTED, kind="vm")]
    assert rules == [
        ["pvesh", "create", "/cluster/ha/resources", "--sid", "vm:1001", "--state", "started"],
        [
            "pvesh", "create", "/cluster/ha/rules", "--rule", "phoenix-vm-1001",
            "--type", "node-affinity", "--resources", "vm:1001", "--nodes", "pve2:2,pve3:1",
            "--strict", "0", "--comment", "written by Phoenix (placement: ha)",
        ],
    ]  # fmt: skip
    groups = [a.argv for a in haplace.actions(HaConfig({}, None, {}), 1001, WANTED, kind="vm")]
    assert groups[-1] == [
        "pvesh", "create", "/cluster/ha/resources", "--sid", "vm:1001", "--state", "started",
        "--group", "phoenix-vm-1001",
    ]  # fmt: skip
    # A container's resource of the same id is another resource: the VM's is still missing.
    theirs = HaConfig({"ct:1001": {}}, {}, {})
    assert haplace.actions(theirs, 1001, WANTED, kind="vm")[0].argv[4] == "vm:1001"
    for version, argvs in (("9.1", rules), ("8.4", groups)):
        reports = [check_argv(version, a, "pve2") for a in argvs]
        assert [p for r in reports for p in r.problems] == []
        assert set().union(*(r.unchecked for r in reports)) == set()


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_ha_places_a_vm_and_phoenix_accepts_its_node(
    tmp_path: Path, minimal_dir: Path, desired: dict[int, GuestSettings], version: str
) -> None:
    cluster = vm_cluster(tmp_path / "cluster", VERSIONS[version])
    build(cluster, desired)  # VMs 9000, 1001, 1002 on pve2, 1001 and 1002 running
    inventory = load_inventory(_vm_lab(minimal_dir, node="pve2", placement="ha", ha_nodes=["pve3"]))
    first = _plan(cluster, inventory)
    assert first.placed_by_ha and first.to_json()["placement"] == "ha"
    (step,) = [s for s in first.steps if isinstance(s, HaPlace)]
    assert "vm:1001" in step.detail
    drivers(cluster).ha_place(1001, step.placement)  # as the executor runs the step
    assert cluster.ha.vms == {1001: "started"}
    if version == "9.1":
        rule = cluster.ha.rules["phoenix-vm-1001"]
        assert (rule["resources"], rule["nodes"]) == ("vm:1001", "pve2:2,pve3:1")
    else:
        assert cluster.ha.groups["phoenix-vm-1001"]["nodes"] == "pve2:2,pve3:1"
        assert cluster.ha.options[1001]["group"] == "phoenix-vm-1001"
    assert not any(isinstance(s, HaPlace) for s in _plan(cluster, inventory).steps)
    # pve2 goes away: HA recovers the VM to pve3 and Phoenix neither moves it back nor
    # calls it drift, with or without --migrate.
    cluster.down.add("pve2")
    assert cluster.ha.crm_round() == {1001: "pve3"}
    assert 1001 in cluster.nodes["pve3"].qemu.running
    for migrate in (False, True):
        shown = _plan(cluster, inventory, migrate=migrate)
        assert (shown.node, shown.drift, shown.held) == ("pve3", (), None)
        assert not any(isinstance(s, Migrate | HaPlace) for s in shown.steps)
    # Back again: failback moves it live to its preferred node.
    cluster.down.clear()
    assert cluster.ha.crm_round() == {1001: "pve2"}
    assert 1001 in cluster.nodes["pve2"].qemu.running
    assert _plan(cluster, inventory).node == "pve2"


def test_without_placement_ha_a_vm_on_another_node_is_a_migration(
    cluster: FakeCluster, minimal_dir: Path, desired: dict[int, GuestSettings]
) -> None:
    build(cluster, desired)
    inventory = load_inventory(_vm_lab(minimal_dir, node="pve3"))
    shown = _plan(cluster, inventory)
    assert not shown.placed_by_ha
    assert [type(s) for s in shown.steps if isinstance(s, Migrate | HaPlace)] == [Migrate]


def test_the_fake_refuses_a_resource_of_the_wrong_kind(
    cluster: FakeCluster, desired: dict[int, GuestSettings]
) -> None:
    """PVECT.pm: "resource 'ct:N' - guest with ID N is not a container"; a VM's id as
    `vm:N` is accepted, and the mirror case refused."""
    build(cluster, desired)
    node = cluster.nodes["pve1"]
    create = ["pvesh", "create", "/cluster/ha/resources", "--sid"]
    wrong = node.run([*create, "ct:1001"])
    assert "resource 'ct:1001' - guest with ID 1001 is not a container" in wrong.stderr
    assert "does not exist in cluster" in node.run([*create, "vm:4242"]).stderr
    assert node.run([*create, "vm:1001"]).returncode == 0
    assert "resource ID 'vm:1001' already defined" in node.run([*create, "vm:1001"]).stderr
    listed = json.loads(node.run(["pvesh", "get", "/cluster/ha/resources"]).stdout)
    assert [(r["sid"], r["type"], r["state"]) for r in listed] == [("vm:1001", "vm", "started")]
    rule = ["pvesh", "create", "/cluster/ha/rules", "--rule", "r", "--type", "node-affinity"]
    assert "unmanaged resource(s) ct:1001" in node.run([*rule, "--resources", "ct:1001",
                                                        "--nodes", "pve1"]).stderr  # fmt: skip


def test_a_vms_placement_ha_is_validated(minimal_dir: Path) -> None:
    _vm_lab(minimal_dir, placement="ha", ha_nodes=["pve9"], qm_options=["--hostpci0 01:00.0"])
    _, problems, _ = validate_json(minimal_dir)
    found = {(p["path"], p["severity"]): p["message"] for p in problems}
    index = next(
        i
        for i, e in enumerate(
            json.loads((minimal_dir / "phoenix_vm_configs.json").read_text())["vms"]
        )
        if e["vmid"] == 1001
    )
    assert "'pve9' is not a node of the cluster" in found[(f"vms[{index}].ha_nodes[0]", "error")]
    assert "devices (hostpci0) belong to one node" in found[(f"vms[{index}].placement", "warning")]
    _vm_lab(minimal_dir, placement="node", ha_strict=True)
    _, problems, _ = validate_json(minimal_dir)
    assert any(p["path"] == f"vms[{index}].ha_strict" for p in problems)

"""VMs on the nodes of a fake cluster (fakecluster.py, each node's `qm` in fakeqemu.py):
each VM made and driven through the node that holds it, a placement change moved with `qm
migrate` (live, its local disks copied), what would refuse the move refused at plan time,
golden argv and both API schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.factory import make_driver
from phoenix.drivers.proxmox import vmplace
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.clustervms import ClusterVmDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.drivers.split import SplitDriver
from phoenix.errors import PlanError
from phoenix.inventory import load_inventory
from phoenix.plan.desired import vm_settings
from phoenix.plan.model import Migrate
from phoenix.plan.placement import placement_steps
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import validate_json
from tests.unit.proxmox.apischema import VERSIONS, check_argv
from tests.unit.proxmox.fakecluster import FakeCluster
from tests.unit.proxmox.fakeqemu import image

IMAGE = "/var/lib/vz/import/noble-server-cloudimg-amd64.img"
NODES = ("pve1", "pve2", "pve3")
PLACED = {9000: "pve2", 1001: "pve2", 1002: "pve2"}


def vm_lab_settings(etc: Path) -> dict[int, GuestSettings]:
    """What the original tool's VM inventory asks of each VM."""
    shutil.copy(shared_fixture("phoenix-vm-newest") / "phoenix_vm_configs.json", etc)
    inventory = load_inventory(etc)
    return {vmid: vm_settings(vm) for vmid, vm in inventory.vms.items()}


def vm_cluster(root: Path, version: str = "9.1.3") -> FakeCluster:
    """Three nodes, each with the cloud image and a local VM-disk pool."""
    fake = FakeCluster(root, version=version, local={"quickOS-vm-disks": "zfspool"})
    for node in fake.nodes.values():
        image(node.root, IMAGE)
    return fake


@pytest.fixture
def desired(minimal_dir: Path) -> dict[int, GuestSettings]:
    return vm_lab_settings(minimal_dir)


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return vm_cluster(tmp_path / "cluster")


def drivers(cluster: FakeCluster) -> SplitDriver:
    """A new Phoenix process over the cluster: containers and VMs, each per node."""
    containers = ClusterDriver(
        {n: ProxmoxDriver(cluster.runner(n), n, sleep=lambda _: None) for n in NODES},
        {},
        "pve1",
    )
    vms = {
        n: ProxmoxVmDriver(cluster.runner(n), n, sleep=lambda _: None, version=(9, 1))
        for n in NODES
    }
    return SplitDriver(containers, ClusterVmDriver(containers, vms, PLACED), frozenset(PLACED))


def build(cluster: FakeCluster, desired: dict[int, GuestSettings]) -> SplitDriver:
    driver = drivers(cluster)
    driver.create(9000, IMAGE, desired[9000])
    driver.mark_template(9000)
    for vmid in (1001, 1002):
        driver.clone(9000, vmid, None, desired[vmid])
        driver.start(vmid)
    return driver


def test_each_vm_is_made_and_driven_on_its_node(
    cluster: FakeCluster, desired: dict[int, GuestSettings]
) -> None:
    build(cluster, desired)
    assert sorted(cluster.nodes["pve2"].qemu.vms) == [1001, 1002, 9000]
    assert not cluster.nodes["pve1"].qemu.vms  # Phoenix runs on pve1: nothing made there
    assert not any(c[0] == "qm" for c in cluster.nodes["pve1"].calls)
    assert any(c[:3] == ("qm", "clone", "9000") for c in cluster.nodes["pve2"].calls)
    again = drivers(cluster)  # a new run reads where each VM is from the cluster
    seen = again.observe(1001)
    assert (seen.node, seen.state) == ("pve2", "running")
    assert seen.settings is not None and seen.settings.memory_mb == desired[1001].memory_mb
    # An id held on another node is that VM, never a second `qm create` of it.
    result = cluster.nodes["pve3"].run(["qm", "create", "1001"])
    assert "VM 1001 already exists on node 'pve2'" in result.stderr


def test_a_placement_change_of_a_vm_is_a_live_qm_migrate(
    cluster: FakeCluster, desired: dict[int, GuestSettings]
) -> None:
    build(cluster, desired)
    driver = drivers(cluster)
    observed = driver.observe(1001)
    steps, drift = placement_steps(driver, 1001, "pve3", observed, migrate=False)
    assert steps == [] and "run with --migrate" in drift[0] and "live" in drift[0]
    steps, _ = placement_steps(driver, 1001, "pve3", observed, migrate=True)
    assert [type(s) for s in steps] == [Migrate]
    assert "local disks" in steps[0].detail
    driver.migrate(1001, "pve3")
    argv = ("qm", "migrate", "1001", "pve3", "--online", "1", "--with-local-disks", "1")
    assert argv in cluster.nodes["pve2"].calls  # run on the VM's node
    assert 1001 in cluster.nodes["pve3"].qemu.vms and 1001 in cluster.nodes["pve3"].qemu.running
    assert drivers(cluster).observe(1001).node == "pve3"


def test_a_vm_with_a_local_device_is_refused_at_plan_time(
    cluster: FakeCluster, desired: dict[int, GuestSettings]
) -> None:
    build(cluster, desired)
    cluster.nodes["pve2"].qemu.vms[1002].options["hostpci0"] = "0000:01:00.0,pcie=1"
    driver = drivers(cluster)
    observed = driver.observe(1002)
    with pytest.raises(PlanError, match=r"devices of its node \(hostpci0\)"):
        placement_steps(driver, 1002, "pve3", observed, migrate=True)
    result = cluster.nodes["pve2"].run(["qm", "migrate", "1002", "pve3", "--online", "1"])
    assert "can't migrate VM which uses local devices: hostpci0" in result.stderr  # the fake agrees
    assert 1002 in cluster.nodes["pve2"].qemu.vms


def test_golden_qm_migrate_argv_fits_both_api_schemas() -> None:
    assert vmplace.migrate_cmd(1001, "pve3", online=True, local_disks=True) == [
        "qm", "migrate", "1001", "pve3", "--online", "1", "--with-local-disks", "1",
    ]  # fmt: skip
    assert vmplace.migrate_cmd(1001, "pve3", online=False, local_disks=False) == [
        "qm", "migrate", "1001", "pve3",
    ]  # fmt: skip
    for version in VERSIONS:
        for online in (True, False):
            argv = vmplace.migrate_cmd(1001, "pve3", online, local_disks=True)
            assert check_argv(version, argv, "pve2").problems == []


def test_what_keeps_a_vm_on_its_node() -> None:
    config = {
        "hostpci0": "0000:01:00.0",
        "usb0": "spice",
        "usb1": "host=1234:5678",
        "serial0": "socket",
        "scsi0": "quickOS-vm-disks:vm-1001-disk-0,size=32G",
        "ide2": "ceph:vm-1001-cloudinit,media=cdrom",
    }
    assert vmplace.local_devices(config) == ["hostpci0", "usb1"]
    assert vmplace.disk_storages(config) == {"scsi0": "quickOS-vm-disks"}
    (found,) = [b for b in vmplace.blockers(1001, config, "pve3", {}) if "storage" in b]
    assert "'quickOS-vm-disks', which node pve3 does not have" in found


def test_a_vms_node_is_validated_and_places_it(minimal_dir: Path) -> None:
    shutil.copy(shared_fixture("phoenix-vm-newest") / "phoenix_vm_configs.json", minimal_dir)
    hyp = minimal_dir / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    nodes = {"pve1": {}, "pve2": {"ssh_host": "pve2"}}
    data.setdefault("phoenix", {}).update(driver="proxmox", nodes=nodes, node="pve1")
    hyp.write_text(json.dumps(data))
    vms_path = minimal_dir / "phoenix_vm_configs.json"
    vms = json.loads(vms_path.read_text())
    vms["vms"][1]["node"] = "pve2"
    vms_path.write_text(json.dumps(vms))
    inventory = load_inventory(minimal_dir)
    placement = inventory.placement()
    assert placement[vms["vms"][1]["vmid"]] == "pve2"
    assert placement[vms["vms"][0]["vmid"]] == "pve1"
    built = make_driver(inventory.hypervisor.phoenix, vm_ids=frozenset(inventory.vms))
    assert isinstance(built, SplitDriver) and isinstance(built.vms, ClusterVmDriver)
    vms["vms"][1]["node"] = "pve9"
    vms_path.write_text(json.dumps(vms))
    _, problems, _ = validate_json(minimal_dir)
    found = {p["path"]: p["message"] for p in problems if p["severity"] == "error"}
    assert "'pve9' is not a node of the cluster" in found["vms[1].node"]

"""A VM cloned onto another node than its source's: `qm clone --target`, run on the
source's node, refused before anything runs where qemu-server's clone_vm refuses it (the
source on local storage, a full clone onto local storage), and the fake cluster
(fakevmclone.py) refusing exactly those; golden argv and both API schemas; validate."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import qm
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.clustervms import ClusterVmDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.drivers.split import SplitDriver
from phoenix.errors import DriverError
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import validate_json
from tests.unit.proxmox.apischema import VERSIONS, check_argv
from tests.unit.proxmox.fakecluster import FakeCluster
from tests.unit.proxmox.fakeqemu import image
from tests.unit.proxmox.test_cluster_vms import IMAGE, NODES, vm_lab_settings

ACROSS = {9000: "pve2", 1001: "pve3", 1002: "pve2"}  # 1001 cloned onto another node
DISKS = "quickOS-vm-disks"


@pytest.fixture
def desired(minimal_dir: Path) -> dict[int, GuestSettings]:
    return vm_lab_settings(minimal_dir)


def _cluster(root: Path, shared: bool) -> FakeCluster:
    """The VM disks' storage shared between the nodes (`shared`) or local to each."""
    kind = {DISKS: "rbd" if shared else "zfspool"}
    fake = FakeCluster(root, version="9.1.3", shared={**kind, "ceph": "rbd"} if shared else {"ceph": "rbd"},
                       local={} if shared else kind)  # fmt: skip
    for node in fake.nodes.values():
        image(node.root, IMAGE)
    return fake


def _drivers(cluster: FakeCluster) -> SplitDriver:
    containers = ClusterDriver(
        {n: ProxmoxDriver(cluster.runner(n), n, sleep=lambda _: None) for n in NODES}, {}, "pve1"
    )
    vms = {
        n: ProxmoxVmDriver(cluster.runner(n), n, sleep=lambda _: None, version=(9, 1))
        for n in NODES
    }
    return SplitDriver(containers, ClusterVmDriver(containers, vms, ACROSS), frozenset(ACROSS))


def _template(cluster: FakeCluster, desired: dict[int, GuestSettings]) -> SplitDriver:
    driver = _drivers(cluster)
    driver.create(9000, IMAGE, desired[9000])
    driver.mark_template(9000)
    return driver


def _full(settings: GuestSettings, storage: str) -> GuestSettings:
    assert settings.vm is not None
    return replace(settings, storage=storage, vm=replace(settings.vm, full_clone=True))


def test_golden_qm_clone_target_argv_fits_both_api_schemas(
    desired: dict[int, GuestSettings],
) -> None:
    linked = qm.clone(9000, 1001, None, desired[1001], full=False, target="pve3")
    assert linked == ["qm", "clone", "9000", "1001", "--name", desired[1001].hostname,
                      "--target", "pve3"]  # fmt: skip
    full = qm.clone(9000, 1001, "base", _full(desired[1001], "ceph"), full=True, target="pve3")
    assert full == ["qm", "clone", "9000", "1001", "--name", desired[1001].hostname,
                    "--snapname", "base", "--full", "1", "--storage", "ceph",
                    "--target", "pve3"]  # fmt: skip
    for version in VERSIONS:
        for argv in (linked, full):
            assert check_argv(version, argv, "pve2").problems == []


def test_a_clone_from_shared_storage_is_made_on_its_own_node(
    tmp_path: Path, desired: dict[int, GuestSettings]
) -> None:
    cluster = _cluster(tmp_path / "cluster", shared=True)
    driver = _template(cluster, desired)
    driver.clone(9000, 1001, None, desired[1001])
    sent = [c for c in cluster.nodes["pve2"].calls if c[:2] == ("qm", "clone")]
    assert sent == [("qm", "clone", "9000", "1001", "--name", desired[1001].hostname,
                     "--target", "pve3")]  # fmt: skip
    assert 1001 in cluster.nodes["pve3"].qemu.vms and 1001 not in cluster.nodes["pve2"].qemu.vms
    finished = cluster.nodes["pve3"].calls  # configured and grown on the clone's node
    assert ("pvesh", "set", "/nodes/pve3/qemu/1001/config") in {c[:3] for c in finished}
    assert ("qm", "resize", "1001") in {c[:3] for c in finished}
    seen = _drivers(cluster).observe(1001)  # a new run finds it where it was cloned to
    assert seen.node == "pve3" and seen.settings is not None
    assert seen.settings.memory_mb == desired[1001].memory_mb


def test_a_clone_from_local_storage_is_refused_before_it_runs(
    tmp_path: Path, desired: dict[int, GuestSettings]
) -> None:
    cluster = _cluster(tmp_path / "cluster", shared=False)
    driver = _template(cluster, desired)
    with pytest.raises(DriverError, match=r"VM uses local storage.*put VM 1001 on the source"):
        driver.clone(9000, 1001, None, desired[1001])
    assert not any(c[:2] == ("qm", "clone") for c in cluster.nodes["pve2"].calls)
    with pytest.raises(DriverError, match=r"storage_pool 'quickOS-vm-disks' is local"):
        driver.clone(9000, 1001, None, _full(desired[1001], DISKS))
    # The fake refuses the same command as qemu-server does.
    node = cluster.nodes["pve2"]
    refused = node.run(["qm", "clone", "9000", "1001", "--target", "pve3"])
    assert "can't clone VM to node 'pve3' (VM uses local storage)" in refused.stderr
    assert not any(1001 in n.qemu.vms for n in cluster.nodes.values())


def test_the_fake_refuses_what_clone_vm_refuses(
    tmp_path: Path, desired: dict[int, GuestSettings]
) -> None:
    cluster = _cluster(tmp_path / "cluster", shared=True)
    _template(cluster, desired)
    node = cluster.nodes["pve2"]
    clone = ["qm", "clone", "9000", "1001"]
    assert "no such cluster node 'pve9'" in node.run([*clone, "--target", "pve9"]).stderr
    cluster.nodes["pve3"].storages.pop("ceph")
    missing = node.run([*clone, "--full", "1", "--storage", "ceph", "--target", "pve3"])
    assert "storage 'ceph' is not available on node 'pve3'" in missing.stderr
    node.storages["local-zfs"] = cluster.nodes["pve3"].storages["local-zfs"] = "zfspool"
    local = node.run([*clone, "--full", "1", "--storage", "local-zfs", "--target", "pve3"])
    assert "can't clone to non-shared storage 'local-zfs'" in local.stderr
    linked = node.run([*clone, "--storage", DISKS, "--target", "pve3"])
    assert "parameter 'storage' not allowed for linked clones" in linked.stderr
    assert node.run([*clone, "--target", "pve2"]).returncode == 0  # its own node: no target
    assert 1001 in node.qemu.vms


def test_validate_says_when_a_vm_clone_across_nodes_lacks_shared_storage(
    minimal_dir: Path,
) -> None:
    shutil.copy(shared_fixture("phoenix-vm-newest") / "phoenix_vm_configs.json", minimal_dir)
    hyp = minimal_dir / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    nodes = {"pve1": {}, "pve2": {"ssh_host": "pve2"}, "pve3": {"ssh_host": "pve3"}}
    data.setdefault("phoenix", {}).update(
        driver="proxmox", nodes=nodes, node="pve2", shared_storages=["ceph"]
    )
    hyp.write_text(json.dumps(data))
    path = minimal_dir / "phoenix_vm_configs.json"
    vms = json.loads(path.read_text())
    index = next(i for i, e in enumerate(vms["vms"]) if e["vmid"] == 1001)
    vms["vms"][index].update(node="pve3", full_clone=True)
    path.write_text(json.dumps(vms))
    _, problems, _ = validate_json(minimal_dir)
    found = {p["path"]: p["message"] for p in problems if p["severity"] == "error"}
    assert "`qm clone --target`" in found[f"vms[{index}].node"]
    assert "not in phoenix.shared_storages (ceph)" in found[f"vms[{index}].storage_pool"]
    data["phoenix"]["shared_storages"] = []
    hyp.write_text(json.dumps(data))
    _, problems, _ = validate_json(minimal_dir)
    found = {p["path"]: p["message"] for p in problems if p["severity"] == "error"}
    assert "phoenix.shared_storages (none): put 1001 on 'pve2'" in found[f"vms[{index}].node"]
    vms["vms"][index]["node"] = "pve2"  # on its source's node: nothing to say
    path.write_text(json.dumps(vms))
    _, problems, _ = validate_json(minimal_dir)
    assert not [p for p in problems if p["path"].startswith(f"vms[{index}]")]

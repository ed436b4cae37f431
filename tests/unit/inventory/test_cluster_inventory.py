"""A Proxmox cluster in the inventory: `phoenix.nodes` (how to reach each node) and a
guest's `node`, validated before any node is asked; without them nothing changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import load_inventory
from phoenix.inventory.schema import inventory_schema
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import edit_guest, edit_phoenix, validate_json

THREE = {
    "pve1": {},
    "pve2": {"ssh_host": "root@10.0.0.12", "storages": ["local-zfs", "shared"]},
    "pve3": {"ssh_host": "root@10.0.0.13", "bridges": ["vmbr0"]},
}


def _problems(config_dir: Path, severity: str = "error") -> dict[str, str]:
    _, problems, _ = validate_json(config_dir)
    return {p["path"]: p["message"] for p in problems if p["severity"] == severity}


@pytest.mark.parametrize("fixture", ["phoenix-etc-seed", "phoenix-etc-2025-10-03"])
def test_the_original_tools_files_load_as_one_node(fixture: str) -> None:
    inventory = load_inventory(shared_fixture(fixture))
    settings = inventory.hypervisor.phoenix
    assert settings.nodes == {} and not settings.is_cluster
    assert all(g.node is None for g in inventory.guests.values())
    assert settings.node_of(None) == settings.node  # every guest on the one node


def test_a_three_node_cluster_validates_and_places_guests(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1", storage_pool=None)
    edit_guest(minimal_dir, "101", node="pve3")
    edit_guest(minimal_dir, "102", node="pve2", storage_pool="shared")
    code, problems, output = validate_json(minimal_dir)
    assert code == 0, output
    assert not [p for p in problems if "node" in p["path"]], problems
    inventory = load_inventory(minimal_dir)
    settings = inventory.hypervisor.phoenix
    placed = {c: settings.node_of(g.node) for c, g in inventory.guests.items()}
    assert placed == {900: "pve1", 101: "pve3", 102: "pve2"}
    assert settings.nodes["pve1"].is_local and not settings.nodes["pve2"].is_local


def test_an_unknown_node_is_an_error_naming_the_cluster(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE)
    edit_guest(minimal_dir, "101", node="pve9")
    message = _problems(minimal_dir)["lxc_configs.101.node"]
    assert "'pve9'" in message and "pve1, pve2, pve3" in message


def test_a_node_without_a_cluster_is_an_error(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, node="pve1")
    edit_guest(minimal_dir, "101", node="pve2")
    assert "phoenix.nodes" in _problems(minimal_dir)["lxc_configs.101.node"]
    edit_guest(minimal_dir, "101", node="pve1")  # the one node, named: as today
    assert "lxc_configs.101.node" not in _problems(minimal_dir)


def test_a_guest_on_a_node_lacking_its_storage_or_bridge(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE)
    edit_guest(minimal_dir, "102", node="pve2", storage_pool="local-lvm")
    edit_guest(minimal_dir, "101", node="pve3")
    network = {"name": "eth0", "bridge": "vmbr9", "ip": "10.0.0.153/24", "gw": "10.0.0.1"}
    edit_guest(minimal_dir, "101", network_config=network)
    errors = _problems(minimal_dir)
    assert "'local-lvm' is not on node 'pve2'" in errors["lxc_configs.102.storage_pool"]
    assert "local-zfs, shared" in errors["lxc_configs.102.storage_pool"]
    assert "'vmbr9' is not on node 'pve3'" in errors["lxc_configs.101.network_config.bridge"]
    # pve1 lists neither: nothing is known, nothing is refused (the node is read later).
    assert not [p for p in errors if p.startswith("lxc_configs.900")]


def test_a_volume_on_storage_the_node_lacks(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE)
    volume = {"name": "data", "pool": "tank", "size_gb": 4, "mount_point": "/data"}
    edit_guest(minimal_dir, "102", node="pve2", storage_pool="shared", volumes=[volume])
    assert "'tank'" in _problems(minimal_dir)["lxc_configs.102.volumes[0].pool"]


def test_a_clone_onto_another_node_needs_shared_storage(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1", shared_storages=["shared"])
    edit_guest(minimal_dir, "102", node="pve2", storage_pool="local-zfs")
    message = _problems(minimal_dir)["lxc_configs.102.storage_pool"]
    assert "--target" in message and "'pve1'" in message and "'pve2'" in message
    assert "not in phoenix.shared_storages (shared): use a shared storage" in message
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1", shared_storages=[])
    message = _problems(minimal_dir)["lxc_configs.102.storage_pool"]
    assert "not in phoenix.shared_storages (none): use a shared storage" in message
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1", shared_storages=["shared"])
    edit_guest(minimal_dir, "102", storage_pool="shared")
    assert "lxc_configs.102.storage_pool" not in _problems(minimal_dir)
    # On its source's node no --target is needed, whatever the storage.
    edit_guest(minimal_dir, "101", storage_pool="local-zfs")
    assert "lxc_configs.101.storage_pool" not in _problems(minimal_dir)


def test_without_a_default_node_each_guest_must_name_one(minimal_dir: Path) -> None:
    remote = {n: {"ssh_host": f"root@{n}.lab"} for n in ("pve1", "pve2")}
    edit_phoenix(minimal_dir, nodes=remote)
    for ctid in ("900", "101"):
        edit_guest(minimal_dir, ctid, node="pve1")
    errors = _problems(minimal_dir)
    assert "no default node" in errors["lxc_configs.102"]
    assert "lxc_configs.101" not in errors


@pytest.mark.parametrize(
    ("phoenix", "expect"),
    [
        ({"nodes": THREE, "ssh_host": "root@pve1"}, "'ssh_host' and 'nodes'"),
        ({"nodes": THREE, "node": "pve7"}, "'pve7' is not one of 'nodes'"),
        ({"nodes": {"a": {}, "b": {}}}, "nodes a, b have no 'ssh_host'"),
        ({"nodes": {"localhost": {}}}, "'localhost' names whichever node"),
        ({"nodes": {"pve.lab": {}}}, "not a Proxmox node name"),
    ],
)
def test_the_nodes_block_is_checked(
    minimal_dir: Path, phoenix: dict[str, Any], expect: str
) -> None:
    edit_phoenix(minimal_dir, **phoenix)
    _, problems, output = validate_json(minimal_dir)
    assert any(expect in p["message"] and p["path"].startswith("phoenix") for p in problems), output


def test_a_ctid_given_twice_is_refused_as_cluster_wide(minimal_dir: Path) -> None:
    """One CTID written for two nodes: pmxcfs keeps one N.conf per id in the cluster."""
    path = minimal_dir / "phoenix_lxc_configs.json"
    text = path.read_text()
    entry = json.dumps({**json.loads(text)["lxc_configs"]["102"], "node": "pve2"})
    path.write_text(text.replace('"lxc_configs": {', f'"lxc_configs": {{"102": {entry},', 1))
    edit_phoenix(minimal_dir, nodes=THREE)
    message = _problems(minimal_dir)["lxc_configs.102"]
    assert "whole Proxmox cluster" in message


def test_cluster_keys_on_the_lxc_driver_are_a_warning(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, driver="lxc", nodes=THREE)
    assert "Proxmox setting" in _problems(minimal_dir, "warning")["phoenix.nodes"]


def test_schema_covers_the_new_keys() -> None:
    hypervisor = inventory_schema("hypervisor")
    text = json.dumps(hypervisor)
    assert "ClusterNode" in hypervisor["$defs"]
    assert "shared_storages" in text and '"nodes"' in text
    guest = inventory_schema("lxc")["$defs"]["LxcGuest"]["properties"]
    assert "node" in guest
    result = CliRunner().invoke(app, ["schema", "--file", "hypervisor"])
    assert result.exit_code == 0 and "ClusterNode" in result.stdout


def test_a_fixture_copied_into_a_cluster_still_validates(tmp_path: Path) -> None:
    """The original tool's real inventory, with the cluster block added beside it."""
    target = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), target)
    edit_phoenix(target, driver="proxmox", nodes={"pve1": {}, "pve2": {"ssh_host": "pve2"}})
    _, problems, output = validate_json(target)
    assert not [p for p in problems if "node" in p["path"]], output
    assert load_inventory(target).hypervisor.phoenix.default_node == "pve1"


def test_placement_ha_validates_in_a_cluster(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1")
    ha = {"placement": "ha", "ha_nodes": ["pve3"], "ha_strict": True}
    edit_guest(minimal_dir, "101", node="pve2", storage_pool="shared", **ha)
    code, problems, output = validate_json(minimal_dir)
    assert code == 0, output
    assert not [p for p in problems if "placement" in p["path"] or "ha_" in p["path"]]
    guest = load_inventory(minimal_dir).guests[101]
    assert (guest.placement, guest.ha_nodes, guest.ha_strict) == ("ha", ["pve3"], True)


def test_placement_ha_errors_name_their_place(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "101", placement="ha")
    edit_guest(minimal_dir, "102", ha_nodes=["pve2"])
    found = _problems(minimal_dir)
    assert "needs a Proxmox cluster" in found["lxc_configs.101.placement"]
    assert "read only with placement 'ha'" in found["lxc_configs.102.ha_nodes"]
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1")
    edit_guest(minimal_dir, "101", placement="ha", ha_nodes=["pve2", "pve7"])
    edit_guest(minimal_dir, "102", ha_nodes=None)
    found = _problems(minimal_dir)
    assert "'pve7' is not a node of the cluster" in found["lxc_configs.101.ha_nodes[1]"]
    assert "lxc_configs.101.ha_nodes[0]" not in found
    edit_guest(minimal_dir, "102", placement="anywhere")  # neither 'node' nor 'ha'
    assert "lxc_configs.102.placement" in _problems(minimal_dir)
    edit_guest(minimal_dir, "102", placement="node")
    # HA may put it on any of its nodes: each must have its storage.
    edit_guest(minimal_dir, "101", placement="ha", ha_nodes=["pve2"], storage_pool="ceph")
    found = _problems(minimal_dir)
    assert "storage 'ceph' is not on node 'pve2'" in found["lxc_configs.101.storage_pool"]


def test_placement_ha_of_a_guest_with_a_gpu_is_a_warning(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, nodes=THREE, node="pve1")
    edit_guest(minimal_dir, "101", placement="ha", gpu_assignment="0")
    warning = _problems(minimal_dir, "warning")["lxc_configs.101.placement"]
    assert "GPUs belong to one node" in warning and "ha_strict" in warning


def test_schema_describes_placement_ha() -> None:
    lxc = inventory_schema("lxc")["$defs"]["LxcGuest"]["properties"]
    assert lxc["placement"]["enum"] == ["node", "ha"]
    assert "Proxmox HA" in lxc["placement"]["description"]
    assert {"ha_nodes", "ha_strict"} <= set(lxc)

"""The VM inventory (`phoenix_vm_configs.json`): the original tool's newest file loads with
its `vm_defaults` applied, VMs share ids, addresses, dependencies and boot order with the
containers, and each mistake is one path-precise line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import creation_order, load_inventory, start_order
from phoenix.inventory.schema import inventory_schema
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import edit_guest, validate_json

VM = "phoenix_vm_configs.json"
NEWEST = shared_fixture("phoenix-vm-newest") / VM


@pytest.fixture
def lab(minimal_dir: Path) -> Path:
    """The minimal container lab (900, 101, 102) with the original's newest VM file."""
    shutil.copy(NEWEST, minimal_dir / VM)
    return minimal_dir


def _vms(config_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((config_dir / VM).read_text())
    return data


def _write(config_dir: Path, data: dict[str, Any]) -> None:
    (config_dir / VM).write_text(json.dumps(data, indent=4))


def _edit_vm(config_dir: Path, index: int, **changes: Any) -> None:
    data = _vms(config_dir)
    data["vms"][index].update(changes)
    _write(config_dir, data)


def _errors(config_dir: Path) -> list[str]:
    code, problems, output = validate_json(config_dir)
    found = [
        f"{p['file']}: {p['path']}: {p['message']}" for p in problems if p["severity"] == "error"
    ]
    assert (code != 0) == bool(found), output
    return found


def test_newest_original_file_validates_with_defaults_applied(lab: Path) -> None:
    code, problems, output = validate_json(lab)
    assert code == 0, output
    assert [p for p in problems if p["file"] == VM] == []
    inventory = load_inventory(lab)
    template, portainer, agent = (inventory.vms[i] for i in (9000, 1001, 1002))
    # vm_defaults: what an entry leaves out; an entry's own key wins.
    assert (template.cores, template.memory_mb, template.storage_pool) == (
        2,
        4096,
        "quickOS-vm-disks",
    )
    assert (portainer.cores, portainer.memory_mb, portainer.disk_size_gb) == (4, 8192, 32)
    assert portainer.bridge == "vmbr0" and template.bridge == "vmbr0"
    assert template.network_config is not None and template.network_config.dhcp
    assert portainer.network_config is not None
    assert portainer.network_config.address == "10.0.0.101"
    assert portainer.network_config.nameservers == ["10.0.0.13"]
    assert portainer.dependencies == [102] and agent.dependencies == [1001]
    assert agent.docker_stacks[0].name == "qdrant_service"
    assert agent.volumes[0].type == "nfs" and agent.volumes[0].server == "10.0.0.13"
    assert portainer.firewall.enabled and portainer.firewall.rules[0].port == "9443"
    # The MAC is derived from the vmid: the same VM keeps its address across rebuilds.
    assert portainer.mac == "52:54:00:00:03:E9"


def test_the_older_fixture_file_still_validates() -> None:
    result = CliRunner().invoke(app, ["-c", str(shared_fixture("phoenix-etc-seed")), "validate"])
    assert result.exit_code == 0, result.output
    assert "2 VMs" in result.output


def test_graph_orders_containers_and_vms_together(lab: Path) -> None:
    inventory = load_inventory(lab)
    order = creation_order(inventory)
    pos = {gid: i for i, gid in enumerate(order)}
    # VM 1001 needs container 102, which clones 900; 1002 needs 1001; both clone 9000.
    assert pos[900] < pos[102] < pos[1001] < pos[1002]
    assert pos[9000] < pos[1001]
    # Boot order spans both kinds: 101/102 (0), 900 (0), then 1001 (4), 1002 (5).
    assert start_order(inventory, order) == [101, 102, 900, 9000, 1001, 1002]


def test_a_container_may_depend_on_a_vm(lab: Path) -> None:
    edit_guest(lab, "101", dependencies=["9000"], boot_order=9)
    inventory = load_inventory(lab)
    order = creation_order(inventory, [101])
    assert order.index(9000) < order.index(101)
    assert start_order(inventory, [101, 9000]) == [9000, 101]


def test_a_cycle_through_both_kinds_is_one_error(lab: Path) -> None:
    edit_guest(lab, "102", dependencies=["101", "1002"])
    errors = _errors(lab)
    assert len(errors) == 1 and "dependency cycle" in errors[0], errors


def test_schema_command_exports_a_schema_the_newest_file_meets() -> None:
    result = CliRunner().invoke(app, ["schema", "--file", "vm"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema == inventory_schema("vm")
    jsonschema.validate(json.loads(NEWEST.read_text()), schema)
    vm = schema["$defs"]["VmGuest"]["properties"]
    for key in ("vmid", "clone_from_vmid", "template_image", "user_config", "docker_stacks"):
        assert key in vm
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"vms": [{"vmid": 1, "name": "x", "cores": "2"}]}, schema)


def test_schema_refuses_an_unknown_file_name() -> None:
    result = CliRunner().invoke(app, ["schema", "--file", "vms"])
    assert result.exit_code != 0
    assert "'lxc', 'vm' or 'hypervisor'" in result.output


@pytest.mark.parametrize(
    ("index", "changes", "expected"),
    [
        (1, {"vmid": 102}, "vms[1].vmid: id 102 is also a container's id"),
        (1, {"network_config": {"ip": "10.0.0.154/24", "gw": "10.0.0.1"}},
         "vms[1].network_config.ip: IP address 10.0.0.154 is also used by guest 102"),
        (1, {"dependencies": ["4242"]},
         "vms[1].dependencies[0]: depends on 4242, which is neither a container nor a VM"),
        (1, {"dependencies": ["1001"]}, "vms[1].dependencies[0]: a VM cannot depend on itself"),
        (1, {"clone_from_vmid": 1001}, "vms[1].clone_from_vmid: a VM cannot clone itself"),
        (1, {"clone_from_vmid": 900},
         "vms[1].clone_from_vmid: clone source 900 is not a VM in the inventory (that id is a "
         "container)"),
        (2, {"clone_from_vmid": 1001},
         "vms[2].clone_from_vmid: clone source 1001 is neither a template"),
        (2, {"features": ["base_setup"]},
         "vms[2].docker_stacks: docker stacks need the 'docker' feature"),
        (1, {"network_config": {"ip": "10.0.0.101/24", "gw": "10.0.1.1"}},
         "vms[1].network_config.gw: gateway 10.0.1.1 is outside the guest's subnet 10.0.0.0/24"),
        (1, {"network_config": {"ip": "10.0.0.101"}},
         "vms[1].network_config.ip: '10.0.0.101' needs a prefix length"),
        (0, {"user_config": {"username": "Phoenix User"}},
         "vms[0].user_config.username: 'Phoenix User' is not a user name"),
        (0, {"user_config": {"username": "u", "ssh_authorized_keys": ["AAAA"]}},
         "is not an SSH public key line"),
        (1, {"count": 2}, "vms[1].count: count 2: write one entry per VM"),
        (1, {"snapshots": {"pre-features": "current"}},
         "vms[1].snapshots.pre-features: 'current' is reserved by Proxmox"),
        (0, {"snapshots": {"post_features": "after"}},
         "vms[0].snapshots: a template cannot have lifecycle snapshots"),
        (1, {"volumes": [{"type": "nfs", "name": "d", "mount_point": "/d"}]},
         "vms[1].volumes[0]: a nfs volume needs 'server' and 'path'"),
        (1, {"template_image": "--output=/etc/passwd"},
         "vms[1].template_image: '--output=/etc/passwd' starts with '-'"),
        (1, {"cores": "4"}, "vms[1].cores: expected an integer, got '4'"),
        (1, {"mac_address": "52:54:00:00:03:EA"},
         "vms[2].mac_address: MAC address 52:54:00:00:03:EA (derived from the vmid: set "
         "mac_address) is also used by VM 1001"),
    ],
)  # fmt: skip
def test_mistakes_are_path_precise(
    lab: Path, index: int, changes: dict[str, Any], expected: str
) -> None:
    _edit_vm(lab, index, **changes)
    errors = _errors(lab)
    assert any(expected in e for e in errors), errors
    assert all(e.startswith(f"{VM}: ") for e in errors), errors


def test_a_bad_default_is_reported_once_at_vm_defaults(lab: Path) -> None:
    data = _vms(lab)
    data["vm_defaults"]["memory_mb"] = "4096"
    _write(lab, data)
    assert _errors(lab) == [f"{VM}: vm_defaults.memory_mb: expected an integer, got '4096'"]


def test_a_vm_without_a_bridge_anywhere_is_refused(lab: Path) -> None:
    data = _vms(lab)
    del data["vm_defaults"]["network_bridge"]
    _write(lab, data)
    errors = _errors(lab)
    assert f"{VM}: vms[1].network_config: no bridge for the NIC" in " ".join(errors)
    assert len(errors) == 3  # each of the three VMs has a NIC


def test_a_duplicate_vmid_names_both_entries(lab: Path) -> None:
    _edit_vm(lab, 2, vmid=1001)
    errors = _errors(lab)
    assert f"{VM}: vms[2].vmid: duplicate VM id 1001 (also vms[1])" in errors


def test_vms_must_be_a_list(lab: Path) -> None:
    _write(lab, {"vm_defaults": {}, "vms": {"9000": {}}})
    assert _errors(lab) == [f"{VM}: vms: expected a list of VMs, got an object"]


def test_unknown_vm_keys_are_warnings(lab: Path) -> None:
    _edit_vm(lab, 1, gpu_passthrough=True)
    code, problems, _ = validate_json(lab)
    assert code == 0
    assert {"file": VM, "path": "vms[1].gpu_passthrough", "message": "unknown key (ignored)",
            "severity": "warning"} in problems  # fmt: skip


def test_plan_lists_the_vms_steps_beside_the_containers(lab: Path) -> None:
    """VMs are planned with the containers, their NFS volumes and docker stacks as steps
    of their own (a stack whose folder is missing names the path it expects)."""
    result = CliRunner().invoke(app, ["-c", str(lab), "plan", "--offline"])
    assert result.exit_code == 0, result.output
    assert "9000 " in result.stdout and "linked clone of template 9000" in result.stdout
    assert "volumes /persistent-storage (unless already applied)" in result.stdout
    assert f"{lab / 'stacks' / 'qdrant_service' / 'docker-compose.yml'} not found" in result.stdout
    assert "not applied" not in result.output and "note: VM" not in result.stderr
    only_containers = CliRunner().invoke(app, ["-c", str(lab), "plan", "--offline", "900"])
    assert "VM" not in only_containers.stderr


def test_a_disk_volume_is_refused_with_the_way_out(lab: Path) -> None:
    disk = {"type": "disk", "name": "data", "mount_point": "/data", "pool": "local", "size_gb": 8}
    _edit_vm(lab, 1, volumes=[disk])
    assert _errors(lab) == [
        f"{VM}: vms[1].volumes[0].type: Phoenix mounts NFS volumes only, not 'disk': export "
        "the data over NFS ('type': 'nfs' with 'server' and 'path'), or add the disk to the "
        "VM yourself and drop this entry"
    ]


def test_a_gateway_beside_dhcp_is_a_warning_at_that_gateway(lab: Path) -> None:
    data = _vms(lab)
    data["vms"][0]["network_config"]["gw"] = "10.0.0.1"  # vms[0] takes its address by DHCP
    _write(lab, data)
    code, problems, output = validate_json(lab)
    assert code == 0, output
    said = [p for p in problems if p["path"] == "vms[0].network_config.gw"]
    assert said == [
        {
            "file": VM,
            "path": "vms[0].network_config.gw",
            "message": "ignored: with 'ip': 'dhcp' the gateway comes from the DHCP server",
            "severity": "warning",
        }
    ], output

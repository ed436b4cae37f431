"""The original tool's inventories, across its history, load and mean what they meant.

The 77 historical versions of `phoenix_lxc_configs.json` are not in this repository; each
compatibility class they fall into (and each real fault some of them have) is built here
from the minimal valid dir, so every class has its own test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.base import GuestSettings, NetSettings
from phoenix.drivers.lxc import config as lxc_config
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.errors import DriverError
from phoenix.inventory import load_inventory
from phoenix.names import DRIVERS
from tests.unit.inventory.helpers import edit_guest as _edit
from tests.unit.inventory.helpers import validate_json as _validate

LXC = "phoenix_lxc_configs.json"
HYP = "phoenix_hypervisor_config.json"
VM = "phoenix_vm_configs.json"


def _errors(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    return [p for p in problems if p["severity"] == "error"]


# -- 1. mount points as the original tool wrote them -----------------------------------


def test_mount_points_with_container_path_load(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        mount_points=[
            {"host_path": "/mnt/pve/models", "container_path": "/models"},
            {
                "host_path": "/srv/data",
                "container_path": "/data",
                "read_only": True,
                "owner_uid": 1000,
                "owner_gid": 1000,
            },
        ],
    )
    code, problems, output = _validate(minimal_dir)
    assert code == 0, output
    assert not [p for p in problems if "unknown key" in p["message"]]
    mounts = load_inventory(minimal_dir).guests[102].mount_points
    assert [(m.host_path, m.container_path) for m in mounts] == [
        ("/mnt/pve/models", "/models"),
        ("/srv/data", "/data"),
    ]
    assert mounts[1].read_only and mounts[1].owner_uid == 1000 and mounts[1].owner_gid == 1000


def test_mount_points_keep_the_guest_path_alias(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", mount_points=[{"host_path": "/srv/m", "guest_path": "/m"}])
    code, _, output = _validate(minimal_dir)
    assert code == 0, output
    assert load_inventory(minimal_dir).guests[102].mount_points[0].container_path == "/m"


def test_mount_point_faults_are_errors(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        mount_points=[
            {"host_path": "/srv/m"},
            {"host_path": "relative", "container_path": "/m"},
            {"host_path": "/srv/a,ro=1", "container_path": "/a"},
        ],
    )
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    paths = {p["path"] for p in _errors(problems)}
    assert "lxc_configs.102.mount_points[0].container_path" in paths
    assert "lxc_configs.102.mount_points[1].host_path" in paths
    assert "lxc_configs.102.mount_points[2].host_path" in paths


# -- 2. DNS servers: a list or a string -------------------------------------------------


def _hypervisor(config_dir: Path, **changes: Any) -> None:
    path = config_dir / HYP
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=4))


def test_dns_nameservers_as_a_list_or_a_string(minimal_dir: Path) -> None:
    for value in (["8.8.8.8", "1.1.1.1"], "8.8.8.8"):
        _hypervisor(minimal_dir, network={"interfaces": {"dns_nameservers": value}})
        code, problems, output = _validate(minimal_dir)
        assert code == 0, output
        assert not _errors(problems)
    inventory = load_inventory(minimal_dir)
    assert inventory.hypervisor.network.interfaces is not None


def test_dns_nameservers_of_another_type_is_an_error(minimal_dir: Path) -> None:
    _hypervisor(minimal_dir, network={"interfaces": {"dns_nameservers": 8}})
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    assert any(p["path"] == "network.interfaces.dns_nameservers" for p in _errors(problems))


# -- 3. DHCP -------------------------------------------------------------------------------


def test_dhcp_address_is_valid_and_plans_on_both_drivers(minimal_dir: Path) -> None:
    _edit(minimal_dir, "900", template="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")
    _edit(minimal_dir, "102", network_config={"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"})
    code, _, output = _validate(minimal_dir)
    assert code == 0, output
    assert load_inventory(minimal_dir).guests[102].network_config.ip == "dhcp"  # type: ignore[union-attr]
    for driver in DRIVERS:
        args = ["-c", str(minimal_dir), "--driver", driver, "plan", "--offline"]
        if driver == "proxmox":
            args.append("--commands")
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "unexpected" not in result.output
    assert "ip=dhcp" in result.output


def test_dhcp_with_a_gateway_address_is_a_warning(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        network_config={"name": "eth0", "bridge": "vmbr0", "ip": "dhcp", "gw": "10.0.0.1"},
    )
    code, problems, output = _validate(minimal_dir)
    assert code == 0, output
    assert any(
        p["path"] == "lxc_configs.102.network_config.gw" and p["severity"] == "warning"
        for p in problems
    )


def test_a_route_to_a_dhcp_guest_is_an_error(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", network_config={"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"})
    _edit(minimal_dir, "101", gateway={"path_routes": [{"path": "/a/", "ctid": 102, "port": 80}]})
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    (error,) = _errors(problems)
    assert error["path"] == "lxc_configs.101.gateway.path_routes[0].ctid"
    assert "102" in error["message"] and "DHCP" in error["message"]


@pytest.mark.parametrize("network", [{"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"}, None])
def test_a_routed_model_guest_needs_a_static_address(
    minimal_dir: Path, network: dict[str, str] | None
) -> None:
    """validate accepted it, then `gateway render` and the gateway's converge refused it."""
    _edit(minimal_dir, "101", gateway={})
    _edit(minimal_dir, "102", network_config=network, vllm_served_model_name="qwen")
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    (error,) = _errors(problems)
    assert error["path"] == "lxc_configs.102.network_config"
    assert "'qwen'" in error["message"]
    _edit(minimal_dir, "101", gateway=None)
    assert _validate(minimal_dir)[0] == 0  # no gateway: nothing routes to it


# -- 4. duplicate keys -------------------------------------------------------------------

_HYP_DUP = """{
    "version": "1.0.0",
    "timezone": "UTC",
    "firewall": {"enabled": false},
    "proxmox_storage_ids": {"a": "local"},
    "firewall": {"enabled": true}
}
"""


def test_duplicate_key_in_the_hypervisor_config_is_a_warning(minimal_dir: Path) -> None:
    (minimal_dir / HYP).write_text(_HYP_DUP)
    code, problems, output = _validate(minimal_dir)
    assert code == 0, output
    (warning,) = [p for p in problems if "appears at" in p["message"]]
    assert warning["path"] == "firewall"
    assert warning["severity"] == "warning"
    assert warning["file"] == HYP
    assert "lines 4 and 6" in warning["message"]
    assert "line 6" in warning["message"].split("lines 4 and 6", 1)[1]  # the value used


def test_guest_repeating_a_key_with_another_value_is_an_error(minimal_dir: Path) -> None:
    text = (minimal_dir / LXC).read_text()
    text = text.replace('"name": "model-a",', '"name": "model-a",\n "memory_mb": 1024,', 1)
    text = text.replace('"dependencies": ["101"]', '"dependencies": ["101"], "memory_mb": 4096')
    (minimal_dir / LXC).write_text(text)
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    (error,) = _errors(problems)
    assert error["path"] == "lxc_configs.102.memory_mb"
    assert "lines 20 and 23" in error["message"]


def test_guest_repeating_a_key_with_the_same_value_is_a_warning(minimal_dir: Path) -> None:
    text = (minimal_dir / LXC).read_text()
    text = text.replace('"name": "model-a",', '"name": "model-a", "cores": 2,', 1)
    text = text.replace('"dependencies": ["101"]', '"dependencies": ["101"], "cores": 2')
    (minimal_dir / LXC).write_text(text)
    code, problems, output = _validate(minimal_dir)
    assert code == 0, output
    (warning,) = [p for p in problems if p["path"] == "lxc_configs.102.cores"]
    assert warning["severity"] == "warning"
    assert load_inventory(minimal_dir).guests[102].cores == 2


# -- the faults some historical versions have stay errors naming the guest ----------------


def test_clone_source_not_in_the_inventory_is_an_error(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", clone_from_ctid="905")
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    (error,) = _errors(problems)
    assert error["path"] == "lxc_configs.102.clone_from_ctid" and "905" in error["message"]


def test_two_guests_with_one_ip_is_an_error(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        network_config={"name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.153/24", "gw": "10.0.0.1"},
    )
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    (error,) = _errors(problems)
    assert error["path"] == "lxc_configs.102.network_config.ip"
    assert "guest 101" in error["message"]


def test_vm_sharing_a_container_ip_is_an_error(minimal_dir: Path) -> None:
    (minimal_dir / VM).write_text(
        json.dumps(
            {
                "vms": [
                    {
                        "vmid": 8001,
                        "name": "vm-a",
                        "network_config": {"ip": "10.0.0.154/24", "bridge": "vmbr0"},
                    }
                ]
            }
        )
    )
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    (error,) = _errors(problems)
    assert error["path"] == "vms[0].network_config.ip"
    assert "10.0.0.154" in error["message"] and "102" in error["message"]


def test_the_lxc_driver_refuses_dhcp_with_a_message() -> None:
    """Valid in the inventory, but the LXC driver only sets static addresses: a converge
    there fails on that guest with a message instead of an "unexpected ValueError"."""
    settings = GuestSettings(
        hostname="m",
        memory_mb=512,
        swap_mb=0,
        cores=1,
        disk_gb=8,
        storage="local",
        unprivileged=True,
        net=NetSettings("eth0", "vmbr0", "dhcp", None, "52:54:00:AA:BB:CC"),
    )
    context = lxc_config.RenderContext(Path("/r"), CgroupHost(1, memsw=True, cpus=2), False)
    with pytest.raises(DriverError, match="guest 102: 'ip': 'dhcp' needs the Proxmox driver"):
        lxc_config.render(102, settings, context)

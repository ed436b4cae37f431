"""Inventory entries -> the GuestSettings every driver applies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule, MountSettings
from phoenix.inventory import load_inventory
from phoenix.plan.desired import desired_settings
from tests.conftest import shared_fixture

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _edit(config_dir: Path, ctid: str, **changes: object) -> None:
    path = config_dir / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"][ctid].update(changes)
    path.write_text(json.dumps(data))


def test_raw_options_keep_inventory_order_and_repeated_keys(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        lxc_options=[
            "lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file",
            "lxc.apparmor.profile=unconfined",
            "lxc.mount.entry=/dev/nvidiactl dev/nvidiactl none bind,optional,create=file",
            "lxc.mount.entry: /dev/nvidia0 dev/nvidia0 none bind,optional,create=file",
        ],
    )
    settings = desired_settings(load_inventory(minimal_dir), 102)
    assert settings.raw_lxc == (
        ("lxc.mount.entry", "/dev/nvidia0 dev/nvidia0 none bind,optional,create=file"),
        ("lxc.mount.entry", "/dev/nvidiactl dev/nvidiactl none bind,optional,create=file"),
    )
    assert settings.apparmor_profile == "unconfined"


def test_gateway_with_firewall_is_open_on_its_ports() -> None:
    settings = desired_settings(load_inventory(shared_fixture("phoenix-etc-seed")), 101)
    assert settings.firewall_enabled
    assert settings.firewall_rules == (FirewallRule("in", "ACCEPT", proto="tcp", port="80,443"),)


def test_model_server_firewall_keeps_only_its_rules() -> None:
    settings = desired_settings(load_inventory(shared_fixture("phoenix-etc-seed")), 950)
    assert settings.firewall_rules == (
        FirewallRule("in", "ACCEPT", source="10.0.0.153", proto="tcp", port="8000"),
    )


def test_disabled_firewall_has_no_rules(minimal_dir: Path) -> None:
    _edit(
        minimal_dir,
        "102",
        firewall={
            "enabled": False,
            "rules": [{"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "22"}],
        },
    )
    settings = desired_settings(load_inventory(minimal_dir), 102)
    assert not settings.firewall_enabled and settings.firewall_rules == ()


@pytest.mark.parametrize(
    ("api_tls", "route_tls", "ports"),
    [
        (True, True, "80,443"),
        (False, True, "80,443"),
        (True, False, "80,443"),
        (False, False, "80"),
    ],
)
def test_the_gateway_opens_443_when_anything_it_serves_is_tls(
    tmp_path: Path, api_tls: bool, route_tls: bool, ports: str
) -> None:
    """A TLS host route alone needs 443 open, as the API's own TLS does."""
    etc = tmp_path / "etc"
    shutil.copytree(EXAMPLES / "lab", etc)
    data = json.loads((etc / "phoenix_lxc_configs.json").read_text())
    gateway = data["lxc_configs"]["101"]
    gateway["firewall"] = {"enabled": True, "rules": []}
    gateway["gateway"]["tls"] = api_tls
    for route in gateway["gateway"]["host_routes"]:
        route["tls"] = route_tls
        route["redirect_http"] = route_tls
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps(data))
    settings = desired_settings(load_inventory(etc), 101)
    assert settings.firewall_rules == (FirewallRule("in", "ACCEPT", proto="tcp", port=ports),)


def test_a_bind_mount_keeps_its_owner_and_mode(minimal_dir: Path) -> None:
    """The owner is what the driver chowns the host path to: both ids must reach it."""
    bind = {"host_path": "/srv/phxt-data", "container_path": "/data/", "read_only": True}
    _edit(minimal_dir, "102", mount_points=[{**bind, "owner_uid": 1000, "owner_gid": 1001}])
    settings = desired_settings(load_inventory(minimal_dir), 102)
    (mount,) = settings.mounts
    assert mount == MountSettings(target="/data", host_path="/srv/phxt-data", read_only=True)
    # the owner takes no part in comparisons (a node does not report it): checked apart
    assert (mount.owner_uid, mount.owner_gid) == (1000, 1001)

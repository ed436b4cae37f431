"""Bind mounts block snapshot, clone and template on Proxmox (pve-container
`src/PVE/LXC/Config.pm` `has_feature` over every mount point, `src/PVE/API2/LXC.pm`
`clone_vm` "unable to clone mountpoint", `src/PVE/LXC.pm` `template_create`): refused at
validate on the proxmox driver, naming the guest, the mount point and the way out; and the
fake node refuses them the way Proxmox does."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.base import GuestSettings, MountSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import PhoenixError
from phoenix.inventory import validate_config_dir
from phoenix.inventory.problems import errors
from tests.conftest import shared_fixture
from tests.unit.proxmox.fakenode import FakeNode

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
BIND = MountSettings("/models", host_path="/srv/models")
BASE = GuestSettings("b", 512, 512, 1, 8, "local-zfs", True, None, mounts=(BIND,))


def seed_with_bind_mount(tmp_path: Path, ctid: str) -> Path:
    """The seed inventory with a bind mount on `ctid` (900: snapshotted and cloned)."""
    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), etc)
    shutil.rmtree(etc / "nginx")
    path = etc / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"][ctid]["mount_points"] = [
        {"host_path": "/srv/models", "container_path": "/models"}
    ]
    path.write_text(json.dumps(data))
    return etc


def test_validate_on_proxmox_refuses_a_bind_mount_on_a_snapshotted_clone_source(
    tmp_path: Path,
) -> None:
    etc = seed_with_bind_mount(tmp_path, "900")
    _, problems = validate_config_dir(etc, driver="proxmox")
    found = [p for p in errors(problems) if "bind mount" in p.message]
    assert [p.path for p in found] == ["lxc_configs.900.mount_points[0]"]
    message = found[0].message
    assert "/srv/models -> /models" in message and "guest 900" in message
    assert "'template_snapshot_name'" in message and "clone source of 101" in message
    assert "Use a volume instead" in message


def test_the_lxc_driver_snapshots_bind_mounts_and_is_not_refused(tmp_path: Path) -> None:
    etc = seed_with_bind_mount(tmp_path, "900")
    inventory, problems = validate_config_dir(etc, driver="lxc")
    assert inventory is not None and not [p for p in problems if "bind mount" in p.message]


def test_a_bind_mount_on_a_guest_nothing_snapshots_is_fine(tmp_path: Path) -> None:
    etc = seed_with_bind_mount(tmp_path, "101")
    inventory, problems = validate_config_dir(etc, driver="proxmox")
    assert inventory is not None and not [p for p in problems if "bind mount" in p.message]


def test_cli_validate_with_driver_proxmox_says_it_on_one_line(tmp_path: Path) -> None:
    etc = seed_with_bind_mount(tmp_path, "900")
    result = CliRunner().invoke(app, ["-c", str(etc), "--driver", "proxmox", "validate"])
    assert result.exit_code == 1
    assert "lxc_configs.900.mount_points[0]" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    made = FakeNode(tmp_path / "node")
    made.path("/srv/models").mkdir(parents=True)
    return made


def test_the_fake_node_refuses_to_snapshot_a_guest_with_a_bind_mount(node: FakeNode) -> None:
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    driver.create(900, TEMPLATE, BASE)
    with pytest.raises(PhoenixError, match="snapshot feature is not available"):
        driver.snapshot(900, "final-form")


def test_the_fake_node_refuses_to_clone_a_guest_with_a_bind_mount(node: FakeNode) -> None:
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    driver.create(900, TEMPLATE, BASE)
    with pytest.raises(PhoenixError, match=r"unable to clone mountpoint 'mp0' \(type bind\)"):
        driver.clone(900, 901, None, dataclasses.replace(BASE, mounts=()))


def test_the_fake_node_fails_a_template_with_a_bind_mount_in_its_worker(node: FakeNode) -> None:
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    driver.create(900, TEMPLATE, BASE)
    with pytest.raises(PhoenixError, match="is not a template"):
        driver.mark_template(900)


def test_a_new_bind_mount_is_left_out_of_storage_replication(node: FakeNode) -> None:
    """pve-container src/PVE/LXC/Config.pm, get_replicatable_volumes: a replication job of a
    guest with a bind mount dies "unable to replicate mountpoint type 'bind'" unless the
    entry says replicate=0; an administrator's own value is kept."""
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    driver.create(900, TEMPLATE, BASE)
    assert "mp0: /srv/models,mp=/models,replicate=0" in node.conf_text(900).splitlines()
    node.put_conf(900, node.conf_text(900).replace("replicate=0", "replicate=1"))
    read_only = (dataclasses.replace(BIND, read_only=True),)
    driver.configure(900, dataclasses.replace(BASE, mounts=read_only), frozenset({"mounts"}))
    assert "mp0: /srv/models,mp=/models,ro=1,replicate=1" in node.conf_text(900).splitlines()

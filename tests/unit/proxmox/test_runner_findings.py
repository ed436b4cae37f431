"""Findings 1 and 13 of issue 12: which node pvesh talks to, and stdin of node commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from phoenix.drivers.factory import make_driver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.inventory import load_inventory
from phoenix.runners.recorded import RecordedRunner
from phoenix.runners.ssh import SshRunner
from tests.conftest import shared_fixture


def _seed_with(tmp_path: Path, **phoenix: object) -> Path:
    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), etc)
    path = etc / "phoenix_hypervisor_config.json"
    data = json.loads(path.read_text())
    data["phoenix"] = {"driver": "proxmox", **phoenix}
    path.write_text(json.dumps(data))
    return etc


def test_over_ssh_without_node_pvesh_asks_the_node_it_runs_on(tmp_path: Path) -> None:
    """Finding 1: the local hostname names a node that does not exist; pvesh would proxy
    every /nodes/<it>/... call there. /nodes/localhost/... is never proxied."""
    inventory = load_inventory(_seed_with(tmp_path, ssh_host="root@pve1.example"))
    driver = make_driver(inventory.hypervisor.phoenix)
    assert isinstance(driver, ProxmoxDriver)
    assert isinstance(driver.runner, SshRunner)
    assert driver.node == "localhost"


def test_a_named_node_is_used_as_named(tmp_path: Path) -> None:
    inventory = load_inventory(_seed_with(tmp_path, ssh_host="root@pve1", node="pve1"))
    driver = make_driver(inventory.hypervisor.phoenix)
    assert isinstance(driver, ProxmoxDriver) and driver.node == "pve1"


def test_local_commands_do_not_inherit_stdin() -> None:
    """Finding 13: with our stdin inherited, `pct exec` (lxc-attach) gives the recipe a pty
    when run from a terminal, and a command reads what was meant for Phoenix."""
    program = (
        "from phoenix.runners.local import LocalRunner\n"
        "print(repr(LocalRunner().run(['cat']).stdout))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], input=b"meant for phoenix", capture_output=True, check=True
    )
    assert out.stdout.decode().strip() == "''"


def test_ssh_without_input_gives_the_remote_command_no_stdin() -> None:
    local = RecordedRunner()
    local.respond(["ssh"])
    SshRunner("root@pve", local=local).run(["pct", "exec", "101", "--", "true"])
    SshRunner("root@pve", local=local).run(["pct", "push"], input=b"data")
    without, with_input = local.calls
    assert "-n" in without[: without.index("--")]
    assert "-n" not in with_input


def test_the_raw_line_record_lives_in_the_state_dir(tmp_path: Path) -> None:
    inventory = load_inventory(
        _seed_with(tmp_path, ssh_host="root@pve1", state_dir=str(tmp_path / "st"))
    )
    driver = make_driver(inventory.hypervisor.phoenix)
    assert isinstance(driver, ProxmoxDriver)
    driver.owned.set(101, [("lxc.mount.auto", "sys:rw")])
    assert (tmp_path / "st" / "proxmox-owned-raw.json").is_file()


def test_offline_planning_uses_no_proxmox_driver(tmp_path: Path) -> None:
    """--offline: the planner sees a host with nothing on it; the commands come from the
    builders (preview), so no driver carries an offline mode."""
    from phoenix.drivers.factory import OfflineDriver

    inventory = load_inventory(_seed_with(tmp_path))
    driver = make_driver(inventory.hypervisor.phoenix, offline=True)
    assert isinstance(driver, OfflineDriver) and driver.name == "proxmox"

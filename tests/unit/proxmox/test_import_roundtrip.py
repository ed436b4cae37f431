"""`phoenix import` round trip on the fake Proxmox node: each of the original tool's real
inventories is built by Phoenix's converge, imported through the real CLI, and the
imported inventory must validate and plan to zero changes against the same node.

The fake node runs no program inside a guest, so the labs are built without what runs
inside (features, application scripts, health checks, the gateway block): an import cannot
read those back anyway (it names the recipes it finds applied), and everything a node
holds is built for real: clones, templates, snapshots, mounts, GPUs, raw keys, firewall.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.inventory import Inventory, load_inventory, validate_config_dir
from phoenix.inventory.problems import errors
from phoenix.plan.desired import desired_settings
from phoenix.plan.planner import Planner
from phoenix.plan.run import converge
from phoenix.recipes import registry
from tests.conftest import shared_fixture
from tests.unit.proxmox.fakenode import FakeNode

FIXTURES = [
    "phoenix-etc-2025-10-03",
    "phoenix-etc-seed",
    "phoenix-etc-newest",
    "phoenix-etc-gpu-lab",
]
IN_GUEST = ("features", "application_script", "health_check", "gateway")
LXC = "phoenix_lxc_configs.json"
HV = "phoenix_hypervisor_config.json"


def lab_dir(name: str, tmp_path: Path) -> Path:
    """The fixture's config dir with what runs inside guests taken out, driving the fake
    node with a state dir under tmp_path."""
    target = tmp_path / "lab"
    shutil.copytree(shared_fixture(name), target)
    lxc = json.loads((target / LXC).read_text())
    for guest in lxc["lxc_configs"].values():
        for key in IN_GUEST:
            guest.pop(key, None)
    (target / LXC).write_text(json.dumps(lxc))
    hv = json.loads((target / HV).read_text())
    hv["phoenix"] = {"driver": "proxmox", "node": "pve", "state_dir": str(tmp_path / "state")}
    (target / HV).write_text(json.dumps(hv))
    (target / "phoenix_vm_configs.json").unlink(missing_ok=True)
    for guest in lxc["lxc_configs"].values():  # VMs are not built: no dependency on one
        guest.pop("dependencies", None)
    (target / LXC).write_text(json.dumps(lxc))
    return target


def node_for(inventory: Inventory, tmp_path: Path) -> FakeNode:
    pools = {g.storage_pool for g in inventory.guests.values()}
    pools |= {v.pool for g in inventory.guests.values() for v in [*g.volumes, *g.zfs_volumes]}
    node = FakeNode(tmp_path / "node", version="9.1.3", storages=dict.fromkeys(pools, "zfspool"))
    gpus = {i for g in inventory.guests.values() for i in g.gpus}
    for name in ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", *(f"nvidia{i}" for i in gpus)]:
        node.add_device(f"/dev/{name}")
    return node


def driver_on(node: FakeNode, state: Path) -> ProxmoxDriver:
    """A new Phoenix process on the node: the ownership record read from its state dir."""
    return ProxmoxDriver(node, "pve", sleep=lambda _: None, owned=OwnedRaw.in_state_dir(state))


def import_with_cli(monkeypatch: pytest.MonkeyPatch, node: FakeNode, out: Path, *args: str) -> Any:
    """`phoenix import` through the real CLI, its driver reading the fake node."""
    import phoenix.drivers.factory as factory

    def make(settings: Any, name: str | None = None, offline: bool = False) -> ProxmoxDriver:
        assert settings.driver == "proxmox" and not offline
        return driver_on(node, Path(settings.state_dir))

    monkeypatch.setattr(factory, "make_driver", make)
    return CliRunner().invoke(app, ["-c", str(out), "--driver", "proxmox", "import", *args])


@pytest.mark.parametrize("fixture", FIXTURES)
def test_a_built_lab_imports_to_an_inventory_that_plans_no_change(
    fixture: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_dir(fixture, tmp_path)
    original = load_inventory(lab, registry, "proxmox")
    node = node_for(original, tmp_path)
    state = tmp_path / "state"
    built = converge(original, driver_on(node, state), state_dir=state)
    assert built.result.ok, (built.result.failed, built.result.blocked)
    # Import into a fresh config dir that only says how to reach the node.
    out = tmp_path / "imported"
    out.mkdir()
    (out / HV).write_text(json.dumps({"phoenix": {"node": "pve", "state_dir": str(state)}}))
    result = import_with_cli(
        monkeypatch, node, out, "--template", "local:vztmpl/debian-12.tar.zst", "--force"
    )
    assert result.exit_code == 0, result.output
    inventory, problems = validate_config_dir(out, registry, "proxmox")
    assert inventory is not None and errors(problems) == [], problems
    assert sorted(inventory.guests) == sorted(original.guests)
    # Zero changes: no guest has a step to take, and nothing was run to find that out.
    plan = Planner(inventory, driver_on(node, state)).plan()
    steps = {g.ctid: [s.detail for s in g.steps] for g in plan.guests if g.steps}
    assert steps == {}
    # What the node holds is what the original said, guest by guest (MACs: assigned).
    for ctid in original.guests:
        want = desired_settings(original, ctid)
        got = desired_settings(inventory, ctid)
        assert got.net is None or got.net.mac is not None
        if want.net is not None and want.net.mac is None and got.net is not None:
            got = replace(got, net=replace(got.net, mac=None))
        assert got == want, ctid
    assert "`phoenix plan` will change" not in result.output

"""`phoenix import` of VMs on the fake Proxmox node: VM labs built by Phoenix's converge
(the original tool's newest `phoenix_vm_configs.json`, and examples/vm-lab) are imported
through the real CLI into `phoenix_vm_configs.json`; the imported inventory validates, says
the same settings as the original, VM by VM, and plans to zero steps against the same
node. What the node holds beyond that (options, devices, disks, a NIC's VLAN) is named in
the report, and the cloud-init password is named, never written.

The fake node runs no program inside a VM, so the labs are built without what runs inside
(features, docker stacks, volumes, health checks): an import cannot read those back anyway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.drivers.proxmox.vmdriver import OWNED_FILE, ProxmoxVmDriver
from phoenix.drivers.split import SplitDriver
from phoenix.inventory import Inventory, load_inventory, validate_config_dir
from phoenix.inventory.problems import errors
from phoenix.plan.desired import desired_settings
from phoenix.plan.planner import Planner
from phoenix.plan.run import converge
from phoenix.recipes import registry
from tests.conftest import shared_fixture
from tests.unit.proxmox.fakenode import FakeNode
from tests.unit.proxmox.fakeqemu import image

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
IMAGE = "/var/lib/vz/import/noble-server-cloudimg-amd64.img"
VM = "phoenix_vm_configs.json"
LXC = "phoenix_lxc_configs.json"
HV = "phoenix_hypervisor_config.json"
IN_GUEST = ("features", "docker_stacks", "volumes", "health_check", "dependencies")
SECRET = "$5$hashed$NotToBeWrittenAnywhere"


def lab_dir(source: Path, tmp_path: Path) -> Path:
    """A config dir with the VMs of `source` (what runs inside them taken out, the template
    made from an image on the node) and no containers, driving the fake node."""
    etc = tmp_path / "lab"
    etc.mkdir()
    vms = json.loads((source / VM).read_text())
    for vm in vms["vms"]:
        for key in IN_GUEST:
            vm.pop(key, None)
        if vm.get("is_template"):
            vm["template_image"] = IMAGE
    (etc / VM).write_text(json.dumps(vms))
    (etc / LXC).write_text(json.dumps({"lxc_configs": {}}))
    hv = {"phoenix": {"driver": "proxmox", "node": "pve", "state_dir": str(tmp_path / "state")}}
    (etc / HV).write_text(json.dumps(hv))
    return etc


def driver_on(node: FakeNode, state: Path, vm_ids: frozenset[int]) -> SplitDriver:
    """A new Phoenix process on the node: containers and VMs, the records in its state dir."""
    containers = ProxmoxDriver(
        node, "pve", sleep=lambda _: None, owned=OwnedRaw.in_state_dir(state)
    )
    vms = ProxmoxVmDriver(node, "pve", sleep=lambda _: None, owned=OwnedRaw(state / OWNED_FILE))
    return SplitDriver(containers, vms, vm_ids)


def built(source: Path, tmp_path: Path) -> tuple[Inventory, FakeNode, Path]:
    original = load_inventory(lab_dir(source, tmp_path), registry, "proxmox")
    pools = {vm.storage_pool for vm in original.vms.values()}
    node = FakeNode(tmp_path / "node", version="9.1.3", storages=dict.fromkeys(pools, "zfspool"))
    image(node.root, IMAGE)
    state = tmp_path / "state"
    done = converge(original, driver_on(node, state, frozenset(original.vms)), state_dir=state)
    assert done.result.ok, (done.result.failed, done.result.blocked)
    return original, node, state


def import_with_cli(
    monkeypatch: pytest.MonkeyPatch, node: FakeNode, out: Path, state: Path, *args: str
) -> Any:
    """`phoenix import` through the real CLI, its drivers reading the fake node."""
    import phoenix.drivers.factory as factory

    def make(settings: Any, name: str | None = None, offline: bool = False) -> ProxmoxDriver:
        return driver_on(node, state, frozenset()).containers  # type: ignore[return-value]

    def vms(settings: Any) -> ProxmoxVmDriver:
        return driver_on(node, state, frozenset()).vms  # type: ignore[return-value]

    monkeypatch.setattr(factory, "make_driver", make)
    monkeypatch.setattr(factory, "vm_backend", vms)
    hv = {"phoenix": {"driver": "proxmox", "node": "pve", "state_dir": str(state)}}
    (out / HV).write_text(json.dumps(hv))
    return CliRunner().invoke(app, ["-c", str(out), "--driver", "proxmox", "import", *args])


@pytest.mark.parametrize(
    "source",
    [shared_fixture("phoenix-vm-newest"), EXAMPLES / "vm-lab"],
    ids=["phoenix-vm-newest", "vm-lab"],
)
def test_a_built_vm_lab_imports_to_an_inventory_that_plans_no_change(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, node, state = built(source, tmp_path)
    out = tmp_path / "imported"
    out.mkdir()
    result = import_with_cli(monkeypatch, node, out, state)
    assert result.exit_code == 0, result.output
    inventory, problems = validate_config_dir(out, registry, "proxmox")
    assert inventory is not None and errors(problems) == [], problems
    assert sorted(inventory.vms) == sorted(original.vms) and inventory.guests == {}
    # The template is one, each clone names it (its disk is a linked clone of the template's).
    for vmid, vm in original.vms.items():
        got = inventory.vms[vmid]
        assert (got.is_template, got.clone_from_vmid) == (vm.is_template, vm.clone_from_vmid)
        want, have = desired_settings(original, vmid), desired_settings(inventory, vmid)
        assert have == want, vmid
    plan = Planner(inventory, driver_on(node, state, frozenset(inventory.vms))).plan()
    assert {g.ctid: [s.detail for s in g.steps] for g in plan.guests if g.steps} == {}
    assert "`phoenix plan` will change" not in result.output
    assert f"imported {len(original.vms)} VMs" in result.output


def test_what_a_vm_holds_beyond_its_settings_is_named_and_its_password_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, node, state = built(shared_fixture("phoenix-vm-newest"), tmp_path)
    vm = node.qemu.vms[1001]
    vm.options["net0"] += ",tag=20"
    vm.options.update(
        {
            "cipassword": SECRET,
            "tags": "web;prod",
            "hostpci0": "0000:01:00,pcie=1",
            "scsi1": "quickOS-vm-disks:vm-1001-disk-9,size=100G",
            "net1": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr1",
            "args": "-cpu host",
        }
    )
    node.qemu.vms[1002].options["agent"] = "enabled=0"
    out = tmp_path / "imported"
    out.mkdir()
    result = import_with_cli(monkeypatch, node, out, state, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    notes = {(n["guest"], n["kind"], n["text"]) for n in report["notes"]}
    kept = {text for guest, kind, text in notes if guest == 1001 and kind == "kept"}
    assert {
        "net0 settings tag=20",
        "option `tags: web;prod`",
        "device hostpci0 `0000:01:00,pcie=1`",
        "disk scsi1 `quickOS-vm-disks:vm-1001-disk-9,size=100G`",
        "second NIC net1",
        "option `args` (value not shown: it may hold a secret)",
    } <= kept
    assert any(g == 1001 and k == "secret" and "cipassword" in t for g, k, t in notes)
    assert any(g == 1002 and "guest agent is off" in t for g, _, t in notes)
    for path in out.iterdir():
        assert SECRET not in path.read_text(), path
    assert SECRET not in result.output
    # What the node keeps outside the inventory stays there: still nothing to change (1002,
    # its agent off, cannot be asked what ran inside it, as the report says).
    inventory = load_inventory(out, registry, "proxmox")
    plan = Planner(inventory, driver_on(node, state, frozenset(inventory.vms))).plan([9000, 1001])
    assert [g.steps for g in plan.guests] == [(), ()]
    assert report["vms"] == sorted(original.vms)


def test_a_stopped_vm_is_a_change_and_ids_pick_vms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, node, state = built(shared_fixture("phoenix-vm-newest"), tmp_path)
    node.qemu.running.discard(1002)
    out = tmp_path / "imported"
    out.mkdir()
    result = import_with_cli(monkeypatch, node, out, state, "--ids", "1002")
    assert result.exit_code == 0, result.output
    written = json.loads((out / VM).read_text())["vms"]
    assert [v["vmid"] for v in written] == [1002]
    # Its template is not imported: the clone is written without a source, and says so.
    assert "clone_from_vmid" not in written[0]
    assert "a linked clone of 9000, which is not imported" in result.output
    assert "start: it is stopped" in result.output
    again = import_with_cli(monkeypatch, node, out, state)
    assert again.exit_code == 1 and "already exists" in again.output
    assert [v["vmid"] for v in json.loads((out / VM).read_text())["vms"]] == [1002]

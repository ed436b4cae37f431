"""The import survey of an LXC host's local QEMU VMs, on real VM folders (disks made with
qemu-img, definitions written by the local VM driver; no VM is booted): examples/vm-lab's
template and its linked clone are read back from `vm.json` and the disks, converted into
`phoenix_vm_configs.json` entries that validate and say the same settings, and the clone
names its template (its disk is an overlay on the template's). The lab's firewall is left
off here: the driver would load its nft table on this host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.qemu.driver import QemuDriver
from phoenix.drivers.qemu.meta import META_FILE
from phoenix.drivers.qemu.survey import vm_ids
from phoenix.drivers.split import SplitDriver
from phoenix.errors import PlanError
from phoenix.inventory import load_inventory, validate_config_dir
from phoenix.inventory.problems import errors
from phoenix.plan.desired import desired_settings
from phoenix.plan.imported import convert
from phoenix.plan.model import Start
from phoenix.plan.planner import Planner
from phoenix.plan.survey import survey
from phoenix.recipes import registry
from phoenix.runners.recorded import RecordedRunner

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "vm-lab"
VM = "phoenix_vm_configs.json"


def test_vm_ids_are_the_folders_with_a_definition(tmp_path: Path) -> None:
    vms = tmp_path / "vms"
    for name, record in (("9001", True), ("9002", False), ("x9", True), ("\u00b2", True)):
        (vms / name).mkdir(parents=True)
        if record:
            (vms / name / META_FILE).write_text("{}")
    assert vm_ids(vms) == [9001]
    assert vm_ids(tmp_path / "absent") == []


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """examples/vm-lab (its firewall off), its state and VMs under tmp_path."""
    etc = tmp_path / "lab"
    etc.mkdir()
    vms = json.loads((EXAMPLE / VM).read_text())
    for vm in vms["vms"]:
        vm.pop("firewall", None)
    (etc / VM).write_text(json.dumps(vms))
    (etc / "phoenix_lxc_configs.json").write_text('{"lxc_configs": {}}')
    hv = json.loads((EXAMPLE / "phoenix_hypervisor_config.json").read_text())
    for key in ("lxc_path", "state_dir", "vm_path"):
        hv["phoenix"][key] = str(tmp_path / key)
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hv))
    return etc


def drivers(lab: Path, tmp_path: Path) -> tuple[LxcDriver, QemuDriver]:
    settings = load_inventory(lab, registry, "lxc").hypervisor.phoenix
    (tmp_path / "lxc_path").mkdir(exist_ok=True)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.9.9.9\n")
    lxc = LxcDriver(Path(settings.lxc_path), tmp_path / "cache", RecordedRunner(), tmp_path)
    qemu = QemuDriver(
        Path(settings.vm_path),
        tmp_path / "images",
        state_dir=Path(settings.state_dir),
        fw_table="phoenix_vmfw_unit",
        accel="tcg",
        resolv_conf=resolv,
    )
    return lxc, qemu


def test_local_vms_import_from_their_definitions_and_disks(lab: Path, tmp_path: Path) -> None:
    original = load_inventory(lab, registry, "lxc")
    lxc, qemu = drivers(lab, tmp_path)
    image = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1G"], check=True)
    qemu.create(9000, str(image), desired_settings(original, 9000))
    qemu.mark_template(9000)
    qemu.clone(9000, 9001, None, desired_settings(original, 9001))
    qemu.snapshot(9001, "with-docker")

    found = survey(lxc, vms=qemu)
    assert found.guests == () and [v.observed.ctid for v in found.vms] == [9000, 9001]
    imported = convert(found)
    assert imported.ids == [] and imported.vm_ids == [9000, 9001]
    out = tmp_path / "imported"
    out.mkdir()
    (out / VM).write_text(json.dumps(imported.vm_document))
    (out / "phoenix_lxc_configs.json").write_text(json.dumps(imported.document))
    (out / "phoenix_hypervisor_config.json").write_text(
        (lab / "phoenix_hypervisor_config.json").read_text()
    )
    inventory, problems = validate_config_dir(out, registry, "lxc")
    assert inventory is not None and errors(problems) == [], problems
    assert inventory.vms[9000].is_template and inventory.vms[9001].clone_from_vmid == 9000
    for vmid in (9000, 9001):
        assert desired_settings(inventory, vmid) == desired_settings(original, vmid), vmid
    notes = {(n.ctid, n.kind): n.text for n in imported.notes}
    assert "with-docker" in notes[(9001, "kept")]
    assert notes[(9001, "changes")].startswith("start: it is stopped")
    # Right after: the template has nothing to do; the stopped clone is only started.
    plan = Planner(inventory, SplitDriver(lxc, qemu, frozenset(inventory.vms))).plan()
    steps = {g.ctid: [type(s) for s in g.steps] for g in plan.guests}
    assert steps == {9000: [], 9001: [Start]}
    # --ids picks VMs too, and an id that is neither a container nor a VM is refused.
    assert [v.observed.ctid for v in survey(lxc, [9001], vms=qemu).vms] == [9001]
    with pytest.raises(PlanError, match="no guest 9005"):
        survey(lxc, [9005], vms=qemu)

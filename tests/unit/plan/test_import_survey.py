"""The import survey of an LXC host: its guests under the LXC path, and its local VMs named
as not imported (import does not read VMs yet)."""

from __future__ import annotations

from pathlib import Path

from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.qemu.meta import META_FILE
from phoenix.drivers.qemu.survey import vm_ids
from phoenix.plan.survey import survey
from phoenix.runners.recorded import RecordedRunner


def test_local_vms_are_named_not_imported(tmp_path: Path) -> None:
    vms = tmp_path / "vms"
    for name, record in (("9001", True), ("9002", False), ("x9", True), ("\u00b2", True)):
        (vms / name).mkdir(parents=True)
        if record:
            (vms / name / META_FILE).write_text("{}")
    assert vm_ids(vms) == [9001]
    lxc_path = tmp_path / "lxc"
    lxc_path.mkdir()
    driver = LxcDriver(lxc_path, tmp_path / "cache", RecordedRunner(), tmp_path / "state")
    found = survey(driver, vm_path=vms)
    assert found.guests == ()
    assert [c for c, _ in found.skipped] == [9001]
    assert "add it to phoenix_vm_configs.json" in found.skipped[0][1]
    assert survey(driver, [9001], vm_path=vms).skipped == found.skipped

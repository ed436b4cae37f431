"""`qm_options`: checked when validating against the `qm set` options of the PVE 8.4 and
9.1 API schemas (the table in phoenix/inventory/qm_options.json is the schemas' own, held
equal here), refused where Phoenix sets the option itself or where it could never read
back as written (disks), applied with `qm set` as argv on the fake node, and read back
from the VM's config so a converged VM gets no command; the local driver leaves them out
and says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import qm
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.inventory import load_inventory
from phoenix.inventory.qm_schema import DATA_FILE, option_problem, parse_qm_options
from phoenix.plan.desired import vm_settings
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import validate_json
from tests.unit.proxmox.fakenode import FakeNode
from tests.unit.proxmox.fakeqemu import image
from tests.unit.proxmox.qm_schema_extract import render

VM = "phoenix_vm_configs.json"
SEED = shared_fixture("phoenix-etc-seed")
IMAGE = "/var/lib/vz/import/noble-server-cloudimg-amd64.img"


def test_the_option_table_is_the_api_schemas_own() -> None:
    assert DATA_FILE.read_text() == render()


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("--vga qxl", [("vga", "qxl")]),
        ("--vga=qxl --balloon 0", [("vga", "qxl"), ("balloon", "0")]),
        ("--description 'a b; rm -rf /'", [("description", "a b; rm -rf /")]),
    ],
)
def test_qm_options_are_shlex_words_never_a_shell(text: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_qm_options(text) == pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--vga", "--vga has no value: write '--vga VALUE'"),
        ("vga qxl", "'vga' is not an option: write '--option value'"),
        ("--vga 'qxl", '"--vga \'qxl": No closing quotation'),
        ("", "empty: write '--option value'"),
    ],
)
def test_a_string_that_is_not_option_value_pairs_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_qm_options(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("vga", "qxl", None),
        ("hostpci3", "0000:01:00", None),
        ("vgaa", "qxl", "--vgaa is not an option of `qm set` (PVE 8.4/9.1 API schema)"),
        ("vga", "bogus", "--vga 'bogus': type=bogus: expected one of cirrus"),
        ("vga", "type=qxl,size=1", "--vga 'type=qxl,size=1': unknown key 'size'"),
        ("balloon", "x", "--balloon 'x': expected an integer"),
        ("tablet", "maybe", "--tablet 'maybe': expected a boolean (0 or 1)"),
        ("memory", "4096", "--memory is not for qm_options: set from 'memory_mb'"),
        ("net1", "virtio,bridge=vmbr1", "--net1 is not for qm_options: the NIC comes from"),
        ("scsi1", "local-lvm:32", "--scsi1 is not for qm_options: a disk: Proxmox allocates"),
        ("cipassword", "x", "--cipassword is not for qm_options: stored hashed"),
        ("delete", "vga", "--delete is not for qm_options: a flag of the API request"),
    ],
)
def test_each_option_is_checked_against_the_schema(
    option: str, value: str, message: str | None
) -> None:
    why = option_problem(option, value)
    assert why == message if message is None else (why or "").startswith(message)


def _seed_lab(tmp_path: Path, qm_options: list[str]) -> Path:
    etc = tmp_path / "etc"
    shutil.copytree(SEED, etc)
    text = (etc / VM).read_text().replace('"--vga qxl"', ", ".join(f'"{o}"' for o in qm_options))
    (etc / VM).write_text(text)
    return etc


def test_validate_names_the_exact_string_of_a_bad_option(tmp_path: Path) -> None:
    etc = _seed_lab(tmp_path, ["--vga qxl", "--vgaa qxl"])
    code, problems, output = validate_json(etc)
    assert code != 0, output
    errors = [p for p in problems if p["severity"] == "error"]
    assert errors == [
        {
            "file": VM,
            "path": "vms[1].qm_options[1]",
            "message": "--vgaa is not an option of `qm set` (PVE 8.4/9.1 API schema)",
            "severity": "error",
        }
    ]


def test_an_option_only_newer_nodes_have_is_a_warning(tmp_path: Path) -> None:
    etc = _seed_lab(tmp_path, ["--allow-ksm 0"])
    code, problems, _ = validate_json(etc)
    assert code == 0
    assert {
        "file": VM,
        "path": "vms[1].qm_options[0]",
        "message": "--allow-ksm needs PVE 9.1 or later",
        "severity": "warning",
    } in problems


def test_set_options_writes_only_what_the_config_does_not_hold() -> None:
    wanted = [("vga", "qxl"), ("balloon", "0")]
    assert qm.set_options(1001, wanted, qm.VmFacts({})) == [
        "qm", "set", "1001", "--vga", "qxl", "--balloon", "0",
    ]  # fmt: skip
    have = qm.VmFacts({"vga": "qxl", "balloon": "512"})
    assert qm.set_options(1001, wanted, have) == ["qm", "set", "1001", "--balloon", "0"]
    assert qm.set_options(1001, wanted, qm.VmFacts({"vga": "qxl", "balloon": "0"})) is None


def _desired(tmp_path: Path, qm_options: list[str]) -> dict[int, GuestSettings]:
    inventory = load_inventory(_seed_lab(tmp_path, qm_options))
    return {vmid: vm_settings(vm) for vmid, vm in inventory.vms.items()}


def test_on_the_fake_node_options_are_applied_read_back_and_then_left_alone(
    tmp_path: Path,
) -> None:
    node = FakeNode(tmp_path / "node", version="9.1.3", storages={"quickOS-vm-disks": "zfspool"})
    image(node.root, IMAGE)
    desired = _desired(tmp_path, ["--vga qxl", "--balloon 0"])
    driver = ProxmoxVmDriver(node, "pve", sleep=lambda _: None, version=(9, 1))
    driver.create(9000, IMAGE, desired[9000])
    driver.mark_template(9000)
    driver.clone(9000, 1001, None, desired[1001])
    assert ("qm", "set", "1001", "--vga", "qxl", "--balloon", "0") in node.mutations()
    seen = driver.observe(1001).settings
    assert seen is not None and desired[1001].diff(seen) == {}
    assert ("vga", "qxl") in seen.qm_options  # read back from the VM's config
    before = len(node.mutations())
    driver.configure(1001, desired[1001], frozenset({"qm_options"}))
    assert node.mutations()[before:] == []
    # an option changed on the node by hand is put back by one `qm set`
    node.dispatch(["qm", "set", "1001", "--vga", "std"])
    seen = driver.observe(1001).settings
    assert seen is not None
    assert desired[1001].diff(seen) == {
        "qm_options": ((("balloon", "0"), ("vga", "std")), (("balloon", "0"), ("vga", "qxl")))
    }
    before = len(node.mutations())
    driver.configure(1001, desired[1001], frozenset({"qm_options"}))
    assert node.mutations()[before:] == [("qm", "set", "1001", "--vga", "qxl")]


def test_the_local_driver_says_they_apply_on_proxmox_only() -> None:
    result = CliRunner().invoke(app, ["-c", str(SEED), "--driver", "lxc", "plan", "--offline"])
    assert result.exit_code == 0, result.output
    assert (
        "note: VM 1001: qm_options (--vga qxl) apply on Proxmox only: the local QEMU driver "
        "leaves them out"
    ) in result.stderr
    proxmox = CliRunner().invoke(
        app, ["-c", str(SEED), "--driver", "proxmox", "plan", "--offline", "--commands"]
    )
    assert proxmox.exit_code == 0, proxmox.output
    assert "qm set 1001 --vga qxl" in proxmox.stdout and "qm_options" not in proxmox.stderr

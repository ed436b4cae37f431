"""The `qm` half of the schema contract (see test_schema.py): every command the VM
builders emit, for every VM of the fixtures' VM inventories and the cases the builders
branch on, is valid for the API schema of PVE 8.4 and 9.1; `qm guest exec` and `qm
importdisk`, commands of the CLI alone, take only the options `PVE/CLI/qm.pm` gives them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from phoenix.drivers.base import GuestSettings, NetSettings, VmConfig
from phoenix.drivers.proxmox import qm
from phoenix.inventory import load_inventory
from phoenix.inventory.qm_schema import option_problem, parse_qm_options
from phoenix.plan.desired import vm_settings
from tests.conftest import shared_fixture
from tests.unit.proxmox.apischema import VERSIONS, check_argv

QM_VERBS = {
    "create", "set", "clone", "resize", "snapshot", "template", "start", "stop", "shutdown",
    "destroy", "guest exec", "importdisk",
}  # fmt: skip
IMAGE = "/var/lib/vz/import/noble-server-cloudimg-amd64.img"
# Valid `qm_options` of both versions, each kind of value the validator checks.
QM_OPTIONS = (
    "--vga qxl",
    "--vga type=virtio,memory=64",
    "--balloon 0 --numa 1",
    "--sockets 1 --cpuunits 200",
    "--machine q35",
    "--bios ovmf",
    "--tablet 0",
    "--hostpci1 0000:03:00,pcie=1",
    "--description 'lab VM'",
)
FIXTURES = ("phoenix-etc-seed", "phoenix-etc-2025-10-03", "phoenix-etc-newest")


def fixture_vms() -> Iterator[tuple[int, GuestSettings]]:
    for name in FIXTURES:
        inventory = load_inventory(shared_fixture(name))
        for vmid, vm in inventory.vms.items():
            yield vmid, vm_settings(vm)


def commands(version: tuple[int, int]) -> Iterator[list[str]]:
    for vmid, settings in fixture_vms():
        yield qm.create(vmid, IMAGE, settings, version)
        yield qm.config("pve", vmid, settings, None, version)
        current = qm.VmFacts({"ide2": f"{settings.storage}:vm-{vmid}-cloudinit,media=cdrom"})
        dropped = replace(settings, boot_order=0, boot_delay=0, vm=VmConfig(), net=None)
        yield qm.config(
            "pve",
            vmid,
            dropped,
            qm.VmFacts(
                {
                    **current.options,
                    "startup": "order=1",
                    "ciuser": "x",
                    "sshkeys": "a",
                    "nameserver": "1.1.1.1",
                    "ipconfig0": "ip=dhcp",
                    "net0": "virtio=52:54:00:00:00:01,bridge=vmbr0",
                }
            ),
            version,
        )
        yield qm.clone(9000, vmid + 10_000, None, settings, full=False)
        yield qm.clone(9000, vmid + 20_000, "clean", settings, full=True)
        yield qm.resize(vmid, settings.disk_gb + 8, settings.disk_gb) or []
        yield qm.snapshot(vmid, "pre_features")
        yield qm.template(vmid, [], running=False)
        yield qm.start(vmid)
        yield qm.shutdown(vmid, 60)
        yield qm.stop(vmid)
        yield qm.destroy(vmid)
        yield qm.guest_exec(vmid, ["sh", "-c", "true"], {"A": "1"}, 60, stdin_size=100)
        yield qm.set_options(vmid, settings.qm_options, qm.VmFacts({})) or []
    dhcp = NetSettings("eth0", "vmbr0", "dhcp", None, None)
    yield qm.config("pve", 9001, replace(settings, net=dhcp), None, version)
    yield qm.import_disk(9001, IMAGE, "local-lvm")
    yield qm.attach_disk(9001, "local-lvm:vm-9001-disk-0")
    yield ["qm", "set", "9001", *qm.hostpci(["0000:01:00", "0000:02:00.1"])]
    # qm_options as an inventory writes them (each passed validation: qm_schema)
    for text in QM_OPTIONS:
        yield qm.set_options(9001, parse_qm_options(text), qm.VmFacts({})) or []


@pytest.mark.parametrize("version", VERSIONS)
def test_every_qm_command_is_valid_for_the_version(version: str) -> None:
    major, minor = map(int, version.split("."))
    problems: list[str] = []
    verbs: set[str] = set()
    count = 0
    for argv in commands((major, minor)):
        if not argv:
            continue
        report = check_argv(version, argv)
        problems += report.problems
        assert report.unchecked == set(), "named formats the checker does not know yet"
        if argv[0] == "qm":
            verbs.add("guest exec" if argv[1] == "guest" else argv[1])
        count += 1
    assert problems == []
    assert verbs == QM_VERBS
    assert count > 40


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["qm", "clone", "9000", "1001", "--linked", "1"], "has no 'linked'"),
        (["qm", "resize", "1001", "scsi0"], "missing positional"),
        (
            ["pvesh", "set", "/nodes/pve/qemu/1001/config", "--ipconfig0", "ip=10.0.0.5"],
            "pve-qm-ipconfig",
        ),
        (
            ["pvesh", "set", "/nodes/pve/qemu/1001/config", "--sshkeys", "ssh-ed25519 AAAA"],
            "urlencoded",
        ),
        (
            ["pvesh", "set", "/nodes/pve/qemu/1001/config", "--nameserver", "dns.example"],
            "address-list",
        ),
        (["qm", "guest", "exec", "1001", "--input-data", "x", "--", "true"], "no option"),
        (["qm", "guest", "exec", "1001", "--timeout", "5"], "no command"),
        (["qm", "rescan", "--vmid", "1001"], "no API endpoint"),
        (["qm", "migrate", "1001", "pve2", "--live", "1"], "has no 'live'"),
        (["qm", "set", "1001", "--net0", "virtio=01:00:00:00:00:01"], "not a valid mac-addr"),
    ],
)
def test_the_checker_rejects_invalid_qm_commands(argv: list[str], says: str) -> None:
    problems = " ".join(check_argv(VERSIONS[-1], argv).problems)
    assert says in problems


@pytest.mark.parametrize("text", QM_OPTIONS)
def test_the_qm_options_the_contract_checks_pass_validation(text: str) -> None:
    assert [option_problem(*pair) for pair in parse_qm_options(text)] == [None] * len(
        parse_qm_options(text)
    )

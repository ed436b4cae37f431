"""The original tool's newest VM inventory (template 9000 from a cloud image, Portainer
VM 1001 after container 102, agent VM 1002 with NFS volumes and two docker stacks)
converged by the real planner and executor on the fake node, through `qm` and `pvesh`,
with a guest that answers the recipe runner's protocol (markers, unpack, start, wait) as
a real one does; the re-run plans nothing and sends no command but the read of each
running VM's recipe markers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.drivers.split import SplitDriver
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.run import converge
from phoenix.recipes import runner
from tests.conftest import shared_fixture
from tests.unit.proxmox.fakenode import FakeNode
from tests.unit.proxmox.fakeqemu import image

NEWEST = shared_fixture("phoenix-vm-newest")
CT_TEMPLATE = "/var/lib/vz/template/cache/debian-12.tar.zst"


class Guests:
    """The in-guest side of the recipe runner for every VM of the node: applied markers
    per VM, a recipe "runs" at START and leaves its exit code for WAIT (the argv after
    `qm guest exec ... -- env K=V...`)."""

    def __init__(self) -> None:
        self.markers: dict[int, dict[str, str]] = {}
        self.rc: dict[int, str] = {}
        self.ran: list[tuple[int, str]] = []
        self.vmid = 0

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        words = argv[1:]
        while words and "=" in words[0]:
            words = words[1:]  # env's assignments
        markers = self.markers.setdefault(self.vmid, {})
        if tuple(words) == runner.READ_MARKERS:
            lines = "".join(f"{runner.MARKER_DIR}/{k}:{v}\n" for k, v in sorted(markers.items()))
            return (0 if lines else 1), lines, ""
        if words[:3] == ["sh", "-c", runner.UNPACK_SCRIPT]:
            return 0, "", ""
        if words[:3] == ["sh", "-c", runner.START_SCRIPT]:
            _run_dir, _script, _marker_dir, digest, marker, _state = words[4:10]
            markers[marker] = digest
            self.ran.append((self.vmid, marker))
            self.rc[self.vmid] = "0\n"
            return 0, "", ""
        if words[:3] == ["sh", "-c", runner.WAIT_SCRIPT]:
            done = self.rc.get(self.vmid)
            return (0, done, "") if done else (3, "", "")
        return 0, "", ""  # `true` (is the agent up?), `cloud-init clean`


def lab(tmp_path: Path) -> Inventory:
    etc = tmp_path / "etc"
    etc.mkdir()
    phoenix = {"driver": "proxmox", "state_dir": str(tmp_path / "state")}
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps({"phoenix": phoenix}))
    net = {"name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.12/24", "gw": "10.0.0.1"}
    traefik = {"name": "traefik", "memory_mb": 512, "cores": 1, "template": CT_TEMPLATE,
               "storage_pool": "local-zfs", "network_config": net}  # fmt: skip
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {"102": traefik}}))
    shutil.copy(NEWEST / "phoenix_vm_configs.json", etc)
    shutil.copytree(NEWEST / "stacks", etc / "stacks")
    return load_inventory(etc)


def driver_for(node: FakeNode, inventory: Inventory) -> SplitDriver:
    """A new Phoenix process on the node: the containers' and the VMs' drivers."""
    owned = OwnedRaw.in_state_dir(inventory.state_dir)
    cts = ProxmoxDriver(node, "pve", sleep=lambda _: None, owned=owned)
    vm_owned = OwnedRaw(inventory.state_dir / "proxmox-vm-owned.json")
    vms = ProxmoxVmDriver(node, "pve", sleep=lambda _: None, owned=vm_owned)
    return SplitDriver(cts, vms, frozenset(inventory.vms))


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    fake = FakeNode(
        tmp_path / "node",
        version="9.1.3",
        storages={"quickOS-vm-disks": "zfspool", "local-zfs": "zfspool"},
    )
    image(fake.root, CT_TEMPLATE)
    return fake


def test_the_newest_vm_inventory_converges_on_the_node_and_reruns_to_nothing(
    node: FakeNode, tmp_path: Path
) -> None:
    inventory = lab(tmp_path)
    image(node.root, str(inventory.config_dir / "images" / "noble-server-cloudimg-amd64.img"))
    guests = Guests()

    def guest(argv: list[str]) -> tuple[int, str, str]:
        return guests(argv)

    original = node.qemu._guest_exec

    def exec_for(argv: list[str], input: object) -> str:
        guests.vmid = int(argv[3])  # which VM's agent answers
        return original(argv, input)  # type: ignore[arg-type]

    node.qemu.guest = guest
    node.qemu._guest_exec = exec_for  # type: ignore[method-assign]
    options = PlanOptions(gateway=GATEWAY, state_dir=inventory.state_dir)
    outcome = converge(inventory, driver_for(node, inventory), options=options)
    assert outcome.result.ok, outcome.result.failed
    assert node.qemu.vms[9000].options.get("template") == "1"
    assert {9000, 1001, 1002} <= set(node.qemu.vms) and {1001, 1002} <= node.qemu.running
    assert set(guests.markers[1002]) == {
        "feature-base_setup",
        "feature-docker",
        "feature-trusted_ca",
        "vm-volumes",
        "stack-qdrant_service",
        "stack-thinkheads_ai_app",
    }
    assert (
        "vm-volumes" in guests.markers[1001] and "stack-qdrant_service" not in guests.markers[1001]
    )
    # the re-run: a new process plans nothing and sends no mutating command
    again = Planner(inventory, driver_for(node, inventory), options).plan()
    assert again.up_to_date, [(g.ctid, [s.describe() for s in g.steps]) for g in again.guests]
    before = len(node.mutations())
    rerun = converge(inventory, driver_for(node, inventory), options=options)
    assert rerun.result.ok
    sent = node.mutations()[before:]
    reads = [c for c in sent if c[:3] == ("qm", "guest", "exec") and _reads_markers(c)]
    assert sent == reads and len(reads) == 2  # each running VM asked for its markers, only


def _reads_markers(argv: tuple[str, ...]) -> bool:
    """`qm guest exec VMID ... -- env K=V... grep -r ... /var/lib/phoenix/applied`."""
    tail = argv[len(argv) - len(runner.READ_MARKERS) :]
    return tail == runner.READ_MARKERS

"""examples/vm-lab: valid, a Docker VM cloned from a template with the container that needs
it, on a bridge, subnet and ids of its own, so it runs beside the demo lab
(examples/lab) and tearing one down never takes the other's bridge."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from phoenix.inventory import Inventory, load_inventory
from tests.unit.inventory.helpers import validate_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Net = tuple[str | None, ipaddress.IPv4Network | ipaddress.IPv6Network]


def networks(inventory: Inventory) -> set[Net]:
    """(bridge, subnet) of every guest and VM with a static address."""
    found: set[Net] = set()
    for guest in inventory.guests.values():
        nc = guest.network_config
        if nc is not None and nc.ip and nc.ip != "dhcp":
            found.add((nc.bridge, ipaddress.ip_interface(nc.ip).network))
    for vm in inventory.vms.values():
        vc = vm.network_config
        if vc is not None and vc.ip and vc.ip != "dhcp":
            found.add((vc.bridge or vm.network_bridge, ipaddress.ip_interface(vc.ip).network))
    return found


def test_the_example_is_valid_with_no_warning() -> None:
    code, problems, _ = validate_json(EXAMPLES / "vm-lab")
    assert code == 0 and problems == []


def test_a_docker_vm_cloned_from_the_template_and_a_container_that_needs_it() -> None:
    inventory = load_inventory(EXAMPLES / "vm-lab")
    template, docker = inventory.vms[9000], inventory.vms[9001]
    assert template.is_template and docker.clone_from_vmid == 9000
    assert "docker" in docker.features and docker.health_check is not None
    assert docker.health_check.command == "docker info"
    assert inventory.guests[120].dependencies == [9001]


def test_it_shares_no_id_bridge_or_subnet_with_the_demo_lab() -> None:
    vm_lab, lab = load_inventory(EXAMPLES / "vm-lab"), load_inventory(EXAMPLES / "lab")
    assert not (set(vm_lab.guests) | set(vm_lab.vms)) & (set(lab.guests) | set(lab.vms))
    mine, theirs = networks(vm_lab), networks(lab)
    assert mine == {("phxvmlab0", ipaddress.ip_network("10.213.70.0/24"))}
    assert not {b for b, _ in mine} & {b for b, _ in theirs}
    assert not {n for _, n in mine} & {n for _, n in theirs}

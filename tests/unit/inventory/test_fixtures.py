"""The original tool's inventories load unchanged."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import creation_order, load_inventory, start_order
from phoenix.plan.desired import desired_settings
from tests.conftest import shared_fixture


@pytest.mark.parametrize("name", ["phoenix-etc-2025-10-03", "phoenix-etc-seed"])
def test_fixture_validates_with_exit_0(name: str) -> None:
    result = CliRunner().invoke(app, ["--config-dir", str(shared_fixture(name)), "validate"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert "error" not in result.output.replace("warning", "")


def test_seed_gateway_mac_is_automatic_and_raw_options_normalised() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-seed"))
    gateway = inventory.guests[101]
    assert gateway.mac_address is None  # "" means: assigned, then kept
    assert gateway.lxc_options == ["lxc.mount.auto: sys:rw", "lxc.apparmor.profile: unconfined"]
    settings = desired_settings(inventory, 101)
    assert settings.raw_lxc == (("lxc.mount.auto", "sys:rw"),)
    assert settings.apparmor_profile == "unconfined"
    assert settings.features == (("nesting", "1"),)
    assert settings.net is not None and settings.net.mac is None


def test_both_spellings_of_a_raw_option_normalise_to_the_same_value() -> None:
    old = load_inventory(shared_fixture("phoenix-etc-2025-10-03")).guests[101]
    new = load_inventory(shared_fixture("phoenix-etc-seed")).guests[101]
    assert old.lxc_options == new.lxc_options
    assert old.mac_address == "52:54:00:67:89:B3"


def test_fixture_creation_order_puts_clone_sources_first() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-seed"))
    order = creation_order(inventory)
    pos = {ctid: i for i, ctid in enumerate(order)}
    assert pos[900] < pos[901] < pos[910] < pos[950]
    assert pos[901] < pos[911] < pos[801]
    assert pos[911] < pos[802]
    assert pos[901] < pos[912]
    assert pos[900] < pos[101] < pos[801]  # 801 depends on the gateway
    assert pos[9000] < pos[1001]  # VMs are in the graph too


def test_fixture_start_order_is_boot_order_then_ctid() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-seed"))
    order = start_order(inventory, [950, 101, 914, 801, 917, 952])
    assert order == [101, 914, 917, 801, 950, 952]


def test_served_models_from_new_and_flat_keys() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-seed"))
    assert inventory.guests[801].served_model == ("ibm-granite/granite-embedding-english-r2", 8000)
    assert inventory.guests[950].served_model == ("qwen2.5-7b-awq", 8000)
    assert inventory.guests[952].served_model is None
    assert inventory.guests[910].is_clone_source

"""Network and naming mistakes that validate used to pass and that failed later or
confused: a static guest without `gw` (a warning: it has no way out, and the LXC driver's
setup needs it for the bridge's address), guests that disagree about a bridge's
address, a host bridge whose address is not the guests' gateway (doctor), and model names
that differ only by an invisible character or a compatibility form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.host.doctor import run_lxc_doctor
from phoenix.inventory.loader import load_inventory
from phoenix.runners.recorded import RecordedRunner
from tests.unit.inventory.helpers import edit_guest, validate_json
from tests.unit.lxc.test_host_doctor import LAB, facts

NET = {"name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.154/24"}


def problems_at(config_dir: Path, path: str, *options: str) -> list[dict[str, str]]:
    _, problems, _ = validate_json(config_dir, *options)
    return [p for p in problems if p["path"] == path]


@pytest.mark.parametrize("driver", ["lxc", "proxmox"])
def test_a_static_guest_without_gw_is_told_it_has_no_way_out(
    minimal_dir: Path, driver: str
) -> None:
    """A warning: a guest only the gateway reaches, or an inventory only rendered, needs no
    way out; on the LXC driver `phoenix setup` stops on it, and validate says so first."""
    edit_guest(minimal_dir, "102", network_config=NET)
    code, problems, _ = validate_json(minimal_dir, "--driver", driver)
    found = [p for p in problems if p["path"] == "lxc_configs.102.network_config"]
    assert code == 0 and len(found) == 1 and found[0]["severity"] == "warning", problems
    message = found[0]["message"]
    assert "no default route" in message and "reaches only 10.0.0.0/24" in message
    assert ("phoenix setup" in message) is (driver == "lxc"), message


def test_a_dhcp_guest_needs_no_gw(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "102", network_config={"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"})
    assert problems_at(minimal_dir, "lxc_configs.102.network_config", "--driver", "lxc") == []


@pytest.mark.parametrize(
    ("ip", "gw"), [("10.0.0.154/24", "10.0.0.254"), ("10.0.0.154/16", "10.0.0.1")]
)
def test_guests_that_disagree_about_a_bridge_address_are_refused(
    minimal_dir: Path, ip: str, gw: str
) -> None:
    edit_guest(minimal_dir, "102", network_config={**NET, "ip": ip, "gw": gw})
    (found,) = problems_at(minimal_dir, "lxc_configs.102.network_config.gw", "--driver", "lxc")
    assert "10.0.0.1/24" in found["message"] and "guest 101" in found["message"], found


def test_guests_on_a_bridge_of_their_own_may_use_another_subnet(minimal_dir: Path) -> None:
    edit_guest(
        minimal_dir,
        "102",
        network_config={**NET, "bridge": "vmbr1", "ip": "10.9.0.5/24", "gw": "10.9.0.1"},
    )
    code, problems, _ = validate_json(minimal_dir, "--driver", "lxc")
    assert code == 0 and not [p for p in problems if "network_config" in p["path"]], problems


def test_doctor_says_when_the_bridge_address_is_not_the_guests_gateway(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    other = [{"addr_info": [{"family": "inet", "local": "192.168.7.1", "prefixlen": 24}]}]
    runner.respond(["ip", "-j", "addr"], json.dumps(other))
    runner.respond(["nft"], "", 1)
    checks = run_lxc_doctor(
        runner, load_inventory(LAB), facts(tmp_path, includes=True, subids=True, forward="1")
    )
    (bridge,) = [c for c in checks if c.name == "bridge phxlab0"]
    assert not bridge.ok
    assert "192.168.7.1/24" in bridge.detail and "10.213.50.1" in bridge.detail, bridge
    assert "no way out" in bridge.detail and "another bridge" in bridge.fix, bridge


@pytest.mark.parametrize(
    "lookalike",
    ["\uff44emo-chat", "demo\ufe63chat", "\U0001d41demo-chat", "demo-cha\u1d57"],
)
def test_model_names_that_read_the_same_are_refused(minimal_dir: Path, lookalike: str) -> None:
    """A full-width letter, a small hyphen, a mathematical bold letter, a modifier letter:
    NFKC folds each into 'demo-chat'; two guests serving both confuse every client."""
    edit_guest(minimal_dir, "101", vllm_served_model_name="demo-chat")
    edit_guest(minimal_dir, "102", vllm_served_model_name=lookalike)
    (found,) = problems_at(minimal_dir, "lxc_configs.102")
    assert found["severity"] == "error" and "reads as 'demo-chat'" in found["message"], found


def test_one_model_name_on_two_guests_is_one_model(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "101", vllm_served_model_name="d\u00e9mo")
    edit_guest(minimal_dir, "102", vllm_served_model_name="d\u00e9mo")
    assert problems_at(minimal_dir, "lxc_configs.102") == []


def test_a_composed_and_a_decomposed_accent_are_one_name_to_a_reader(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "101", vllm_served_model_name="d\u00e9mo")
    edit_guest(minimal_dir, "102", vllm_served_model_name="de\u0301mo")
    (found,) = problems_at(minimal_dir, "lxc_configs.102")
    assert "clients cannot tell them apart" in found["message"], found

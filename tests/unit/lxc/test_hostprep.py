"""Host preparation's plan is a pure function of recorded facts; the facts come through
the runner (nothing read from /proc), and a host without the packages is asked nothing
more."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from phoenix.drivers.lxc.hostprep import BridgeSpec, HostFacts, Record, SetupError, plan
from phoenix.drivers.lxc.hostprep.facts import read_facts
from phoenix.drivers.lxc.hostprep.plan import (
    AddAddress,
    AddSubids,
    CreateBridge,
    EnableForwarding,
    Masquerade,
    nat_marker,
)
from phoenix.drivers.lxc.hostprep.subids import SubIds
from phoenix.errors import DriverError, ParseError, PhoenixError
from phoenix.runners.recorded import RecordedRunner

BR = BridgeSpec("phxtbr9", ipaddress.IPv4Interface("10.213.99.1/24"))
ROUTES = json.dumps(
    [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
    ]
)
# A host `phoenix setup` prepared for BR, as read_facts records it.
READY = HostFacts(
    addresses={"phxtbr9": ("10.213.99.1/24",)},
    routes_json=ROUTES,
    ip_forward="1",
    nat_comments=frozenset({nat_marker([BR.subnet])}),
)


def test_a_prepared_host_plans_nothing() -> None:
    assert plan(READY, [BR], Record(), "phoenix_nat") == []


def test_a_bare_host_plans_every_step_in_order() -> None:
    facts = HostFacts(
        addresses={"phxtbr9": None},
        routes_json=ROUTES,
        ip_forward="0",
        subids_lacking=(
            (Path("/etc/subuid"), "root:100000:65536"),
            (Path("/etc/subgid"), "root:100000:65536"),
            (Path("/etc/subgid"), "root:33:1"),
        ),
    )
    steps = plan(facts, [BR], Record(), "phoenix_nat")
    assert steps == [
        CreateBridge(BR),
        AddAddress(BR),
        EnableForwarding("0"),
        Masquerade("phoenix_nat", (BR.subnet,)),
        AddSubids(facts.subids_lacking),
    ]
    assert [s.describe for s in steps][-1] == (
        "add root:100000:65536 to /etc/subuid and /etc/subgid, root:33:1 to /etc/subgid"
    )


def test_nat_for_other_subnets_is_replaced() -> None:
    facts = HostFacts(**{**READY.__dict__, "nat_comments": frozenset({"phoenix-nat:other"})})
    assert plan(facts, [BR], Record(), "phoenix_nat") == [Masquerade("phoenix_nat", (BR.subnet,))]


def test_a_bridge_phoenix_made_gets_its_address_back() -> None:
    facts = HostFacts(**{**READY.__dict__, "addresses": {"phxtbr9": ()}})
    with pytest.raises(SetupError, match="did not create"):
        plan(facts, [BR], Record(), "phoenix_nat")
    assert plan(facts, [BR], Record(bridges=["phxtbr9"]), "phoenix_nat") == [AddAddress(BR)]


def test_refusals_are_phoenix_errors() -> None:
    overlapping = BridgeSpec("phxtbr9", ipaddress.IPv4Interface("192.0.2.200/24"))
    facts = HostFacts(addresses={"phxtbr9": None}, routes_json=ROUTES)
    with pytest.raises(SetupError, match="overlaps") as caught:
        plan(facts, [overlapping], Record(), "phoenix_nat")
    assert isinstance(caught.value, DriverError) and isinstance(caught.value, PhoenixError)
    with pytest.raises(SetupError, match="apt-get install nftables"):
        plan(HostFacts(missing_packages=("nftables",)), [BR], Record(), "phoenix_nat")


def test_facts_come_through_the_runner(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    runner.respond(["ip", "-j", "-4", "route"], ROUTES)
    addr = [{"addr_info": [{"family": "inet", "local": "10.213.99.1", "prefixlen": 24}]}]
    runner.respond(["ip", "-j", "addr"], json.dumps(addr))
    runner.respond(["sysctl", "-n", "net.ipv4.ip_forward"], "1\n")
    listing = {"nftables": [{"rule": {"chain": "postrouting", "comment": "phoenix-nat:x"}}]}
    runner.respond(["nft", "-j", "list", "table", "ip", "phoenix_nat"], json.dumps(listing))
    (tmp_path / "subuid").write_text("root:100000:65536\n")
    subids = SubIds((tmp_path / "subuid",), tmp_path / "ledger.json")
    facts = read_facts(runner.run, [BR], packages=("lxc",), nat_table="phoenix_nat", subids=subids)
    assert facts == HostFacts(
        addresses={"phxtbr9": ("10.213.99.1/24",)},
        routes_json=ROUTES,
        ip_forward="1",
        nat_comments=frozenset({"phoenix-nat:x"}),
    )


def test_without_the_packages_nothing_else_is_asked(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "", returncode=1)
    subids = SubIds((tmp_path / "subuid",), tmp_path / "ledger.json")
    facts = read_facts(
        runner.run, [BR], packages=("lxc", "nftables"), nat_table="phoenix_nat", subids=subids
    )
    assert facts.missing_packages == ("lxc", "nftables")
    assert {call[0] for call in runner.calls} == {"dpkg-query"}


def test_unreadable_tool_output_is_a_phoenix_error(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    runner.respond(["ip", "-j", "-4", "route"], "not json")
    subids = SubIds((tmp_path / "subuid",), tmp_path / "ledger.json")
    facts = read_facts(runner.run, [], packages=("lxc",), nat_table="phoenix_nat", subids=subids)
    with pytest.raises(ParseError, match="ip -j route show: not valid JSON"):
        plan(facts, [BridgeSpec("b", ipaddress.IPv4Interface("10.1.1.1/24"))], Record(), "p")

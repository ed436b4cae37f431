"""The LXC driver's guest firewall: the nft scripts it writes (checked against real nft by
the e2e suite) and how it creates, shares and removes its one bridge table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.drivers.base import FirewallRule
from phoenix.drivers.lxc import firewall
from phoenix.drivers.lxc.context import LxcContext
from phoenix.errors import CommandFailed
from phoenix.runners.base import CommandResult
from phoenix.runners.recorded import RecordedRunner

T = "bridge phoenix_fw"


def test_the_table_hooks_every_path_a_guests_frames_take() -> None:
    """Guest to guest (forward), host to guest (output), guest to host (input): each
    reaches a guest's chains through the port maps, and lets everything else pass."""
    assert firewall.table_script("phoenix_fw").splitlines() == [
        f"add table {T}",
        f"add map {T} in_ports {{ type ifname : verdict; }}",
        f"add map {T} out_ports {{ type ifname : verdict; }}",
        f"add chain {T} forward {{ type filter hook forward priority filter; policy accept; }}",
        f"add rule {T} forward oifname vmap @in_ports",
        f"add rule {T} forward iifname vmap @out_ports",
        f"add chain {T} output {{ type filter hook output priority filter; policy accept; }}",
        f"add rule {T} output oifname vmap @in_ports",
        f"add chain {T} input {{ type filter hook input priority filter; policy accept; }}",
        f"add rule {T} input iifname vmap @out_ports",
    ]
    assert firewall.table_script("phoenix_fw").endswith("\n")


RULES = (
    FirewallRule("in", "ACCEPT", "10.0.0.10", proto="tcp", port="22"),
    FirewallRule("out", "REJECT", dest="10.0.0.0/8"),
    FirewallRule("in", "DROP", proto="udp"),
)


def test_a_guests_chains_inbound_drop_outbound_accept_replies_both_ways() -> None:
    text = firewall.guest_script("phoenix_fw", 101, "veth101i0", RULES)
    assert text.endswith("\n")
    assert text.splitlines() == [
        f"add chain {T} in_101",
        f"flush chain {T} in_101",
        f"add chain {T} out_101",
        f"flush chain {T} out_101",
        f'add rule {T} in_101 counter comment "{firewall.marker(RULES)}"',
        f"add rule {T} in_101 ether type arp accept",
        f"add rule {T} out_101 ether type arp accept",
        f"add rule {T} in_101 ct state established,related accept",
        f"add rule {T} out_101 ct state established,related accept",
        f"add rule {T} in_101 ip saddr 10.0.0.10 tcp dport 22 accept",
        f"add rule {T} out_101 ip daddr 10.0.0.0/8 reject",
        f"add rule {T} in_101 meta l4proto udp drop",
        f"add rule {T} in_101 drop",
        f'add element {T} in_ports {{ "veth101i0" : jump in_101 }}',
        f'add element {T} out_ports {{ "veth101i0" : jump out_101 }}',
    ]


def test_without_bridge_conntrack_or_reject_replies_are_stateless_and_reject_drops() -> None:
    caps = firewall.NftCaps(conntrack=False, reject=False)
    lines = firewall.guest_script("phoenix_fw", 7, "veth7i0", RULES, caps).splitlines()
    for chain in ("in_7", "out_7"):
        for reply in (
            "tcp flags & (syn | ack) != syn accept",
            "udp sport { 53, 123 } accept",
            "icmp type { echo-reply, destination-unreachable, time-exceeded } accept",
        ):
            assert f"add rule {T} {chain} {reply}" in lines
    assert not any("ct state" in line for line in lines)
    assert f"add rule {T} out_7 ip daddr 10.0.0.0/8 drop" in lines
    assert firewall.NftCaps() == firewall.NftCaps(conntrack=True, reject=True)


def test_a_probe_is_a_throwaway_table_with_the_statement() -> None:
    assert firewall.probe_script("fw_probe", firewall.CT_PROBE) == (
        "add table bridge fw_probe\n"
        "add chain bridge fw_probe probe\n"
        "add rule bridge fw_probe probe ct state established,related accept\n"
    )
    assert firewall.REJECT_PROBE == "meta l4proto tcp reject"


def test_the_rules_hash_ignores_comments_and_nothing_else() -> None:
    rule = FirewallRule("in", "ACCEPT", "10.0.0.1", proto="tcp", port="22")
    noted = FirewallRule("in", "ACCEPT", "10.0.0.1", proto="tcp", port="22", comment="ssh")
    assert firewall.rules_hash((rule,)) == firewall.rules_hash((noted,))
    assert len(firewall.rules_hash((rule,))) == 16
    assert firewall.marker((rule,)) == f"phoenix-rules:{firewall.rules_hash((rule,))}"
    for other in (
        FirewallRule("out", "ACCEPT", "10.0.0.1", proto="tcp", port="22"),
        FirewallRule("in", "DROP", "10.0.0.1", proto="tcp", port="22"),
        FirewallRule("in", "ACCEPT", "10.0.0.1", proto="udp", port="22"),
        FirewallRule("in", "ACCEPT", "10.0.0.1", proto="tcp", port="23"),
        FirewallRule("in", "ACCEPT", dest="10.0.0.1", proto="tcp", port="22"),
    ):
        assert firewall.rules_hash((other,)) != firewall.rules_hash((rule,))
    assert firewall.rules_hash((rule, noted)) != firewall.rules_hash((rule,))


def _listing(*items: dict[str, object]) -> str:
    return json.dumps({"nftables": [{"table": {"family": "bridge", "name": "t"}}, *items]})


def _chain(name: str) -> dict[str, object]:
    return {"chain": {"family": "bridge", "table": "t", "name": name}}


def test_a_listing_gives_chains_markers_and_ports() -> None:
    state = firewall.parse_listing(
        _listing(
            _chain("forward"),
            _chain("in_101"),
            _chain("out_101"),
            _chain("out_7"),
            _chain("in_x"),
            _chain("other_5"),
            {"rule": {"chain": "in_101", "comment": "made by hand"}},
            {"rule": {"chain": "in_101", "comment": "phoenix-rules:abc"}},
            {"rule": {"chain": "in_102", "expr": []}},
            {"map": {"name": "in_ports", "elem": [["veth101i0", {}], "bare"]}},
            {"map": {"name": "out_ports", "elem": [["veth7i0", {}]]}},
            {"map": {"name": "elsewhere", "elem": [["x", {}]]}},
        )
    )
    assert state.exists
    assert state.guests() == {101, 7}
    assert state.applied_marker(101) == "phoenix-rules:abc"
    assert state.applied_marker(102) is None and state.applied_marker(7) is None
    assert state.in_ports == {"veth101i0", "bare"} and state.out_ports == {"veth7i0"}
    assert state.comments == {"in_101": ["made by hand", "phoenix-rules:abc"]}
    empty = firewall.parse_listing("")
    assert empty.exists and empty.chains == set() and empty.in_ports == set()
    assert not firewall.TableState().exists


def test_removal_deletes_only_what_exists() -> None:
    state = firewall.TableState(
        exists=True, chains={"in_101", "out_101", "in_7"}, in_ports={"v101"}, out_ports={"v7"}
    )
    assert firewall.remove_script("t", 101, "v101", state) == (
        'delete element bridge t in_ports { "v101" }\n'
        "delete chain bridge t in_101\n"
        "delete chain bridge t out_101\n"
    )
    assert firewall.remove_script("t", 7, "v7", state) == (
        'delete element bridge t out_ports { "v7" }\ndelete chain bridge t in_7\n'
    )
    assert firewall.remove_script("t", 8, "v8", state) == ""
    assert firewall.list_argv("t") == ["nft", "-j", "list", "table", "bridge", "t"]


def _guest_firewall(
    tmp_path: Path, runner: RecordedRunner, alive: set[int]
) -> firewall.GuestFirewall:
    ctx = LxcContext(tmp_path / "lxc", runner)
    return firewall.GuestFirewall(
        ctx, "t", tmp_path / "locks", lambda c: f"veth{c}i0", lambda c: c in alive
    )


@pytest.mark.parametrize(("conntrack", "reject"), [(True, True), (False, True), (True, False)])
def test_the_kernels_bridge_support_is_probed_once(
    tmp_path: Path, conntrack: bool, reject: bool
) -> None:
    runner = RecordedRunner()
    answers = iter([0 if conntrack else 1, 0 if reject else 1])
    runner.responders.append(
        lambda argv: (
            CommandResult(next(answers), "", "", argv) if argv[:3] == ("nft", "-c", "-f") else None
        )
    )
    fw = _guest_firewall(tmp_path, runner, set())
    assert fw.caps() == firewall.NftCaps(conntrack=conntrack, reject=reject)
    assert fw.caps() is fw.caps()
    probes = [str(i) for c, i in zip(runner.calls, runner.inputs, strict=True)]
    assert probes == [
        firewall.probe_script("t_probe", firewall.CT_PROBE),
        firewall.probe_script("t_probe", firewall.REJECT_PROBE),
    ]
    warned = fw.ctx.warnings
    assert (len(warned) == 1 and "bridge conntrack is not available" in warned[0]) is (
        not conntrack
    )
    assert all(kind == "observe" for kind, _ in fw.ctx.log.entries)


def test_a_failed_apply_is_an_error_naming_the_guest(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-c", "-f", "-"])
    runner.respond(["nft", "-j", "list"], _listing(_chain("forward")))
    runner.respond(["nft", "-f", "-"], "", 1, "Error: syntax error")
    fw = _guest_firewall(tmp_path, runner, {101})
    with pytest.raises(CommandFailed, match="applying the firewall of guest 101"):
        fw.apply(101, RULES)
    assert ("mutate", ("nft", "-f", "-")) in fw.ctx.log.entries
    assert (tmp_path / "locks" / ".t.lock").exists()


def test_removing_without_a_table_does_nothing(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list"], "", 1, "No such file or directory")
    _guest_firewall(tmp_path, runner, set()).remove(101)
    assert runner.calls == [("nft", "-j", "list", "table", "bridge", "t")]


def test_removing_a_guest_without_chains_keeps_a_table_others_use(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list"], _listing(_chain("in_7"), _chain("out_7")))
    _guest_firewall(tmp_path, runner, {7}).remove(101)
    assert runner.calls == [("nft", "-j", "list", "table", "bridge", "t")]


def test_a_failed_removal_is_an_error_naming_what_failed(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list"], _listing(_chain("in_101"), _chain("in_7")))
    runner.respond(["nft", "-f", "-"], "", 1, "Error: busy")
    with pytest.raises(CommandFailed, match="removing the firewall of guest 101"):
        _guest_firewall(tmp_path, runner, {7}).remove(101)
    runner.respond(["nft", "-f", "-"])
    runner.respond(["nft", "delete", "table"], "", 1, "Error: busy")
    with pytest.raises(CommandFailed, match="removing the firewall table t"):
        _guest_firewall(tmp_path, runner, set()).remove(101)

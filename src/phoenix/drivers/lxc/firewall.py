"""Per-guest firewall with nftables in a `bridge` table of Phoenix's own.

Guests on one bridge talk to each other without passing the host's IP stack, so the rules
live in the bridge family (its `forward` hook sees guest-to-guest frames without
`br_netfilter`; `output`/`input` see host-to-guest and guest-to-host). Each guest gets two
chains, `in_<ctid>` and `out_<ctid>`, reached through verdict maps keyed by the guest's
host-side veth name, so adding or removing one guest never touches another's rules.

Semantics follow Proxmox's guest firewall: inbound default DROP, outbound default ACCEPT,
replies to established connections always allowed, ARP always allowed (or nothing works).
A comment with a hash of the rules lets `observe` tell "applied as recorded" from "missing"
(e.g. after a host reboot) without parsing rules back.

The scripts and the listing parser are pure; `GuestFirewall` runs them through the driver's
runner (one table shared by guests converging in parallel, under a file lock).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from phoenix.digits import is_digits
from phoenix.drivers.base import FirewallRule
from phoenix.drivers.lxc.context import LxcContext
from phoenix.files import parse_json

DEFAULT_TABLE = "phoenix_fw"
_ACTIONS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject"}
# Without bridge conntrack (nf_conntrack_bridge), replies are recognised statelessly: any
# TCP segment that is not a bare SYN, DNS/NTP answers, and ICMP errors and echo replies.
_STATELESS_REPLIES = (
    "tcp flags & (syn | ack) != syn accept",
    "udp sport { 53, 123 } accept",
    "icmp type { echo-reply, destination-unreachable, time-exceeded } accept",
)


@dataclass(frozen=True)
class NftCaps:
    """What the kernel's bridge family supports (custom kernels may lack modules)."""

    conntrack: bool = True
    reject: bool = True


def probe_script(table: str, statement: str) -> str:
    """A throwaway transaction for `nft -c -f -` testing one statement in the bridge family."""
    t = f"bridge {table}"
    return f"add table {t}\nadd chain {t} probe\nadd rule {t} probe {statement}\n"


CT_PROBE = "ct state established,related accept"
REJECT_PROBE = "meta l4proto tcp reject"


def rules_hash(rules: tuple[FirewallRule, ...]) -> str:
    """Hash of what the nft rules enforce (a comment changes nothing in nft)."""
    enforced = [{k: v for k, v in asdict(r).items() if k != "comment"} for r in rules]
    data = json.dumps(enforced, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def marker(rules: tuple[FirewallRule, ...]) -> str:
    return f"phoenix-rules:{rules_hash(rules)}"


def table_script(table: str) -> str:
    """The table, its verdict maps and base chains (only run when the table is missing)."""
    t = f"bridge {table}"
    lines = [
        f"add table {t}",
        f"add map {t} in_ports {{ type ifname : verdict; }}",
        f"add map {t} out_ports {{ type ifname : verdict; }}",
    ]
    for hook, maps in (
        ("forward", ("oifname vmap @in_ports", "iifname vmap @out_ports")),
        ("output", ("oifname vmap @in_ports",)),
        ("input", ("iifname vmap @out_ports",)),
    ):
        lines.append(
            f"add chain {t} {hook} {{ type filter hook {hook} priority filter; policy accept; }}"
        )
        lines += [f"add rule {t} {hook} {m}" for m in maps]
    return "\n".join(lines) + "\n"


def port_expr(port: str) -> str:
    """Proxmox port spec (`80`, `8000:8010`, `80,443`) -> nft (`80`, `8000-8010`, `{ 80, 443 }`)."""
    items = [p.replace(":", "-") for p in port.split(",")]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def rule_expr(rule: FirewallRule, caps: NftCaps = NftCaps()) -> str:
    parts: list[str] = []
    if rule.source:
        parts.append(f"ip saddr {rule.source}")
    if rule.dest:
        parts.append(f"ip daddr {rule.dest}")
    if rule.proto and rule.port:
        parts.append(f"{rule.proto} dport {port_expr(rule.port)}")
    elif rule.proto:
        parts.append(f"meta l4proto {rule.proto}")
    action = _ACTIONS[rule.action]
    parts.append("drop" if action == "reject" and not caps.reject else action)
    return " ".join(parts)


def guest_script(
    table: str,
    ctid: int,
    veth: str,
    rules: tuple[FirewallRule, ...],
    caps: NftCaps = NftCaps(),
) -> str:
    """(Re)write one guest's chains and hook them to its veth. Idempotent as a whole.

    Without bridge REJECT support a REJECT rule drops (the sender times out instead of
    being refused); without bridge conntrack replies are matched statelessly."""
    t = f"bridge {table}"
    cin, cout = f"in_{ctid}", f"out_{ctid}"
    lines = [
        f"add chain {t} {cin}",
        f"flush chain {t} {cin}",
        f"add chain {t} {cout}",
        f"flush chain {t} {cout}",
        f'add rule {t} {cin} counter comment "{marker(rules)}"',
        f"add rule {t} {cin} ether type arp accept",
        f"add rule {t} {cout} ether type arp accept",
    ]
    replies = (CT_PROBE,) if caps.conntrack else _STATELESS_REPLIES
    for chain in (cin, cout):
        lines += [f"add rule {t} {chain} {r}" for r in replies]
    for rule in rules:
        chain = cin if rule.direction == "in" else cout
        lines.append(f"add rule {t} {chain} {rule_expr(rule, caps)}")
    lines += [
        f"add rule {t} {cin} drop",
        f'add element {t} in_ports {{ "{veth}" : jump {cin} }}',
        f'add element {t} out_ports {{ "{veth}" : jump {cout} }}',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class TableState:
    """What `nft -j list table` shows of Phoenix's firewall table."""

    exists: bool = False
    chains: set[str] = field(default_factory=set)
    comments: dict[str, list[str]] = field(default_factory=dict)
    in_ports: set[str] = field(default_factory=set)
    out_ports: set[str] = field(default_factory=set)

    def applied_marker(self, ctid: int) -> str | None:
        for comment in self.comments.get(f"in_{ctid}", []):
            if comment.startswith("phoenix-rules:"):
                return comment
        return None

    def guests(self) -> set[int]:
        """Guests with chains (`in_<ctid>`, `out_<ctid>`) in the table."""
        return {
            int(name.partition("_")[2])
            for name in self.chains
            if name.partition("_")[0] in ("in", "out") and is_digits(name.partition("_")[2])
        }


def parse_listing(text: str) -> TableState:
    """Parse `nft -j list table bridge <table>` output (a ParseError when it is not JSON)."""
    state = TableState(exists=True)
    data: dict[str, Any] = parse_json(text or "{}", "nft -j list table bridge")
    for item in data.get("nftables", []):
        if "chain" in item:
            state.chains.add(item["chain"]["name"])
        elif "rule" in item:
            rule = item["rule"]
            if "comment" in rule:
                state.comments.setdefault(rule["chain"], []).append(rule["comment"])
        elif "map" in item:
            m = item["map"]
            keys = {_elem_key(e) for e in m.get("elem", [])}
            if m["name"] == "in_ports":
                state.in_ports = keys
            elif m["name"] == "out_ports":
                state.out_ports = keys
    return state


def _elem_key(elem: Any) -> str:
    # nft -j shows map elements as [key, verdict] pairs.
    if isinstance(elem, list) and elem:
        return str(elem[0])
    return str(elem)


def remove_script(table: str, ctid: int, veth: str, state: TableState) -> str:
    """Remove one guest's hooks and chains (only the parts that exist)."""
    t = f"bridge {table}"
    lines: list[str] = []
    if veth in state.in_ports:
        lines.append(f'delete element {t} in_ports {{ "{veth}" }}')
    if veth in state.out_ports:
        lines.append(f'delete element {t} out_ports {{ "{veth}" }}')
    for chain in (f"in_{ctid}", f"out_{ctid}"):
        if chain in state.chains:
            lines.append(f"delete chain {t} {chain}")
    return "\n".join(lines) + "\n" if lines else ""


def list_argv(table: str) -> list[str]:
    return ["nft", "-j", "list", "table", "bridge", table]


class GuestFirewall:
    """Apply and remove guests' chains in one bridge table through the driver's runner.

    `veth` names a guest's host-side NIC; `exists` says whether a guest still exists (the
    chains of guests removed behind Phoenix's back are dropped with the next removal)."""

    def __init__(
        self,
        ctx: LxcContext,
        table: str,
        lock_dir: Path,
        veth: Callable[[int], str],
        exists: Callable[[int], bool],
    ) -> None:
        self.ctx = ctx
        self.table = table
        self.lock_dir = lock_dir
        self.veth = veth
        self.exists = exists
        self._caps: NftCaps | None = None
        self._caps_lock = threading.Lock()

    def state(self) -> TableState:
        res = self.ctx.run("observe", list_argv(self.table))
        return parse_listing(res.stdout) if res.ok else TableState()

    def caps(self) -> NftCaps:
        """Probe (once) whether the bridge family has conntrack and REJECT on this kernel."""
        with self._caps_lock:  # guests converge in parallel: probe and warn only once
            if self._caps is None:
                self._caps = self._probe()
            return self._caps

    def _probe(self) -> NftCaps:
        probe = f"{self.table}_probe"
        ok = []
        for statement in (CT_PROBE, REJECT_PROBE):
            res = self.ctx.run(
                "observe", ["nft", "-c", "-f", "-"], input=probe_script(probe, statement)
            )
            ok.append(res.ok)
        if not ok[0]:
            self.ctx.warn(
                "bridge conntrack is not available in this kernel: the guest firewall "
                "recognises replies statelessly (TCP non-SYN, DNS/NTP, ICMP errors)"
            )
        return NftCaps(conntrack=ok[0], reject=ok[1])

    def _lock(self) -> FileLock:
        """Guests converge in parallel; creating the shared table must happen once."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.lock_dir / f".{self.table}.lock"), timeout=120)

    def apply(self, ctid: int, rules: tuple[FirewallRule, ...]) -> None:
        caps = self.caps()
        with self._lock():
            if not self.state().exists:
                self.ctx.run("mutate", ["nft", "-f", "-"], input=table_script(self.table))
            script = guest_script(self.table, ctid, self.veth(ctid), rules, caps)
            self.ctx.run("mutate", ["nft", "-f", "-"], input=script).check(
                f"applying the firewall of guest {ctid}"
            )

    def remove(self, ctid: int) -> None:
        """Remove the guest's chains, and those of guests that vanished without a delete
        (no config left); the table goes with the last guest's chains."""
        with self._lock():
            state = self.state()
            if not state.exists:
                return
            guests = state.guests()
            gone = {ctid} | {c for c in guests if not self.exists(c)}
            script = "".join(
                remove_script(self.table, c, self.veth(c), state) for c in sorted(gone)
            )
            if script:
                self.ctx.run("mutate", ["nft", "-f", "-"], input=script).check(
                    f"removing the firewall of guest {ctid}"
                )
            if not guests - gone:
                self.ctx.run("mutate", ["nft", "delete", "table", "bridge", self.table]).check(
                    f"removing the firewall table {self.table} (no guest uses it)"
                )

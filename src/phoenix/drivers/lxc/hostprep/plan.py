"""What `phoenix setup` must change, as a pure function of the host's facts.

`plan(facts, bridges, record, nat_table)` returns the steps in order (none when the host is
ready) or raises SetupError for what Phoenix must not fix by itself: missing packages, an
interface it did not create, a subnet that overlaps a route of the host. Steps are data;
`HostSetup.apply` carries them out.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from phoenix.drivers.lxc.hostprep.errors import SetupError
from phoenix.drivers.lxc.hostprep.facts import BridgeSpec, HostFacts, routes_overlapping
from phoenix.drivers.lxc.hostprep.record import Record


@dataclass(frozen=True)
class CreateBridge:
    bridge: BridgeSpec

    @property
    def describe(self) -> str:
        return f"create bridge {self.bridge.name}"


@dataclass(frozen=True)
class AddAddress:
    bridge: BridgeSpec

    @property
    def describe(self) -> str:
        return f"add address {self.bridge.address} to {self.bridge.name} and bring it up"


@dataclass(frozen=True)
class EnableForwarding:
    was: str  # the value before, restored by teardown when it was "0"

    @property
    def describe(self) -> str:
        return "enable IPv4 forwarding (net.ipv4.ip_forward=1)"


@dataclass(frozen=True)
class Masquerade:
    table: str
    subnets: tuple[ipaddress.IPv4Network, ...]

    @property
    def describe(self) -> str:
        shown = ", ".join(str(s) for s in self.subnets)
        return f"masquerade {shown} in nft table ip {self.table}"


@dataclass(frozen=True)
class AddSubids:
    lines: tuple[tuple[Path, str], ...]  # (file, line)

    @property
    def describe(self) -> str:
        by_line: dict[str, list[str]] = {}
        for path, line in self.lines:
            by_line.setdefault(line, []).append(str(path))
        return "add " + ", ".join(f"{line} to {' and '.join(p)}" for line, p in by_line.items())


Step = CreateBridge | AddAddress | EnableForwarding | Masquerade | AddSubids


def nat_marker(subnets: Iterable[ipaddress.IPv4Network]) -> str:
    text = ",".join(sorted(str(s) for s in subnets))
    return "phoenix-nat:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def nat_script(table: str, subnets: Sequence[ipaddress.IPv4Network]) -> str:
    """Replace Phoenix's NAT table atomically: masquerade guest traffic leaving its subnet."""
    t = f"ip {table}"
    lines = [
        f"add table {t}",
        f"delete table {t}",
        f"add table {t}",
        f"add chain {t} postrouting "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
    ]
    mark = nat_marker(subnets)
    for net in sorted(subnets, key=str):
        lines.append(
            f'add rule {t} postrouting ip saddr {net} ip daddr != {net} masquerade comment "{mark}"'
        )
    return "\n".join(lines) + "\n"


def plan(
    facts: HostFacts, bridges: Sequence[BridgeSpec], record: Record, nat_table: str
) -> list[Step]:
    """Every change needed, in order (empty when the host is ready)."""
    if facts.missing_packages:
        missing = " ".join(facts.missing_packages)
        raise SetupError(
            f"missing packages: {missing}; install them with: apt-get install {missing}"
        )
    steps: list[Step] = []
    for bridge in bridges:
        steps += _bridge_steps(bridge, facts, record)
    if bridges and facts.ip_forward != "1":
        steps.append(EnableForwarding(facts.ip_forward))
    if bridges:
        subnets = tuple(b.subnet for b in bridges)
        if facts.nat_comments is None or nat_marker(subnets) not in facts.nat_comments:
            steps.append(Masquerade(nat_table, subnets))
    if facts.subids_lacking:
        steps.append(AddSubids(facts.subids_lacking))
    return steps


def _bridge_steps(bridge: BridgeSpec, facts: HostFacts, record: Record) -> list[Step]:
    addrs = facts.addresses.get(bridge.name)
    want = str(bridge.address)
    if addrs is not None and want in addrs:
        return []
    if addrs is not None and bridge.name not in record.bridges:
        raise SetupError(
            f"interface {bridge.name} exists without address {want}; Phoenix does not "
            "change interfaces it did not create (add the address yourself or pick "
            "another bridge)"
        )
    overlaps = routes_overlapping(facts.routes_json, bridge.subnet, bridge.name)
    if overlaps:
        raise SetupError(
            f"refusing to create bridge {bridge.name} for {bridge.subnet}: it overlaps "
            f"existing route(s) {', '.join(overlaps)}"
        )
    steps: list[Step] = [] if addrs is not None else [CreateBridge(bridge)]
    return [*steps, AddAddress(bridge)]

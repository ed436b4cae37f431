"""What host preparation needs to know of the host, read through the runner.

`read_facts` asks the host (dpkg, ip, sysctl, nft) and parses the answers into `HostFacts`;
the plan is a pure function of those facts, so its tests feed recorded facts instead of a
host. The subuid/subgid files are read in-process: Phoenix edits them in-process too, under
a lock (`subids`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.drivers.lxc.hostprep.subids import IdRanges, SubIds
from phoenix.files import parse_json
from phoenix.runners.base import CommandResult

# lxc-templates ships the config includes every guest config names (debian.common.conf).
REQUIRED_PACKAGES = ("lxc", "lxc-templates", "debootstrap", "nftables", "uidmap", "rsync")
DEFAULT_NAT_TABLE = "phoenix_nat"

Observe = Callable[[Sequence[str]], CommandResult]


@dataclass(frozen=True)
class BridgeSpec:
    """A bridge guests sit on, with the host's address on it (the guests' gateway)."""

    name: str
    address: ipaddress.IPv4Interface

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.address.network


@dataclass(frozen=True)
class HostFacts:
    """The host as `phoenix setup` found it.

    `addresses`: each bridge's IPv4 addresses (CIDR), None when no such interface;
    `routes_json`: `ip -j -4 route show table all`; `nat_comments`: the rule comments of
    Phoenix's NAT table (None: no table); `subids_lacking`: the (file, line) pairs
    /etc/subuid and /etc/subgid lack (Phoenix's range, the guests' pass-throughs). When
    packages are missing nothing else is read (the tools may be what is missing)."""

    missing_packages: tuple[str, ...] = ()
    addresses: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    routes_json: str = "[]"
    ip_forward: str = ""
    nat_comments: frozenset[str] | None = None
    subids_lacking: tuple[tuple[Path, str], ...] = ()


def inet_addresses(addr_json: str) -> tuple[str, ...]:
    """IPv4 addresses (CIDR) in `ip -j addr show` output."""
    return tuple(
        f"{a['local']}/{a['prefixlen']}"
        for link in parse_json(addr_json or "[]", "ip -j addr show")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    )


def routes_overlapping(
    routes_json: str, subnet: ipaddress.IPv4Network, ignore_dev: str
) -> list[str]:
    """Routes (from `ip -j route`) whose destination overlaps `subnet`, except on `ignore_dev`."""
    out: list[str] = []
    for route in parse_json(routes_json or "[]", "ip -j route show"):
        dst = route.get("dst", "")
        if dst == "default" or route.get("dev") == ignore_dev:
            continue
        try:
            net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if net.overlaps(subnet):
            out.append(f"{dst} dev {route.get('dev', '?')}")
    return out


def nat_comments(listing_json: str) -> set[str]:
    """The rule comments in `nft -j list table ip <table>` output."""
    comments: set[str] = set()
    for item in parse_json(listing_json, "nft -j list table").get("nftables", []):
        rule = item.get("rule")
        if rule and "comment" in rule:
            comments.add(rule["comment"])
    return comments


def missing_packages(observe: Observe, packages: Sequence[str]) -> tuple[str, ...]:
    missing = []
    for pkg in packages:
        res = observe(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg])
        if not res.ok or not res.stdout.startswith("ii"):
            missing.append(pkg)
    return tuple(missing)


def read_facts(
    observe: Observe,
    bridges: Sequence[BridgeSpec],
    *,
    packages: Sequence[str],
    nat_table: str,
    subids: SubIds,
    subid_ranges: IdRanges = (),
) -> HostFacts:
    """Ask the host what the plan for `bridges` needs (`observe` runs and logs one read)."""
    missing = missing_packages(observe, packages)
    if missing:
        return HostFacts(missing_packages=missing)
    routes = observe(["ip", "-j", "-4", "route", "show", "table", "all"])
    addresses: dict[str, tuple[str, ...] | None] = {}
    for bridge in bridges:
        res = observe(["ip", "-j", "addr", "show", "dev", bridge.name])
        addresses[bridge.name] = inet_addresses(res.stdout) if res.ok else None
    forward, comments = "", None
    if bridges:
        forward = observe(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
        nat = observe(["nft", "-j", "list", "table", "ip", nat_table])
        comments = frozenset(nat_comments(nat.stdout)) if nat.ok else None
    return HostFacts(
        addresses=addresses,
        routes_json=routes.stdout,
        ip_forward=forward,
        nat_comments=comments,
        subids_lacking=tuple(subids.missing(subid_ranges)),
    )

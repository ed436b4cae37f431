"""`phoenix doctor` for the LXC driver: is this host ready to run the inventory's guests,
and if not, what to fix.

The checks read facts (packages, the LXC config includes every guest config names, kernel
features, subuid/subgid, the inventory's bridges, forwarding and NAT, templates) and never
change anything; `phoenix setup` fixes what Phoenix may fix itself.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.drivers.base import Check
from phoenix.drivers.lxc import templates
from phoenix.drivers.lxc.cgroups import detect
from phoenix.drivers.lxc.hostprep import DEFAULT_NAT_TABLE, REQUIRED_PACKAGES, SetupError
from phoenix.drivers.lxc.hostprep.facts import BridgeSpec, nat_comments
from phoenix.drivers.lxc.hostprep.plan import nat_marker
from phoenix.drivers.lxc.hostprep.subids import SubIds
from phoenix.files import parse_json
from phoenix.host.setup import bridges_from_inventory, id_ranges_from_inventory
from phoenix.inventory.loader import Inventory
from phoenix.runners.base import Runner

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
LXC_CONFIG_DIR = Path("/usr/share/lxc/config")
INCLUDES = ("debian.common.conf", "debian.userns.conf", "nesting.conf")
# Open files a guest's services may have: the gateway's nginx sets worker_rlimit_nofile to
# this (a unit test ties the two). A guest's hard limit is lxc-start's, which is Phoenix's:
# a user namespace cannot raise it, and systemd in the guest clamps LimitNOFILE to it.
OPEN_FILES_NEEDED = 16384


@dataclass(frozen=True)
class HostFacts:
    """Where the checks look (tests point these at files of their own)."""

    lxc_config_dir: Path = LXC_CONFIG_DIR
    filesystems: Path = Path("/proc/filesystems")
    ip_forward: Path = IP_FORWARD
    cgroup_root: Path = Path("/sys/fs/cgroup")
    subids: SubIds = field(default_factory=SubIds)
    open_files_hard: int | None = None  # None: this process's own hard RLIMIT_NOFILE


def _packages(runner: Runner) -> Check:
    missing = []
    for pkg in REQUIRED_PACKAGES:
        res = runner.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg])
        if not res.ok or not res.stdout.startswith("ii"):
            missing.append(pkg)
    if missing:
        return Check(
            "packages",
            False,
            f"missing: {' '.join(missing)}",
            f"apt-get install --no-install-recommends {' '.join(missing)} "
            "(or run scripts/install-deps.sh)",
        )
    return Check("packages", True, ", ".join(REQUIRED_PACKAGES))


def _includes(facts: HostFacts) -> Check:
    missing = [n for n in INCLUDES if not (facts.lxc_config_dir / n).is_file()]
    if missing:
        return Check(
            "lxc config includes",
            False,
            f"{', '.join(missing)} not in {facts.lxc_config_dir}",
            "apt-get install --no-install-recommends lxc-templates",
        )
    return Check("lxc config includes", True, f"{', '.join(INCLUDES)} present")


def _open_files(facts: HostFacts) -> Check:
    hard = facts.open_files_hard
    if hard is None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= OPEN_FILES_NEEDED:
        shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        return Check("open files", True, f"guests may open {shown} files")
    return Check(
        "open files",
        False,
        f"the hard open-file limit guests inherit from Phoenix is {hard}; the gateway's "
        f"nginx needs {OPEN_FILES_NEEDED} per worker (idle connections would exhaust it)",
        "raise it where Phoenix runs (ulimit -Hn 524288 in the shell, LimitNOFILE= for a "
        "service), then restart the guests",
    )


def _kernel(facts: HostFacts) -> list[Check]:
    text = facts.filesystems.read_text() if facts.filesystems.is_file() else ""
    overlay = any(line.split()[-1:] == ["overlay"] for line in text.splitlines())
    cgroup = detect(facts.cgroup_root)
    return [
        Check(
            "overlayfs",
            overlay,
            "available (linked clones)" if overlay else "not in /proc/filesystems",
            'modprobe overlay, or set phoenix.lxc_clone to "full"',
        ),
        Check("cgroups", True, f"cgroup v{cgroup.version}"),
    ]


def _subids(facts: HostFacts, inventory: Inventory) -> Check:
    lacking = facts.subids.missing(id_ranges_from_inventory(inventory))
    if lacking:
        shown = ", ".join(f"{line} in {path}" for path, line in lacking)
        return Check("subuid/subgid", False, f"root is not given {shown}", "phoenix setup")
    return Check("subuid/subgid", True, "root is given every id range the guests use")


def _bridge_check(bridge: BridgeSpec, addrs: list[str] | None) -> Check:
    """The bridge has the address the inventory's guests use as their gateway. A bridge
    that exists with other addresses is not Phoenix's to change: say what it has, what the
    guests expect, and the two ways to make them agree."""
    name, want = f"bridge {bridge.name}", str(bridge.address)
    if addrs is None:
        return Check(name, False, f"{bridge.name} is missing", "phoenix setup")
    if want in addrs:
        return Check(name, True, f"{bridge.name} has {want}")
    has = ", ".join(addrs) or "no IPv4 address"
    return Check(
        name,
        False,
        f"{bridge.name} has {has}, but the inventory's guests on it use {bridge.address.ip} "
        f"as their gateway (network_config.gw, {want}): they would have no way out",
        f"give those guests addresses and gw in the bridge's subnet, add {want} to "
        f"{bridge.name} yourself, or name another bridge (phoenix setup creates it)"
        if addrs
        else "phoenix setup",
    )


def _network(runner: Runner, inventory: Inventory, facts: HostFacts) -> list[Check]:
    try:
        bridges = bridges_from_inventory(inventory)
    except SetupError as exc:
        return [Check("bridges", False, str(exc), "fix network_config in the inventory")]
    checks = []
    for bridge in bridges:
        res = runner.run(["ip", "-j", "addr", "show", "dev", bridge.name])
        addrs = [
            f"{a['local']}/{a['prefixlen']}"
            for link in (parse_json(res.stdout or "[]", "ip -j addr") if res.ok else [])
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        ]
        checks.append(_bridge_check(bridge, addrs if res.ok else None))
    if not bridges:
        return checks
    forward = facts.ip_forward.read_text().strip() if facts.ip_forward.is_file() else "?"
    checks.append(
        Check("ip forwarding", forward == "1", f"net.ipv4.ip_forward={forward}", "phoenix setup")
    )
    res = runner.run(["nft", "-j", "list", "table", "ip", DEFAULT_NAT_TABLE])
    subnets = [b.subnet for b in bridges]
    nat_ok = res.ok and nat_marker(subnets) in nat_comments(res.stdout)
    checks.append(
        Check(
            "NAT",
            nat_ok,
            f"guest subnets masqueraded in nft table ip {DEFAULT_NAT_TABLE}"
            if nat_ok
            else f"no masquerade for {', '.join(str(s) for s in subnets)}",
            "phoenix setup",
        )
    )
    return checks


def _templates(inventory: Inventory, cache: Path) -> list[Check]:
    checks = []
    for template in sorted({g.template for g in inventory.guests.values() if g.template}):
        suite = templates.debootstrap_suite(template) if ":" in template else None
        if suite is not None:
            built = templates.cached_tarball(cache, suite, "amd64").is_file()
            checks.append(
                Check(
                    f"template {template}",
                    True,
                    "cached" if built else f"built on first use into {cache} (about a minute)",
                )
            )
            continue
        found = Path(template).is_file() or (cache / template).is_file()
        checks.append(
            Check(
                f"template {template}",
                found,
                "found" if found else f"not found (looked at {template} and in {cache})",
                f"put the rootfs tarball in {cache}, or use debootstrap:bookworm",
            )
        )
    return checks


def run_lxc_doctor(
    runner: Runner, inventory: Inventory, facts: HostFacts | None = None
) -> list[Check]:
    """Every check for the LXC driver, in the order a person would fix them."""
    facts = facts or HostFacts()
    cache = Path(inventory.hypervisor.phoenix.template_cache)
    steps: list[Callable[[], list[Check]]] = [
        lambda: [_packages(runner)],
        lambda: [_includes(facts)],
        lambda: _kernel(facts),
        lambda: [_open_files(facts)],
        lambda: [_subids(facts, inventory)],
        lambda: _network(runner, inventory, facts),
        lambda: _templates(inventory, cache),
    ]
    return [check for step in steps for check in step()]

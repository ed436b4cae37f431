"""`phoenix setup`: prepare a plain Linux host for the LXC driver, idempotently.

For the bridges the inventory's guests sit on: create each missing bridge with the guests'
gateway as the host's address, enable IPv4 forwarding, masquerade the guest subnets in an
nft table of Phoenix's own (never the host's ruleset), and delegate the unprivileged id
range to root in /etc/subuid and /etc/subgid. Whatever Phoenix creates is recorded in its
state dir (the subid lines in a host-wide ledger, as several labs may share them) so
`teardown` removes exactly that and nothing else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from phoenix.drivers.base import CommandLog
from phoenix.errors import PhoenixError
from phoenix.host.subids import DEFAULT_LEDGER, LINE, SUBID_FILES, SubIds
from phoenix.inventory.loader import Inventory
from phoenix.runners.base import CommandResult, Runner

# lxc-templates ships the config includes every guest config names (debian.common.conf).
REQUIRED_PACKAGES = ("lxc", "lxc-templates", "debootstrap", "nftables", "uidmap", "rsync")
DEFAULT_NAT_TABLE = "phoenix_nat"
RECORD_FILE = "host-setup.json"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class SetupError(PhoenixError):
    """The host cannot be prepared as asked (missing packages, overlapping subnet...)."""


@dataclass(frozen=True)
class BridgeSpec:
    """A bridge guests sit on, with the host's address on it (the guests' gateway)."""

    name: str
    address: ipaddress.IPv4Interface

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.address.network


def bridges_from_inventory(inventory: Inventory) -> list[BridgeSpec]:
    """One BridgeSpec per bridge named by a guest; every guest on it must agree on gw/prefix."""
    found: dict[str, BridgeSpec] = {}
    for ctid, guest in sorted(inventory.guests.items()):
        nc = guest.network_config
        if nc is None or nc.interface is None:  # DHCP: the bridge's address is not ours to set
            continue
        if nc.gw is None:
            raise SetupError(
                f"guest {ctid}: bridge {nc.bridge} needs a gateway (network_config.gw)"
            )
        spec = BridgeSpec(
            nc.bridge, ipaddress.IPv4Interface(f"{nc.gw}/{nc.interface.network.prefixlen}")
        )
        if spec.address.network != nc.interface.network:
            raise SetupError(f"guest {ctid}: gateway {nc.gw} is outside {nc.interface.network}")
        old = found.setdefault(nc.bridge, spec)
        if old != spec:
            raise SetupError(
                f"guests disagree about bridge {nc.bridge}: {old.address} vs {spec.address} "
                f"(guest {ctid})"
            )
    return list(found.values())


@dataclass(frozen=True)
class Step:
    """One change `setup` makes; `describe` is what `--dry-run` prints."""

    describe: str
    run: Callable[[], None]


@dataclass
class Record:
    """What Phoenix created on this host (so teardown removes only that)."""

    bridges: list[str] = field(default_factory=list)
    nat_tables: list[str] = field(default_factory=list)
    ip_forward_was: str | None = None
    # Older Phoenix kept the subid lines it added here; they now live in the host ledger.
    subid_added: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Record:
        if not path.is_file():
            return cls()
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


def routes_overlapping(
    routes_json: str, subnet: ipaddress.IPv4Network, ignore_dev: str
) -> list[str]:
    """Routes (from `ip -j route`) whose destination overlaps `subnet`, except on `ignore_dev`."""
    out: list[str] = []
    for route in json.loads(routes_json or "[]"):
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


def nat_comments(listing_json: str) -> set[str]:
    comments: set[str] = set()
    for item in json.loads(listing_json).get("nftables", []):
        rule = item.get("rule")
        if rule and "comment" in rule:
            comments.add(rule["comment"])
    return comments


class HostSetup:
    """Plans and applies host preparation; every command goes through the runner."""

    def __init__(
        self,
        runner: Runner,
        state_dir: Path,
        *,
        nat_table: str = DEFAULT_NAT_TABLE,
        fw_table: str = "phoenix_fw",
        subid_files: tuple[Path, ...] = SUBID_FILES,
        subid_ledger: Path = DEFAULT_LEDGER,
        ip_forward: Path = IP_FORWARD,
        packages: Sequence[str] = REQUIRED_PACKAGES,
    ) -> None:
        if not nat_table.startswith("phoenix"):
            raise ValueError("Phoenix's nft tables are named phoenix*")
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.nat_table = nat_table
        self.fw_table = fw_table
        self.subids = SubIds(subid_files, subid_ledger)
        self.ip_forward = ip_forward
        self.packages = tuple(packages)
        self.log = CommandLog()

    @property
    def record_path(self) -> Path:
        return self.state_dir / RECORD_FILE

    def _run(self, kind: str, argv: Sequence[str], input: str | None = None) -> CommandResult:
        self.log.add(kind, argv)
        return self.runner.run(argv, input=input)

    def _record(self, update: Callable[[Record], None]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.state_dir / (RECORD_FILE + ".lock")), timeout=60):
            record = Record.load(self.record_path)
            update(record)
            record.save(self.record_path)

    # ---- checks ---------------------------------------------------------------------------

    def missing_packages(self) -> list[str]:
        missing = []
        for pkg in self.packages:
            res = self._run("observe", ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg])
            if not res.ok or not res.stdout.startswith("ii"):
                missing.append(pkg)
        return missing

    def _bridge_addresses(self, name: str) -> list[str] | None:
        """Addresses on interface `name` (None: it does not exist)."""
        res = self._run("observe", ["ip", "-j", "addr", "show", "dev", name])
        if not res.ok:
            return None
        data = json.loads(res.stdout or "[]")
        return [
            f"{a['local']}/{a['prefixlen']}"
            for link in data
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        ]

    # ---- plan -----------------------------------------------------------------------------

    def plan(self, bridges: Sequence[BridgeSpec]) -> list[Step]:
        """Every change needed, in order (empty when the host is ready). Raises SetupError
        for what Phoenix must not fix by itself."""
        missing = self.missing_packages()
        if missing:
            raise SetupError(
                "missing packages: "
                + " ".join(missing)
                + f"; install them with: apt-get install {' '.join(missing)}"
            )
        steps: list[Step] = []
        record = Record.load(self.record_path)
        routes = self._run("observe", ["ip", "-j", "-4", "route", "show", "table", "all"])
        for bridge in bridges:
            steps += self._bridge_steps(bridge, routes.stdout, record)
        if bridges and self.ip_forward.read_text().strip() != "1":
            steps.append(Step("enable IPv4 forwarding (net.ipv4.ip_forward=1)", self._forward_on))
        if bridges:
            steps += self._nat_steps([b.subnet for b in bridges])
        lacking = self.subids.missing()
        if lacking:
            where = " and ".join(str(p) for p in lacking)
            steps.append(Step(f"add {LINE} to {where}", self._add_subids))
        return steps

    def _bridge_steps(self, bridge: BridgeSpec, routes_json: str, record: Record) -> list[Step]:
        addrs = self._bridge_addresses(bridge.name)
        want = str(bridge.address)
        if addrs is not None and want in addrs:
            return []
        if addrs is not None and bridge.name not in record.bridges:
            raise SetupError(
                f"interface {bridge.name} exists without address {want}; Phoenix does not "
                "change interfaces it did not create (add the address yourself or pick "
                "another bridge)"
            )
        overlaps = routes_overlapping(routes_json, bridge.subnet, bridge.name)
        if overlaps:
            raise SetupError(
                f"refusing to create bridge {bridge.name} for {bridge.subnet}: it overlaps "
                f"existing route(s) {', '.join(overlaps)}"
            )
        steps: list[Step] = []
        if addrs is None:
            steps.append(Step(f"create bridge {bridge.name}", lambda: self._create_bridge(bridge)))
        steps.append(
            Step(
                f"add address {want} to {bridge.name} and bring it up",
                lambda: self._address(bridge),
            )
        )
        return steps

    def _nat_steps(self, subnets: list[ipaddress.IPv4Network]) -> list[Step]:
        res = self._run("observe", ["nft", "-j", "list", "table", "ip", self.nat_table])
        if res.ok and nat_marker(subnets) in nat_comments(res.stdout):
            return []
        shown = ", ".join(str(s) for s in subnets)
        return [
            Step(f"masquerade {shown} in nft table ip {self.nat_table}", lambda: self._nat(subnets))
        ]

    # ---- actions --------------------------------------------------------------------------

    def _create_bridge(self, bridge: BridgeSpec) -> None:
        self._record(
            lambda r: r.bridges.append(bridge.name) if bridge.name not in r.bridges else None
        )
        self._run("mutate", ["ip", "link", "add", "name", bridge.name, "type", "bridge"]).check(
            f"creating bridge {bridge.name}"
        )

    def _address(self, bridge: BridgeSpec) -> None:
        self._run("mutate", ["ip", "addr", "add", str(bridge.address), "dev", bridge.name]).check(
            f"adding {bridge.address} to {bridge.name}"
        )
        self._run("mutate", ["ip", "link", "set", bridge.name, "up"]).check(
            f"bringing {bridge.name} up"
        )

    def _forward_on(self) -> None:
        was = self.ip_forward.read_text().strip()

        def note(r: Record) -> None:
            if r.ip_forward_was is None:
                r.ip_forward_was = was

        self._record(note)
        self._run("mutate", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]).check(
            "enabling IPv4 forwarding"
        )

    def _nat(self, subnets: list[ipaddress.IPv4Network]) -> None:
        self._record(
            lambda r: (
                r.nat_tables.append(self.nat_table) if self.nat_table not in r.nat_tables else None
            )
        )
        self._run("mutate", ["nft", "-f", "-"], input=nat_script(self.nat_table, subnets)).check(
            f"writing nft table ip {self.nat_table}"
        )

    def _add_subids(self) -> None:
        for added in self.subids.add(self.state_dir):
            self.log.add("mutate", ["append", *added.split(": ", 1)])

    def _enlist_subids(self) -> None:
        """Share subid lines another lab (or an older Phoenix) added, so their teardown
        keeps them while this lab needs them."""
        old = Record.load(self.record_path).subid_added
        if old:
            self.subids.adopt(self.state_dir, old)
            self._record(lambda r: r.subid_added.clear())
        self.subids.enlist(self.state_dir)

    def apply(self, bridges: Sequence[BridgeSpec], dry_run: bool = False) -> list[str]:
        """Run the plan (or only describe it); returns what was (or would be) done."""
        steps = self.plan(bridges)
        if not dry_run:
            for step in steps:
                step.run()
            self._enlist_subids()
        return [s.describe for s in steps]

    # ---- teardown -------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove the bridges and nft tables this state dir's record says Phoenix created,
        and the subuid/subgid lines Phoenix added once no other lab relies on them.

        IPv4 forwarding is restored only when no other Phoenix NAT table remains."""
        done: list[str] = []
        record = Record.load(self.record_path)
        if record.subid_added:
            self.subids.adopt(self.state_dir, record.subid_added)
        for name in record.bridges:
            if self._run("observe", ["ip", "-j", "link", "show", "dev", name]).ok:
                self._run("mutate", ["ip", "link", "del", name]).check(f"deleting bridge {name}")
                done.append(f"deleted bridge {name}")
        for table in record.nat_tables:
            if self._run("observe", ["nft", "list", "table", "ip", table]).ok:
                self._run("mutate", ["nft", "delete", "table", "ip", table]).check(
                    f"deleting nft table ip {table}"
                )
                done.append(f"deleted nft table ip {table}")
        done += self._drop_empty_firewall_table()
        if record.ip_forward_was == "0" and not self._other_nat_tables():
            self._run("mutate", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
            done.append("restored net.ipv4.ip_forward=0")
        done += [f"removed {line}" for line in self.subids.release(self.state_dir)]
        for path in (self.record_path, self.state_dir / (RECORD_FILE + ".lock")):
            path.unlink(missing_ok=True)
        return done

    def _drop_empty_firewall_table(self) -> list[str]:
        """The LXC driver's bridge firewall table, once no guest has chains in it."""
        res = self._run("observe", ["nft", "-j", "list", "table", "bridge", self.fw_table])
        if not res.ok:
            return []
        items = json.loads(res.stdout or "{}").get("nftables", [])
        guest_chains = [
            i["chain"]["name"]
            for i in items
            if "chain" in i and i["chain"]["name"].startswith(("in_", "out_"))
        ]
        if guest_chains:
            return []
        self._run("mutate", ["nft", "delete", "table", "bridge", self.fw_table]).check(
            f"deleting nft table bridge {self.fw_table}"
        )
        return [f"deleted nft table bridge {self.fw_table}"]

    def _other_nat_tables(self) -> bool:
        res = self._run("observe", ["nft", "-j", "list", "tables", "ip"])
        if not res.ok:
            return False
        for item in json.loads(res.stdout or "{}").get("nftables", []):
            table = item.get("table")
            if table and table["name"].startswith("phoenix_nat"):
                return True
        return False

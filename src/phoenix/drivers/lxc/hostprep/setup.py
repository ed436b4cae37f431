"""`phoenix setup`: prepare a plain Linux host for the LXC driver, idempotently.

For the bridges the inventory's guests sit on: create each missing bridge with the guests'
gateway as the host's address, enable IPv4 forwarding, masquerade the guest subnets in an
nft table of Phoenix's own (never the host's ruleset), and delegate the unprivileged id
range to root in /etc/subuid and /etc/subgid. Facts are read through the runner
(`facts`), the steps planned from them by a pure function (`plan`) and carried out here.
Whatever Phoenix creates is recorded in its state dir (the subid lines in a host-wide
ledger, as several labs may share them) so `teardown` removes exactly that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import assert_never

from filelock import FileLock

from phoenix.drivers.base import CommandKind, CommandLog
from phoenix.drivers.lxc import firewall
from phoenix.drivers.lxc.hostprep.errors import SetupError
from phoenix.drivers.lxc.hostprep.facts import (
    DEFAULT_NAT_TABLE,
    REQUIRED_PACKAGES,
    BridgeSpec,
    HostFacts,
    read_facts,
)
from phoenix.drivers.lxc.hostprep.plan import (
    AddAddress,
    AddSubids,
    CreateBridge,
    EnableForwarding,
    Masquerade,
    Step,
    nat_script,
    plan,
)
from phoenix.drivers.lxc.hostprep.record import RECORD_FILE, Record
from phoenix.drivers.lxc.hostprep.subids import DEFAULT_LEDGER, SUBID_FILES, IdRanges, SubIds
from phoenix.files import make_owned_dir, parse_json
from phoenix.runners.base import CommandResult, Runner


class HostSetup:
    """Plans and applies host preparation; every command goes through the runner."""

    def __init__(
        self,
        runner: Runner,
        state_dir: Path,
        *,
        nat_table: str = DEFAULT_NAT_TABLE,
        fw_table: str = firewall.DEFAULT_TABLE,
        subid_files: tuple[Path, ...] = SUBID_FILES,
        subid_ledger: Path = DEFAULT_LEDGER,
        subid_ranges: IdRanges = (),
        packages: Sequence[str] = REQUIRED_PACKAGES,
    ) -> None:
        if not nat_table.startswith("phoenix"):
            raise SetupError(f"nft table {nat_table!r}: Phoenix's nft tables are named phoenix*")
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.nat_table = nat_table
        self.fw_table = fw_table
        self.subids = SubIds(subid_files, subid_ledger)
        self.subid_ranges = subid_ranges  # host ranges the guests' id maps use
        self.packages = tuple(packages)
        self.log = CommandLog()

    @property
    def record_path(self) -> Path:
        return self.state_dir / RECORD_FILE

    def _run(
        self, kind: CommandKind, argv: Sequence[str], input: str | None = None
    ) -> CommandResult:
        self.log.add(kind, argv)
        return self.runner.run(argv, input=input)

    def _observe(self, argv: Sequence[str]) -> CommandResult:
        return self._run("observe", argv)

    def _record(self, update: Callable[[Record], None]) -> None:
        make_owned_dir(self.state_dir)
        with FileLock(str(self.state_dir / (RECORD_FILE + ".lock")), timeout=60):
            record = Record.load(self.record_path)
            update(record)
            record.save(self.record_path)
        self.log.file("write", self.record_path)

    # ---- plan -----------------------------------------------------------------------------

    def facts(self, bridges: Sequence[BridgeSpec]) -> HostFacts:
        return read_facts(
            self._observe,
            bridges,
            packages=self.packages,
            nat_table=self.nat_table,
            subids=self.subids,
            subid_ranges=self.subid_ranges,
        )

    def plan(self, bridges: Sequence[BridgeSpec]) -> list[Step]:
        """Every change needed, in order (empty when the host is ready). Raises SetupError
        for what Phoenix must not fix by itself."""
        return plan(self.facts(bridges), bridges, Record.load(self.record_path), self.nat_table)

    def apply(self, bridges: Sequence[BridgeSpec], dry_run: bool = False) -> list[str]:
        """Run the plan (or only describe it); returns what was (or would be) done."""
        steps = self.plan(bridges)
        if not dry_run:
            for step in steps:
                self._do(step)
            self._enlist_subids()
        return [s.describe for s in steps]

    # ---- actions --------------------------------------------------------------------------

    def _do(self, step: Step) -> None:
        match step:
            case CreateBridge(bridge):
                self._note(lambda r: r.bridges, bridge.name)
                argv = ["ip", "link", "add", "name", bridge.name, "type", "bridge"]
                self._run("mutate", argv).check(f"creating bridge {bridge.name}")
            case AddAddress(bridge):
                argv = ["ip", "addr", "add", str(bridge.address), "dev", bridge.name]
                self._run("mutate", argv).check(f"adding {bridge.address} to {bridge.name}")
                self._run("mutate", ["ip", "link", "set", bridge.name, "up"]).check(
                    f"bringing {bridge.name} up"
                )
            case EnableForwarding(was):

                def note(r: Record) -> None:
                    if r.ip_forward_was is None:
                        r.ip_forward_was = was

                self._record(note)
                self._run("mutate", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]).check(
                    "enabling IPv4 forwarding"
                )
            case Masquerade(table, subnets):
                self._note(lambda r: r.nat_tables, table)
                script = nat_script(table, subnets)
                self._run("mutate", ["nft", "-f", "-"], input=script).check(
                    f"writing nft table ip {table}"
                )
            case AddSubids():
                for added in self.subids.add(self.state_dir, self.subid_ranges):
                    path, line = added.split(": ", 1)
                    self.log.file("append", path, line)
            case _:
                assert_never(step)

    def _note(self, names: Callable[[Record], list[str]], name: str) -> None:
        """Record that Phoenix made `name` (before making it: a crash in between leaves a
        record of something missing, which teardown skips, never the reverse)."""

        def add(r: Record) -> None:
            if name not in names(r):
                names(r).append(name)

        self._record(add)

    def _enlist_subids(self) -> None:
        """Share subid lines another lab (or an older Phoenix) added, so their teardown
        keeps them while this lab needs them."""
        old = Record.load(self.record_path).subid_added
        if old:
            self.subids.adopt(self.state_dir, old)
            self._record(lambda r: r.subid_added.clear())
        self.subids.enlist(self.state_dir)

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
            if self._observe(["ip", "-j", "link", "show", "dev", name]).ok:
                self._run("mutate", ["ip", "link", "del", name]).check(f"deleting bridge {name}")
                done.append(f"deleted bridge {name}")
        for table in record.nat_tables:
            if self._observe(["nft", "list", "table", "ip", table]).ok:
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
        res = self._observe(firewall.list_argv(self.fw_table))
        if not res.ok:
            return []
        if firewall.parse_listing(res.stdout).guests():
            return []
        self._run("mutate", ["nft", "delete", "table", "bridge", self.fw_table]).check(
            f"deleting nft table bridge {self.fw_table}"
        )
        return [f"deleted nft table bridge {self.fw_table}"]

    def _other_nat_tables(self) -> bool:
        res = self._observe(["nft", "-j", "list", "tables", "ip"])
        if not res.ok:
            return False
        items = parse_json(res.stdout or "{}", "nft -j list tables ip").get("nftables", [])
        return any(
            item.get("table", {}).get("name", "").startswith(DEFAULT_NAT_TABLE) for item in items
        )

"""LxcDriver and HostSetup against a RecordedRunner: exact argv, logs, refusals."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import CommandLog, FirewallRule, GuestSettings, NetSettings
from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, RenderContext
from phoenix.drivers.lxc.hostprep import (
    BridgeSpec,
    HostSetup,
    Record,
    SetupError,
    nat_marker,
    nat_script,
    routes_overlapping,
)
from phoenix.errors import DriverError
from phoenix.host.setup import bridges_from_inventory
from phoenix.inventory.loader import load_inventory
from phoenix.runners.base import CommandResult
from phoenix.runners.recorded import RecordedRunner
from tests.driver_contract import as_driver, contract_breaches

V1 = CgroupHost(1, memsw=True, cpus=2)
NET = NetSettings("eth0", "phxtbr0", "10.213.77.5/24", "10.213.77.1", "02:00:00:00:00:05")
SETTINGS = GuestSettings("g", 512, 128, 1, 4, "local", True, NET)
INVENTORIES = Path(__file__).parents[2] / "inventories"


def make_driver(tmp_path: Path, runner: RecordedRunner) -> LxcDriver:
    return LxcDriver(tmp_path / "lxc", tmp_path / "cache", runner, cgroup=V1, apparmor=False)


def install_guest(driver: LxcDriver, ctid: int, settings: GuestSettings = SETTINGS) -> Path:
    cdir = driver.lxc_path / str(ctid)
    (cdir / "rootfs").mkdir(parents=True)
    text = lxcconf.render(ctid, settings, RenderContext(cdir / "rootfs", V1, False))
    (cdir / "config").write_text(text)
    (cdir / "phoenix.json").write_text(GuestMeta.of(settings).to_json())
    return cdir


def test_satisfies_the_driver_protocol(tmp_path: Path) -> None:
    assert contract_breaches(LxcDriver) == []
    assert as_driver(make_driver(tmp_path, RecordedRunner())).name == "lxc"
    assert LxcDriver.name == "lxc"


def test_observe_missing_runs_nothing(tmp_path: Path) -> None:
    runner = RecordedRunner()
    driver = make_driver(tmp_path, runner)
    assert driver.observe(101).state == "missing"
    assert runner.calls == []


def test_observe_existing_guest_only_observes(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    driver = make_driver(tmp_path, runner)
    install_guest(driver, 101)
    seen = driver.observe(101)
    assert seen.state == "stopped" and seen.settings is not None
    assert SETTINGS.diff(seen.settings) == {}
    assert {kind for kind, _ in driver.log.entries} == {"observe"}
    assert runner.calls[0][:5] == ("lxc-info", "-P", str(tmp_path / "lxc"), "-n", "101")


def test_missing_firewall_chain_observes_as_disabled(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["nft", "-j", "list"], "", returncode=1)  # e.g. after a host reboot
    driver = make_driver(tmp_path, runner)
    wanted = GuestSettings(
        "g",
        512,
        128,
        1,
        4,
        "local",
        True,
        NET,
        firewall_enabled=True,
        firewall_rules=(FirewallRule("in", "ACCEPT", "10.213.77.9"),),
    )
    install_guest(driver, 101, wanted)
    seen = driver.observe(101).settings
    assert seen is not None
    assert set(wanted.diff(seen)) == {"firewall_enabled", "firewall_rules"}


def test_configure_nothing_changes_nothing(tmp_path: Path) -> None:
    runner = RecordedRunner()
    driver = make_driver(tmp_path, runner)
    install_guest(driver, 101)
    driver.configure(101, SETTINGS, frozenset())
    assert driver.log.mutations() == []


def test_configure_rewrites_only_named_fields(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    driver = make_driver(tmp_path, runner)
    cdir = install_guest(driver, 101)
    # the desired side also differs in cores, but only memory_mb is named as changed
    driver.configure(101, replace(SETTINGS, memory_mb=640, cores=2), frozenset({"memory_mb"}))
    seen = lxcconf.to_settings(lxcconf.parse((cdir / "config").read_text()), GuestMeta.of(SETTINGS))
    assert (seen.memory_mb, seen.cores) == (640, 1)
    assert driver.log.mutations() == [("write", str(cdir / "config"))]
    # the write is a file entry of its own, not a command that could be mistaken for one
    assert driver.log.files() == [("write", str(cdir / "config"))]
    assert [kind for kind, _ in driver.log.entries if kind != "observe"] == ["file"]
    assert f"file: write {cdir / 'config'}" in driver.log.lines()


def test_command_log_renders_commands_and_file_changes_apart() -> None:
    log = CommandLog()
    log.add("observe", ["lxc-info", "-n", "101"])
    log.add("mutate", ["nft", "-f", "-"])
    log.file("rename", "/var/lib/lxc/101", "to /var/lib/lxc/.deleting-101")
    log.add("exec", ["sh", "-c", "echo 'a b'"])
    log.file("write-guest-files", "/r", "etc/hosts", "etc/hostname")
    log.file("mkdir", "/var/lib/lxc/101")
    assert log.lines() == [
        "observe: lxc-info -n 101",
        "mutate: nft -f -",
        "file: rename /var/lib/lxc/101 (to /var/lib/lxc/.deleting-101)",
        "exec: sh -c 'echo '\"'\"'a b'\"'\"''",
        "file: write-guest-files /r (etc/hosts, etc/hostname)",
        "file: mkdir /var/lib/lxc/101",
    ]
    changes = [
        ("rename", "/var/lib/lxc/101", "to /var/lib/lxc/.deleting-101"),
        ("write-guest-files", "/r", "etc/hosts", "etc/hostname"),
        ("mkdir", "/var/lib/lxc/101"),
    ]
    assert log.mutations() == [("nft", "-f", "-"), *changes]
    assert log.files() == changes


def test_configure_keeps_the_assigned_mac(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("writes guest files owned by the mapped root")
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    driver = make_driver(tmp_path, runner)
    cdir = install_guest(driver, 101)
    (cdir / "rootfs" / "etc" / "network").mkdir(parents=True)
    new_net = replace(NET, ip="10.213.77.6/24", mac=None)
    driver.configure(101, replace(SETTINGS, net=new_net), frozenset({"net"}))
    text = (cdir / "config").read_text()
    assert "lxc.net.0.hwaddr = 02:00:00:00:00:05" in text
    assert "lxc.net.0.ipv4.address = 10.213.77.6/24 10.213.77.255" in text


def test_configure_refuses_to_flip_unprivileged(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, RecordedRunner())
    install_guest(driver, 101)
    with pytest.raises(DriverError, match="recreate"):
        driver.configure(101, replace(SETTINGS, unprivileged=False), frozenset({"unprivileged"}))


def test_resize_never_shrinks(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, RecordedRunner())
    install_guest(driver, 101)
    with pytest.raises(DriverError, match="shrink"):
        driver.resize(101, 2)
    driver.resize(101, 4)
    assert driver.log.mutations() == []
    driver.resize(101, 10)
    assert GuestMeta.from_json((driver.lxc_path / "101" / "phoenix.json").read_text()).disk_gb == 10


def test_exec_argv_clears_env_and_passes_vars(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-attach"], "out", returncode=3, stderr="err")
    driver = make_driver(tmp_path, runner)
    res = driver.exec(101, ["echo", "$HOME; rm -rf /"], env={"A": "b c"}, stdin=b"in")
    assert (res.returncode, res.stdout, res.stderr) == (3, "out", "err")
    argv = runner.calls[0]
    assert argv[:6] == ("lxc-attach", "-P", str(tmp_path / "lxc"), "-n", "101", "--clear-env")
    assert "A=b c" in argv and argv[-3:] == ("--", "echo", "$HOME; rm -rf /")
    assert runner.inputs[0] == b"in"
    assert driver.log.entries[0][0] == "exec"


def test_stop_and_destroy_of_missing_guest_do_nothing(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list"], "", returncode=1)
    driver = make_driver(tmp_path, runner)
    driver.stop(101)
    driver.destroy(101)
    assert driver.log.mutations() == []


def test_create_refuses_an_existing_guest(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, RecordedRunner())
    install_guest(driver, 101)
    with pytest.raises(DriverError, match="already exists"):
        driver.create(101, "debootstrap:bookworm", SETTINGS)


def test_start_fails_clearly_without_the_bridge(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["ip", "-j", "link"], "", returncode=1)
    driver = make_driver(tmp_path, runner)
    install_guest(driver, 101)
    with pytest.raises(DriverError, match="phoenix setup"):
        driver.start(101, timeout=1)
    assert not any(argv[0] == "lxc-start" for argv in runner.calls)


def test_snapshots_are_named_by_their_comment(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-snapshot"])
    driver = make_driver(tmp_path, runner)
    cdir = install_guest(driver, 101)
    for i, name in ((1, "final-form"), (0, "pre-configured")):
        make_snapshot(cdir, i, name)
    assert driver.list_snapshots(101) == ["pre-configured", "final-form"]
    driver.snapshot(101, "final-form")
    assert driver.log.mutations() == []


def make_snapshot(cdir: Path, index: int, name: str | None) -> Path:
    """snaps/snapN as lxc-snapshot leaves it; `name` None: stopped before the comment."""
    snap = cdir / "snaps" / f"snap{index}"
    (snap / "rootfs" / "etc").mkdir(parents=True)
    (snap / "config").write_text(f"lxc.rootfs.path = dir:{snap / 'rootfs'}\n")
    if name is not None:
        (snap / "comment").write_text(name + "\n")
    return snap


def really_removing(runner: RecordedRunner) -> RecordedRunner:
    """Let the driver's `rm -rf` of leftovers happen for real (under tmp_path)."""

    def rm(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] != ("rm", "-rf"):
            return None
        shutil.rmtree(argv[-1])
        return CommandResult(0, "", "", argv)

    runner.responders.insert(0, rm)
    return runner


def test_an_interrupted_create_is_a_missing_guest_with_a_leftover_that_destroy_removes(
    tmp_path: Path,
) -> None:
    runner = really_removing(RecordedRunner())
    runner.respond(["nft", "-j", "list"], "", returncode=1)
    driver = make_driver(tmp_path, runner)
    cdir = driver.lxc_path / "101"
    (cdir / "rootfs" / "etc").mkdir(parents=True)  # tar was killed; no config yet
    observed = driver.observe(101)
    assert observed.state == "missing"
    assert observed.leftover is not None and str(cdir) in observed.leftover
    driver.destroy(101)
    assert not cdir.exists() and driver.observe(101).leftover is None


def test_destroy_renames_first_so_an_interrupted_one_leaves_no_guest(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["nft", "-j", "list"], "", returncode=1)
    runner.respond(["rm", "-rf"])
    driver = make_driver(tmp_path, runner)
    cdir = install_guest(driver, 101)
    make_snapshot(cdir, 0, "golden")
    driver.destroy(101)  # the recorded rm does nothing: as if killed right after the rename
    trash = driver.lxc_path / ".deleting-101"
    assert not cdir.exists() and (trash / "snaps" / "snap0").is_dir()
    observed = driver.observe(101)
    assert observed.state == "missing" and observed.leftover is not None
    assert "a delete that did not finish" in observed.leftover
    really_removing(runner)
    driver.destroy(101)  # the next delete (or create) finishes it
    assert not trash.exists()


def test_incomplete_snapshots_are_not_listed_and_are_cleared_before_a_new_one(
    tmp_path: Path,
) -> None:
    runner = really_removing(RecordedRunner())
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["lxc-snapshot"])
    driver = make_driver(tmp_path, runner)
    cdir = install_guest(driver, 101)
    make_snapshot(cdir, 0, "pre-configured")
    make_snapshot(cdir, 1, None)  # lxc-snapshot killed while copying
    gutted = make_snapshot(cdir, 2, "golden")
    shutil.rmtree(gutted / "rootfs")  # a delete interrupted half-way through it
    assert driver.list_snapshots(101) == ["pre-configured"]
    driver.snapshot(101, "golden")
    removed = [c[-1] for c in runner.calls if c[:2] == ("rm", "-rf")]
    assert removed == [str(cdir / "snaps" / "snap1"), str(cdir / "snaps" / "snap2")]
    assert any(c[0] == "lxc-snapshot" for c in runner.calls)


# ---- host setup -------------------------------------------------------------------------

ROUTES = json.dumps(
    [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"dst": "10.213.77.0/24", "dev": "phxtbr0"},
    ]
)


def test_routes_overlapping() -> None:
    assert routes_overlapping(ROUTES, ipaddress.IPv4Network("192.0.2.128/25"), "x") == [
        "192.0.2.0/24 dev eth0"
    ]
    assert routes_overlapping(ROUTES, ipaddress.IPv4Network("10.213.77.0/24"), "phxtbr0") == []
    assert routes_overlapping(ROUTES, ipaddress.IPv4Network("10.9.0.0/16"), "x") == []


def test_nat_script_replaces_the_table_atomically() -> None:
    nets = [ipaddress.IPv4Network("10.213.77.0/24")]
    lines = nat_script("phoenix_nat", nets).splitlines()
    assert lines[:3] == [
        "add table ip phoenix_nat",
        "delete table ip phoenix_nat",
        "add table ip phoenix_nat",
    ]
    assert any("ip saddr 10.213.77.0/24 ip daddr != 10.213.77.0/24 masquerade" in x for x in lines)
    assert nat_marker(nets) in lines[-1]


def host_runner(link_exists: bool = False) -> RecordedRunner:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    runner.respond(["ip", "-j", "-4", "route"], ROUTES)
    runner.respond(["ip", "-j", "addr"], "[]" if link_exists else "", 0 if link_exists else 1)
    runner.respond(["nft", "-j", "list"], "", returncode=1)
    for accepted in (["ip", "link"], ["ip", "addr", "add"], ["nft", "-f", "-"], ["sysctl"]):
        runner.respond(accepted)
    runner.respond(["sysctl", "-n", "net.ipv4.ip_forward"], "0\n")  # after: the latest wins
    # what apply made, teardown finds
    runner.respond(["ip", "-j", "link", "show", "dev", "phxtbr9"], "[]")
    runner.respond(["nft", "list", "table", "ip", "phoenix_nat"])
    runner.respond(["nft", "delete", "table", "ip", "phoenix_nat"])
    return runner


def make_setup(tmp_path: Path, runner: RecordedRunner) -> HostSetup:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("")
    subgid.write_text("root:100000:65536\n")
    return HostSetup(
        runner,
        tmp_path / "state",
        subid_files=(subuid, subgid),
        subid_ledger=tmp_path / "phoenix" / "subids.json",
    )


def test_setup_plans_and_applies_every_step(tmp_path: Path) -> None:
    runner = host_runner()
    setup = make_setup(tmp_path, runner)
    spec = BridgeSpec("phxtbr9", ipaddress.IPv4Interface("10.213.99.1/24"))
    done = setup.apply([spec])
    assert done == [
        "create bridge phxtbr9",
        "add address 10.213.99.1/24 to phxtbr9 and bring it up",
        "enable IPv4 forwarding (net.ipv4.ip_forward=1)",
        "masquerade 10.213.99.0/24 in nft table ip phoenix_nat",
        f"add root:100000:65536 to {tmp_path / 'subuid'}",
    ]
    assert ("ip", "link", "add", "name", "phxtbr9", "type", "bridge") in runner.calls
    assert (tmp_path / "subuid").read_text() == "root:100000:65536\n"
    record = Record.load(tmp_path / "state" / "host-setup.json")
    assert record.bridges == ["phxtbr9"] and record.nat_tables == ["phoenix_nat"]
    assert record.ip_forward_was == "0"
    assert ("file", ("append", str(tmp_path / "subuid"), "root:100000:65536")) in setup.log.entries
    assert all(kind == "observe" for kind, _ in setup.log.entries[:7]), "facts first, then acts"


def test_teardown_removes_the_subid_line_setup_added_and_only_that(tmp_path: Path) -> None:
    runner = host_runner()
    setup = make_setup(tmp_path, runner)
    setup.apply([BridgeSpec("phxtbr9", ipaddress.IPv4Interface("10.213.99.1/24"))])
    assert (tmp_path / "phoenix" / "subids.json").is_file()
    done = setup.teardown()
    assert f"removed {tmp_path / 'subuid'}: root:100000:65536" in done
    assert (tmp_path / "subuid").read_text() == ""
    assert (tmp_path / "subgid").read_text() == "root:100000:65536\n"  # the operator's
    assert not (tmp_path / "phoenix").exists()
    assert not (tmp_path / "state" / "host-setup.json").exists()


def test_setup_dry_run_changes_nothing(tmp_path: Path) -> None:
    runner = host_runner()
    setup = make_setup(tmp_path, runner)
    spec = BridgeSpec("phxtbr9", ipaddress.IPv4Interface("10.213.99.1/24"))
    assert setup.apply([spec], dry_run=True)
    assert setup.log.mutations() == []
    assert (tmp_path / "subuid").read_text() == ""


def test_setup_refuses_overlapping_subnet(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, host_runner())
    spec = BridgeSpec("phxtbr9", ipaddress.IPv4Interface("192.0.2.200/24"))
    with pytest.raises(SetupError, match=r"overlaps existing route\(s\) 192.0.2.0/24 dev eth0"):
        setup.apply([spec])
    assert setup.log.mutations() == []


def test_setup_never_changes_a_foreign_interface(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, host_runner(link_exists=True))
    spec = BridgeSpec("vmbr0", ipaddress.IPv4Interface("10.213.99.1/24"))
    with pytest.raises(SetupError, match="did not create"):
        setup.apply([spec])


def test_setup_reports_missing_packages(tmp_path: Path) -> None:
    runner = host_runner()
    runner.respond(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "debootstrap"], "", 1)
    with pytest.raises(SetupError, match="apt-get install debootstrap"):
        make_setup(tmp_path, runner).apply([])


def test_teardown_removes_only_what_was_recorded(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list", "tables"], json.dumps({"nftables": []}))
    runner.respond(["nft", "-j", "list", "table", "bridge"], "", 1, "No such file or directory")
    runner.respond(["ip", "-j", "link", "show", "dev", "phxtbr9"], "[]")
    runner.respond(["nft", "list", "table", "ip", "phoenix_nat"])
    for accepted in (["ip", "link", "del"], ["nft", "delete", "table", "ip"], ["sysctl"]):
        runner.respond(accepted)
    setup = make_setup(tmp_path, runner)
    Record(bridges=["phxtbr9"], nat_tables=["phoenix_nat"], ip_forward_was="0").save(
        setup.record_path
    )
    done = setup.teardown()
    assert done == [
        "deleted bridge phxtbr9",
        "deleted nft table ip phoenix_nat",
        "restored net.ipv4.ip_forward=0",
    ]
    assert ("ip", "link", "del", "phxtbr9") in runner.calls
    assert not setup.record_path.exists()


def test_bridges_from_inventory() -> None:
    inventory = load_inventory(INVENTORIES / "valid" / "minimal")
    assert bridges_from_inventory(inventory) == [
        BridgeSpec("vmbr0", ipaddress.IPv4Interface("10.0.0.1/24"))
    ]


def _fw_listing(*chains: str) -> str:
    items = [{"table": {"family": "bridge", "name": "phoenix_fw"}}]
    items += [{"chain": {"family": "bridge", "table": "phoenix_fw", "name": c}} for c in chains]
    return json.dumps({"nftables": items})


def test_teardown_drops_the_firewall_table_once_no_guest_uses_it(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list", "tables"], json.dumps({"nftables": []}))
    runner.respond(
        ["nft", "-j", "list", "table", "bridge", "phoenix_fw"],
        _fw_listing("forward", "input", "output"),
    )
    runner.respond(["nft", "delete", "table", "bridge", "phoenix_fw"])
    done = make_setup(tmp_path, runner).teardown()
    assert "deleted nft table bridge phoenix_fw" in done
    assert ("nft", "delete", "table", "bridge", "phoenix_fw") in runner.calls


def test_teardown_keeps_the_firewall_table_while_guests_have_chains(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-j", "list", "tables"], json.dumps({"nftables": []}))
    runner.respond(
        ["nft", "-j", "list", "table", "bridge", "phoenix_fw"],
        _fw_listing("forward", "in_801", "out_801"),
    )
    done = make_setup(tmp_path, runner).teardown()
    assert done == []
    assert ("nft", "delete", "table", "bridge", "phoenix_fw") not in runner.calls


def _listing_with(*ctids: int) -> str:
    items: list[dict[str, object]] = [{"table": {"family": "bridge", "name": "t"}}]
    for name in ("forward", "output", "input", *(f"{d}_{c}" for c in ctids for d in ("in", "out"))):
        items.append({"chain": {"family": "bridge", "table": "t", "name": name}})
    return json.dumps({"nftables": items})


def test_chains_of_a_guest_gone_behind_phoenixs_back_are_a_leftover_and_removed(
    tmp_path: Path,
) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["nft", "-j", "list"], _listing_with(101, 802))
    runner = really_removing(runner)
    runner.respond(["nft", "-f", "-"])
    runner.respond(["nft", "delete", "table", "bridge"])
    driver = make_driver(tmp_path, runner)
    install_guest(driver, 101)  # 802's dir was removed by hand: only its chains are left
    observed = driver.observe(802)
    assert observed.state == "missing" and "firewall chains" in (observed.leftover or "")
    driver.destroy(101)
    scripts = [
        str(i) for c, i in zip(runner.calls, runner.inputs, strict=True) if c[:2] == ("nft", "-f")
    ]
    assert any("delete chain bridge" in s and "in_802" in s and "in_101" in s for s in scripts)
    assert ("nft", "delete", "table", "bridge", driver.fw_table) in runner.calls  # the last


def test_the_firewall_table_stays_while_a_guest_uses_it(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["nft", "-j", "list"], _listing_with(101, 102))
    runner.respond(["nft", "-f", "-"])
    really_removing(runner)
    driver = make_driver(tmp_path, runner)
    install_guest(driver, 101)
    install_guest(driver, 102)
    driver.destroy(101)
    assert not any(c[:2] == ("nft", "delete") for c in runner.calls)


def test_a_running_guests_veth_off_its_bridge_is_configured_back_onto_it(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "RUNNING\n")
    veth = lxcconf.veth_name(101)
    runner.respond(["ip", "-j", "link", "show", "dev", veth], json.dumps([{"ifname": veth}]))
    runner.respond(["ip", "-j", "link", "show", "dev", NET.bridge], "[]")
    runner.respond(["ip", "link", "set", "dev", veth])
    driver = make_driver(tmp_path, runner)
    cdir = install_guest(driver, 101)
    (cdir / "rootfs" / "etc" / "network").mkdir(parents=True)
    seen = driver.observe(101)
    assert seen.settings is not None and seen.settings.net is not None
    diff = SETTINGS.diff(seen.settings)
    assert list(diff) == ["net"]  # the plan configures the NIC again
    driver.configure(101, SETTINGS, frozenset(diff))
    assert ("ip", "link", "set", "dev", veth, "master", NET.bridge) in runner.calls


@pytest.mark.parametrize("table_there", [False, True])
def test_applying_a_firewall_creates_the_table_only_when_it_is_missing(
    tmp_path: Path, table_there: bool
) -> None:
    runner = RecordedRunner()
    runner.respond(["nft", "-c", "-f", "-"])  # the probes: conntrack and REJECT work
    listing = _listing_with(102) if table_there else ""
    runner.respond(["nft", "-j", "list"], listing, returncode=0 if table_there else 1)
    runner.respond(["nft", "-f", "-"])
    driver = make_driver(tmp_path, runner)
    rule = FirewallRule("in", "ACCEPT", "10.0.0.10", proto="tcp", port="22")
    driver.firewall.apply(101, (rule,))
    scripts = [str(runner.inputs[i]) for i, c in enumerate(runner.calls) if c == ("nft", "-f", "-")]
    made = [s for s in scripts if "add table bridge" in s]
    assert len(made) == (0 if table_there else 1)
    guest = scripts[-1]
    # replies are let through in both directions, or a guest could neither answer nor
    # get answers (the stateful variant: one conntrack rule per chain)
    for chain in ("in_101", "out_101"):
        assert (
            f"add rule bridge {driver.firewall.table} {chain} ct state established,related accept"
            in guest
        )

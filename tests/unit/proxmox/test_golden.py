"""Golden argv of every step for the seed inventory's 900 (template) and 101 (gateway): the
command builders on a fresh node (`Preview`, what `plan --offline --commands` prints) and
the driver on recorded node output."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, MountSettings
from phoenix.drivers.proxmox import files
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.preview import Preview
from phoenix.errors import DriverError, PlanError
from phoenix.inventory import Inventory
from phoenix.runners.base import CommandResult
from phoenix.runners.recorded import RecordedRunner
from tests.driver_contract import as_driver, contract_breaches
from tests.unit.proxmox.conftest import (
    config_argv,
    data,
    guest_on_node,
    owning,
    pvesh,
    status_argv,
)
from tests.unit.proxmox.fakenode import FakeNode

ALL = frozenset(f.name for f in fields(GuestSettings))
TEMPLATE = "/fastData/shared-iso/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
LOCK_900 = ["flock", "--timeout", "30", "/run/lock/lxc/pve-config-900.lock"]
LOCK_101 = ["flock", "--timeout", "30", "/run/lock/lxc/pve-config-101.lock"]
WRITTEN_101 = [("lxc.apparmor.profile", "unconfined"), ("lxc.mount.auto", "sys:rw")]
SMALL = GuestSettings("small", 512, 512, 1, 8, "local-zfs", True, None)


def record(steps: Callable[[Preview], object]) -> Preview:
    """The commands a fresh node would run for `steps` (builders only; nothing runs)."""
    preview = Preview((8, 4))
    steps(preview)
    return preview


def mutations(preview: Preview) -> list[tuple[str, ...]]:
    return [c.argv for c in preview.commands]


def writer(path: str, expect: str = "-", mode: str = "-") -> list[str]:
    return ["python3", "-c", files.WRITER, path, expect, mode]


def test_driver_satisfies_the_protocol() -> None:
    assert contract_breaches(ProxmoxDriver) == []
    assert as_driver(ProxmoxDriver(RecordedRunner(), "pve")).name == "proxmox"
    assert ProxmoxDriver.name == "proxmox"


def test_fresh_node_900_then_101(seed: Inventory, s900: GuestSettings, s101: GuestSettings) -> None:
    def steps(d: Preview) -> None:
        # create and clone apply the guest's settings themselves (the Driver contract)
        d.create(900, seed.guests[900].template or "", s900)
        d.snapshot(900, "final-form")
        d.clone(900, 101, "final-form", s101)
        d.start(101)

    driver = record(steps)
    assert [list(argv) for argv in mutations(driver)] == [
        ["pct", "create", "900", TEMPLATE, "--hostname", "Copy-Base",
         "--rootfs", "quickOS-lxc-disks:16", "--unprivileged", "1"],
        ["pct", "set", "900", "--hostname", "Copy-Base", "--memory", "2048", "--swap", "512",
         "--cores", "2", "--onboot", "0",
         "--net0", "name=eth0,bridge=vmbr0,hwaddr=52:54:00:AA:BB:CC,ip=10.0.0.200/24,gw=10.0.0.1,firewall=0"],
        [*LOCK_900, *writer("/etc/pve/lxc/900.conf")],
        ["pct", "snapshot", "900", "final-form"],
        ["pct", "clone", "900", "101", "--snapname", "final-form", "--full", "1",
         "--storage", "quickOS-lxc-disks", "--hostname", "Nginx-Phoenix"],
        ["pct", "set", "101", "--hostname", "Nginx-Phoenix", "--memory", "4096", "--swap", "512",
         "--cores", "4", "--onboot", "1", "--startup", "order=1,up=5", "--features", "nesting=1",
         "--net0", "name=eth0,bridge=vmbr0,hwaddr=<MAC of 101>,ip=10.0.0.153/24,gw=10.0.0.1,firewall=1"],
        [*LOCK_101, *writer("/etc/pve/lxc/101.conf")],
        # A fresh node has no .fw file: the write is checked against an empty one, as the
        # driver's is (a file made in between is not overwritten).
        writer("/etc/pve/firewall/101.fw", files.digest("")),
        ["pct", "resize", "101", "rootfs", "32G"],
        ["pct", "start", "101"],
    ]  # fmt: skip
    writes = {c.path: c.content for c in driver.commands if c.content is not None}
    assert writes == {
        "/etc/pve/lxc/900.conf": "lxc.apparmor.profile: unconfined\n",
        "/etc/pve/lxc/101.conf": "lxc.apparmor.profile: unconfined\nlxc.mount.auto: sys:rw\n",
        "/etc/pve/firewall/101.fw": (
            "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\npolicy_out: ACCEPT\n\n"
            "[RULES]\n\nIN ACCEPT -p tcp -dport 80,443\n"
        ),
    }
    text = "\n".join(driver.lines())
    assert f"python3 -c '<phoenix-write>' /etc/pve/firewall/101.fw {files.digest('')} -" in text
    assert "#   | lxc.mount.auto: sys:rw" in text


def test_created_nic_without_mac_gets_one_then_keeps_it(s101: GuestSettings) -> None:
    def steps(d: Preview) -> None:
        d.create(101, TEMPLATE, s101)
        d.configure(101, s101, frozenset({"net"}))
        d.configure(101, s101, frozenset({"memory_mb"}))

    sets = [a for a in mutations(record(steps)) if a[:2] == ("pct", "set")]
    assert "hwaddr" not in sets[0][sets[0].index("--net0") + 1]
    assert "hwaddr=<MAC of 101>" in sets[1][sets[1].index("--net0") + 1]


def test_clone_reads_back_the_random_mac_and_keeps_it(
    runner: RecordedRunner, s101: GuestSettings
) -> None:
    guest_on_node(runner, 900, "config_900_stopped.json", "status_101_stopped.json")
    guest_on_node(runner, 101, "config_101_after_clone.json", "status_101_stopped.json")
    runner.respond(
        ["cat", "/etc/pve/lxc/101.conf"],
        "hostname: Nginx-Phoenix\nlxc.apparmor.profile: unconfined\n",
    )
    fw_write = writer("/etc/pve/firewall/101.fw")[:-2]
    for accepted in (["pct", "clone"], ["pct", "resize"], ["pct", "set"], LOCK_101, fw_write):
        runner.respond(accepted)
    driver = ProxmoxDriver(runner, "pve", sleep=lambda _: None)
    # After the resize the node reports the grown disk (pct's exit 0 alone is not trusted).
    grown = data("config_101_after_clone.json").replace("size=16G", "size=32G")
    runner.responders.insert(
        0,
        lambda argv: (
            CommandResult(0, grown, "", argv)
            if argv == tuple(config_argv(101))
            and ("pct", "resize", "101", "rootfs", "32G") in runner.calls
            else None
        ),
    )
    driver.clone(900, 101, "final-form", s101)
    cloned = driver.log.entries.index(("mutate", tuple(driver.log.mutations()[0])))
    assert driver.log.mutations()[0][:2] == ("pct", "clone")
    assert driver.log.entries[cloned + 1] == ("observe", tuple(config_argv(101)))
    driver.configure(101, s101, ALL - {"disk_gb"})
    pct_set = next(a for a in driver.log.mutations() if a[:2] == ("pct", "set"))
    assert pct_set[pct_set.index("--net0") + 1] == (
        "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:9C:3E:55,ip=10.0.0.153/24,gw=10.0.0.1,firewall=1,"
        "type=veth"  # the node's key Phoenix does not manage: carried over
    )
    conf_write = next(i for i, a in enumerate(runner.calls) if a[:1] == ("flock",))
    assert runner.calls[conf_write][-2] == files.digest(
        "hostname: Nginx-Phoenix\nlxc.apparmor.profile: unconfined\n"
    )
    assert runner.inputs[conf_write] == (
        "hostname: Nginx-Phoenix\nlxc.apparmor.profile: unconfined\nlxc.mount.auto: sys:rw\n"
    )


def test_converged_guest_changes_nothing(runner: RecordedRunner, s101: GuestSettings) -> None:
    guest_on_node(
        runner,
        101,
        "config_101_running.json",
        "status_101_running.json",
        "snapshot_101.json",
        fw="fw_101.fw",
    )
    driver = owning(ProxmoxDriver(runner, "pve", sleep=lambda _: None), 101, WRITTEN_101)
    seen = driver.observe(101)
    assert seen.settings is not None
    driver.configure(101, s101, frozenset(s101.diff(seen.settings)))
    driver.resize(101, 32)
    driver.start(101)
    driver.snapshot(101, "pre-gateway")
    assert driver.log.mutations() == []


class Node:
    """A stateful fake node for one running guest: shutdown/start flip its status."""

    def __init__(self, runner: RecordedRunner, ctid: int, config: str) -> None:
        self.state = "running"
        guest_on_node(runner, ctid, config, "status_101_running.json", fw="fw_101.fw")
        runner.respond(["cat", f"/etc/pve/lxc/{ctid}.conf"], data("conf_101_messy.conf"))
        runner.responders.insert(0, self.answer)
        self.ctid = ctid

    def answer(self, argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] in (("pct", "shutdown"), ("pct", "start")):
            self.state = "stopped" if argv[1] == "shutdown" else "running"
            return CommandResult(0, "", "", argv)
        if argv[:2] == ("pct", "set") or argv[: len(LOCK_101)] == tuple(LOCK_101):
            return CommandResult(0, "", "", argv)  # what configure writes is accepted
        if list(argv) == status_argv(self.ctid):
            name = (
                "status_101_running.json" if self.state == "running" else "status_101_stopped.json"
            )
            return CommandResult(0, data(name), "", argv)
        elif argv[:6] == ("pct", "exec", str(self.ctid), "--keep-env", "0", "--") and (
            "ip" in argv
        ):
            return CommandResult(
                0, "2: eth0    inet 10.0.0.153/24 brd 10.0.0.255 scope global eth0\n", "", argv
            )
        return None


def test_drifted_running_guest_gets_one_pct_set_and_a_restart(
    runner: RecordedRunner, s101: GuestSettings
) -> None:
    Node(runner, 101, "config_101_drifted.json")
    driver = owning(ProxmoxDriver(runner, "pve", sleep=lambda _: None), 101, WRITTEN_101)
    seen = driver.observe(101)
    assert seen.settings is not None
    changed = frozenset(s101.diff(seen.settings))
    assert changed == {"cores", "features"}
    driver.configure(101, s101, changed)
    assert [list(a) for a in driver.log.mutations()] == [
        ["pct", "set", "101", "--hostname", "Nginx-Phoenix", "--memory", "4096", "--swap", "512",
         "--cores", "4", "--onboot", "1", "--startup", "order=1,up=5", "--features", "nesting=1",
         "--net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5E:7A:01,ip=10.0.0.153/24,gw=10.0.0.1,firewall=1,type=veth"],
        ["pct", "shutdown", "101", "--timeout", "60", "--forceStop", "1"],
        ["pct", "start", "101"],
    ]  # fmt: skip


def test_raw_key_change_on_running_guest_rewrites_conf_and_restarts(
    runner: RecordedRunner, s101: GuestSettings
) -> None:
    Node(runner, 101, "config_101_running.json")
    driver = ProxmoxDriver(runner, "pve", sleep=lambda _: None)
    driver.configure(101, s101, frozenset({"raw_lxc"}))
    muts = driver.log.mutations()
    assert list(muts[0]) == [
        *LOCK_101,
        *writer("/etc/pve/lxc/101.conf", files.digest(data("conf_101_messy.conf"))),
    ]
    written = runner.inputs[runner.calls.index(muts[0])]
    assert isinstance(written, str)
    # Phoenix owns the AppArmor key (the inventory sets it) and its own lines; the lines it
    # did not write (mount.auto proc:..., a device rule) stay, the snapshot and pending
    # sections are untouched.
    main, rest = data("conf_101_messy.conf").split("\n\n[pre-gateway]", 1)
    kept = main.replace("lxc.apparmor.profile = generated\n", "")
    assert written == (
        kept + "\nlxc.apparmor.profile: unconfined\nlxc.mount.auto: sys:rw\n\n[pre-gateway]" + rest
    )
    assert [a[:2] for a in muts[1:]] == [("pct", "shutdown"), ("pct", "start")]


def test_unprivileged_cannot_change(runner: RecordedRunner, s101: GuestSettings) -> None:
    guest_on_node(runner, 101, "config_101_running.json", "status_101_running.json", fw="fw_101.fw")
    driver = ProxmoxDriver(runner, "pve")
    privileged = dataclasses.replace(s101, unprivileged=False)
    with pytest.raises(PlanError, match=r"guest 101 must be privileged.*recreated.*--recreate"):
        driver.configure(101, privileged, frozenset({"unprivileged"}))
    assert driver.log.mutations() == []


def test_resize_grows_only(tmp_path: Path) -> None:
    node = FakeNode(tmp_path)
    driver = ProxmoxDriver(node, "pve")
    driver.create(101, TEMPLATE, dataclasses.replace(SMALL, disk_gb=32))
    driver.resize(101, 40)
    assert node.mutations()[-1] == ("pct", "resize", "101", "rootfs", "40G")
    with pytest.raises(
        DriverError, match=r"guest 101's disk is 40 GiB.*asks for 16 GiB.*only grows"
    ):
        driver.resize(101, 16)


def test_lifecycle_and_snapshot_commands_offline() -> None:
    def steps(d: Preview) -> None:
        d.stop(101, timeout=30)
        d.mark_template(900)
        d.destroy(101)

    assert mutations(record(steps)) == [
        ("pct", "shutdown", "101", "--timeout", "30", "--forceStop", "1"),
        ("pct", "template", "900"),
        ("pct", "destroy", "101"),
    ]


def test_exec_argv() -> None:
    runner = RecordedRunner()
    runner.respond(["pct"])
    driver = ProxmoxDriver(runner, "pve", version=(8, 4))
    driver.exec(101, ["sh", "-c", "echo $X"], env={"X": "a b"})
    keep = ("--keep-env", "0")
    assert driver.log.entries == [
        (
            "exec",
            (
                "pct",
                "exec",
                "101",
                *keep,
                "--",
                "env",
                "HOME=/root",
                "LANG=C.UTF-8",
                "X=a b",
                "sh",
                "-c",
                "echo $X",
            ),
        ),
    ]


@pytest.mark.parametrize(
    ("template", "argv"),
    [
        (TEMPLATE, TEMPLATE),
        (
            "fastData-shared-iso:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "fastData-shared-iso:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        ),
    ],
)
def test_template_argument(template: str, argv: str, s900: GuestSettings) -> None:
    driver = record(lambda d: d.create(900, template, s900))
    assert mutations(driver)[0][3] == argv


@pytest.mark.parametrize("template", ["debootstrap:bookworm", "ubuntu.tar.zst"])
def test_bad_templates(template: str, s900: GuestSettings) -> None:
    with pytest.raises(DriverError, match="template"):
        record(lambda d: d.create(900, template, s900))


def test_refused_raw_key_is_a_driver_error(s101: GuestSettings) -> None:
    bad = dataclasses.replace(s101, raw_lxc=(("lxc.rootfs.path", "/x"),))
    with pytest.raises(DriverError, match=r"guest 101: raw LXC option refused: lxc.rootfs.path"):
        record(lambda d: d.configure(101, bad, frozenset({"raw_lxc"})))


@pytest.mark.parametrize("field", ["mounts", "memory_mb"])
def test_a_mount_change_on_a_running_guest_restarts_it_and_memory_does_not(
    runner: RecordedRunner, s101: GuestSettings, field: str
) -> None:
    """A changed mount point takes effect in a running guest only through a restart, which
    Phoenix does; a key Proxmox applies live (memory) restarts nothing."""
    Node(runner, 101, "config_101_running.json")
    driver = ProxmoxDriver(runner, "pve", sleep=lambda _: None)
    mount = MountSettings("/data", pool="local-zfs", size_gb=4)
    wanted = dataclasses.replace(s101, mounts=(mount,), memory_mb=8192)
    driver.configure(101, wanted, frozenset({field}))
    tail = [a[:2] for a in driver.log.mutations()][-2:]
    restarted = tail == [("pct", "shutdown"), ("pct", "start")]
    assert restarted is (field == "mounts"), driver.log.mutations()


def test_forced_destroy_of_a_protected_ha_guest_on_recorded_output(runner: RecordedRunner) -> None:
    """`phoenix delete 101 --force` of a stopped, protected HA guest: out of HA (the CRM
    lists it once more after the delete, then not), unprotected, destroyed."""
    status = json.loads(data("status_101_stopped.json"))
    status["ha"] = {"managed": 1, "state": "stopped"}
    config = json.loads(data("config_101_running.json"))
    config["protection"] = 1
    runner.respond(status_argv(101), json.dumps(status))
    runner.respond(config_argv(101), json.dumps(config))
    runner.respond(pvesh("/cluster/ha/resources"), data("ha_resources_101.json"))
    crm = iter([data("ha_status_101.json"), data("ha_status_idle.json")])
    ha_status = tuple(pvesh("/cluster/ha/status/current"))
    runner.responders.insert(
        0, lambda argv: CommandResult(0, next(crm), "", argv) if argv == ha_status else None
    )
    for verb in (["pvesh", "delete"], ["pct", "set"], ["pct", "destroy"]):
        runner.respond(verb)
    ProxmoxDriver(runner, "pve", sleep=lambda _: None).force_destroy(101)
    assert [c for c in runner.calls if c[:2] != ("pvesh", "get")] == [
        ("pvesh", "delete", "/cluster/ha/resources/ct:101"),
        ("pct", "set", "101", "--protection", "0"),
        ("pct", "destroy", "101"),
    ]
    assert runner.calls.count(ha_status) == 2

"""Lifecycle snapshots of a guest with bind mounts, asked for with
`lifecycle_snapshots_detach_bind_mounts`: stopped, bind mounts recorded then detached,
snapshotted, the same lines put back and read back (drivers/proxmox/bindsnap.py).

The fake node refuses a snapshot while any bind mount is in the config (pve-container
`src/PVE/LXC/Config.pm`, `has_feature` over every mount point) and keeps a bind mount
deleted from a running guest in [pve:pending] (`vmconfig_hotplug_pending`), so only the
full sequence passes. A crash is a runner that dies at one command and runs nothing after
it (kill -9: no `finally` reaches the node); the next process resumes from the record.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.base import GuestSettings, MountSettings
from phoenix.drivers.proxmox.bindsnap import RECORD_NAME, DetachedBinds, doctor_check
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import DriverError, PhoenixError
from phoenix.inventory import Inventory, load_inventory, validate_config_dir
from phoenix.plan.events import CollectingReporter
from phoenix.plan.model import Snapshot
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.run import converge
from phoenix.runners.base import CommandResult, Stdin
from tests.unit.proxmox.fakecluster import FakeCluster
from tests.unit.proxmox.fakenode import FakeNode, options

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
BIND = MountSettings("/models", host_path="/srv/models", read_only=True)
VOLUME = MountSettings("/data", pool="local-zfs", size_gb=4)
BASE = GuestSettings("b", 512, 512, 1, 8, "local-zfs", True, None, mounts=(BIND, VOLUME))


class Killed(BaseException):
    """The Phoenix process died (kill -9) at this command."""


class Crashing:
    """A runner over `node` that dies when a command starts with `at` (after `pct snapshot`
    has run, unless `at` is the snapshot): that command and every later one never reach
    the node."""

    def __init__(self, node: FakeNode, at: tuple[str, ...], record: Path | None = None) -> None:
        self.node, self.at, self.record = node, at, record
        self.dead = self.snapshotted = False
        self.record_at_delete: str | None = None

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        hit = tuple(argv[: len(self.at)]) == self.at
        if self.dead or (hit and (self.at[1] == "snapshot" or self.snapshotted)):
            self.dead = True
            raise Killed(" ".join(argv))
        self.snapshotted = self.snapshotted or tuple(argv[:2]) == ("pct", "snapshot")
        if "--delete" in argv and self.record is not None:
            self.record_at_delete = self.record.read_text() if self.record.is_file() else ""
        return self.node.run(argv, input=input, env=env, timeout=timeout)


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    made = FakeNode(tmp_path / "node")
    made.path("/srv/models").mkdir(parents=True)
    return made


def mount_lines(node: FakeNode, ctid: int, section: str | None = None) -> dict[str, str]:
    conf = node.need(ctid)
    lines = conf.main if section is None else conf.sections[section]
    return {k: v for k, v in options(lines).items() if k.startswith("mp")}


def made_running(node: FakeNode, record: DetachedBinds | None = None) -> ProxmoxDriver:
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, detached=record)
    driver.create(900, TEMPLATE, BASE)
    driver.start(900)
    return driver


def test_the_snapshot_is_taken_stopped_without_the_bind_mounts_which_come_back(
    node: FakeNode,
) -> None:
    driver = made_running(node)
    before = mount_lines(node, 900)
    start = len(node.calls)
    driver.snapshot_without_bind_mounts(900, "final-form")
    assert mount_lines(node, 900) == before  # byte for byte, the volume untouched
    held = mount_lines(node, 900, "final-form")
    assert "mp0" not in held and held["mp1"] == before["mp1"]  # no bind mount in it
    assert 900 in node.running and "pve:pending" not in node.need(900).sections
    mutations = [c for c in node.calls[start:] if c[0] == "pct" and c[1] != "exec"]
    assert mutations == [
        ("pct", "shutdown", "900", "--timeout", "60", "--forceStop", "1"),
        ("pct", "set", "900", "--delete", "mp0"),
        (
            "pct", "snapshot", "900", "final-form", "--description",
            f"Taken by Phoenix with its bind mounts detached (after a rollback, add back: "
            f"mp0: {before['mp0']})",
        ),
        ("pct", "set", "900", "--mp0", before["mp0"]),
        ("pct", "start", "900"),
    ]  # fmt: skip
    assert driver.detached.of_node("localhost") == {}
    driver.snapshot_without_bind_mounts(900, "final-form")  # taken: nothing more runs
    assert node.calls[-1][0] == "pvesh"


def test_a_stopped_guest_stays_stopped_and_one_without_bind_mounts_is_just_snapshotted(
    node: FakeNode,
) -> None:
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    driver.create(900, TEMPLATE, BASE)
    driver.snapshot_without_bind_mounts(900, "pre-configured")
    assert 900 not in node.running and "pre-configured" in node.need(900).sections
    driver.create(901, TEMPLATE, dataclasses.replace(BASE, mounts=(VOLUME,)))
    driver.start(901)
    start = len(node.calls)
    driver.snapshot_without_bind_mounts(901, "final-form")
    mutations = [c for c in node.calls[start:] if c[0] == "pct"]
    assert mutations == [("pct", "snapshot", "901", "final-form")]
    assert 901 in node.running


def test_a_failed_snapshot_still_puts_the_bind_mounts_back(node: FakeNode) -> None:
    node.storages["local-dir"] = "dir"  # no snapshots on a directory storage
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    settings = dataclasses.replace(BASE, storage="local-dir", mounts=(BIND,))
    driver.create(900, TEMPLATE, settings)
    before = mount_lines(node, 900)
    with pytest.raises(PhoenixError, match="snapshot feature is not available"):
        driver.snapshot_without_bind_mounts(900, "final-form")
    assert mount_lines(node, 900) == before
    assert driver.detached.of_node("localhost") == {}


@pytest.mark.parametrize(
    ("dies_at", "snapshot_taken"),
    [
        (("pct", "snapshot"), False),  # after the detach
        (("pct", "set", "900", "--mp0"), True),  # after the snapshot
    ],
)
def test_a_crash_between_detach_and_put_back_is_resumed_by_the_next_process(
    node: FakeNode, tmp_path: Path, dies_at: tuple[str, ...], snapshot_taken: bool
) -> None:
    made_running(node)
    before = mount_lines(node, 900)
    record = DetachedBinds.in_state_dir(tmp_path / "state")
    crashing = Crashing(node, dies_at, record.path)
    dying = ProxmoxDriver(crashing, "localhost", sleep=lambda _: None, detached=record)
    with pytest.raises(Killed):
        dying.snapshot_without_bind_mounts(900, "final-form")
    assert "mp0" not in mount_lines(node, 900)  # the node as the crash left it
    assert ("final-form" in node.need(900).sections) is snapshot_taken
    # The record was on disk before the --delete ran, and still is.
    assert record.path is not None and crashing.record_at_delete is not None
    kept = {"localhost/900": {"mp0": before["mp0"]}}
    assert json.loads(crashing.record_at_delete) == kept == json.loads(record.path.read_text())

    again = ProxmoxDriver(
        node,
        "localhost",
        sleep=lambda _: None,
        detached=DetachedBinds.in_state_dir(tmp_path / "state"),
    )
    assert again.resume_detached() == [(900, ("mp0",))]
    assert mount_lines(node, 900) == before
    assert json.loads(record.path.read_text()) == {}
    assert again.resume_detached() == []


def test_a_slot_taken_in_between_is_refused_and_the_record_kept(
    node: FakeNode, tmp_path: Path
) -> None:
    made_running(node)
    before = mount_lines(node, 900)
    record = DetachedBinds.in_state_dir(tmp_path / "state")
    dying = ProxmoxDriver(
        Crashing(node, ("pct", "snapshot")), "localhost", sleep=lambda _: None, detached=record
    )
    with pytest.raises(Killed):
        dying.snapshot_without_bind_mounts(900, "final-form")
    node.dispatch(["pct", "set", "900", "--mp0", "/srv/other,mp=/other"])  # by hand
    again = ProxmoxDriver(node, "localhost", sleep=lambda _: None, detached=record)
    with pytest.raises(DriverError, match=r"mp0 now holds '/srv/other,mp=/other'"):
        again.resume_detached()
    assert record.of_node("localhost") == {900: {"mp0": before["mp0"]}}


def test_a_guest_destroyed_since_has_nothing_to_put_back(node: FakeNode, tmp_path: Path) -> None:
    record = DetachedBinds.in_state_dir(tmp_path / "state")
    record.put("localhost", 905, {"mp0": "/srv/models,mp=/models"})
    record.put("pve2", 906, {"mp0": "/srv/models,mp=/models"})  # another node's: not here
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, detached=record)
    assert driver.resume_detached() == [(905, ("mp0",))]
    assert record.of_node("localhost") == {} and 906 in record.of_node("pve2")


def test_an_unreadable_record_is_an_error_not_an_empty_one(tmp_path: Path) -> None:
    record = DetachedBinds.in_state_dir(tmp_path)
    assert record.path is not None
    record.path.write_text("{not json")
    with pytest.raises(PhoenixError, match="bind mounts Phoenix detached"):
        record.of_node("localhost")


def test_a_rollback_to_such_a_snapshot_gets_its_bind_mounts_back_at_the_next_converge(
    node: FakeNode,
) -> None:
    """`pct rollback` copies the snapshot's config back (pve-guest-common
    src/PVE/AbstractConfig.pm, snapshot_rollback): the guest then lacks its bind mounts,
    which the inventory lists, so they are drift that the next converge puts back."""
    driver = made_running(node)
    before = mount_lines(node, 900)
    driver.snapshot_without_bind_mounts(900, "final-form")
    driver.stop(900)
    conf = node.need(900)
    node.put_conf(900, conf.render().replace(f"mp0: {before['mp0']}\n", "", 1))
    seen = driver.observe(900)
    assert seen.settings is not None and "mounts" in BASE.diff(seen.settings)
    driver.configure(900, BASE, frozenset(BASE.diff(seen.settings)))
    assert mount_lines(node, 900) == before


# -- the inventory switch, validate and the plan -------------------------------------------


def lab(tmp_path: Path, **guest: Any) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    phoenix = {"driver": "proxmox", "state_dir": str(tmp_path / "state")}
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps({"phoenix": phoenix}))
    entry = {
        "name": "models",
        "memory_mb": 512,
        "template": TEMPLATE,
        "storage_pool": "local-zfs",
        "enable_lifecycle_snapshots": True,
        "mount_points": [{"host_path": "/srv/models", "container_path": "/models"}],
        **guest,
    }
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {"905": entry}}))
    return etc


def warnings_at(etc: Path) -> dict[str, str]:
    _, problems = validate_config_dir(etc, driver="proxmox")
    return {p.path: p.message for p in problems}


def test_validate_names_the_switch_where_lifecycle_snapshots_are_skipped(tmp_path: Path) -> None:
    found = warnings_at(lab(tmp_path))
    message = found["lxc_configs.905.enable_lifecycle_snapshots"]
    assert "not taken on Proxmox" in message
    assert "'lifecycle_snapshots_detach_bind_mounts': true" in message
    assert "For snapshots, use volumes instead of bind mounts" in message


def test_with_the_switch_validate_is_quiet(tmp_path: Path) -> None:
    found = warnings_at(lab(tmp_path, lifecycle_snapshots_detach_bind_mounts=True))
    assert not [k for k in found if k.startswith("lxc_configs.905")]


def test_the_switch_without_lifecycle_snapshots_does_nothing_and_says_so(tmp_path: Path) -> None:
    etc = lab(
        tmp_path, enable_lifecycle_snapshots=False, lifecycle_snapshots_detach_bind_mounts=True
    )
    message = warnings_at(etc)["lxc_configs.905.lifecycle_snapshots_detach_bind_mounts"]
    assert "has no effect" in message and "'enable_lifecycle_snapshots': true" in message


def test_the_switch_is_a_boolean_in_the_schema(tmp_path: Path) -> None:
    from phoenix.inventory.schema import inventory_schema

    guest = inventory_schema("lxc")["$defs"]["LxcGuest"]["properties"]
    assert guest["lifecycle_snapshots_detach_bind_mounts"]["type"] == "boolean"
    etc = lab(tmp_path, lifecycle_snapshots_detach_bind_mounts="yes")
    inventory, problems = validate_config_dir(etc, driver="proxmox")
    assert inventory is None
    assert any(p.path == "lxc_configs.905.lifecycle_snapshots_detach_bind_mounts" for p in problems)


def snapshot_steps(inventory: Inventory, node: FakeNode) -> list[Snapshot]:
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    the_plan = Planner(inventory, driver, PlanOptions(persist_secrets=False)).plan()
    return [s for g in the_plan.guests for s in g.steps if isinstance(s, Snapshot)]


def test_the_plan_takes_lifecycle_snapshots_with_the_bind_mounts_detached(
    tmp_path: Path, node: FakeNode
) -> None:
    assert snapshot_steps(load_inventory(lab(tmp_path)), node) == []
    inventory = load_inventory(lab(tmp_path, lifecycle_snapshots_detach_bind_mounts=True))
    steps = snapshot_steps(inventory, node)
    assert [(s.snapshot, s.detach_bind_mounts) for s in steps] == [("final-form", True)]
    assert steps[0].detail == "snapshot final-form (stopped, bind mounts detached)"
    assert steps[0].to_json()["detach_bind_mounts"] is True


# -- converge, killed and run again --------------------------------------------------------


def run_converge(inventory: Inventory, runner: Any) -> CollectingReporter:
    state = inventory.state_dir
    driver = ProxmoxDriver(
        runner, "localhost", sleep=lambda _: None, detached=DetachedBinds.in_state_dir(state)
    )
    reporter = CollectingReporter()
    outcome = converge(
        inventory, driver, options=PlanOptions(persist_secrets=False), reporter=reporter, parallel=1
    )
    assert outcome.result.ok, outcome.result.failed
    return reporter


@pytest.mark.parametrize("dies_at", [("pct", "snapshot"), ("pct", "set", "905", "--mp0")])
def test_a_converge_killed_mid_snapshot_resumes_first_thing_on_the_next_run(
    tmp_path: Path, node: FakeNode, dies_at: tuple[str, ...]
) -> None:
    inventory = load_inventory(lab(tmp_path, lifecycle_snapshots_detach_bind_mounts=True))
    with pytest.raises(Killed):
        run_converge(inventory, Crashing(node, dies_at))
    record = inventory.state_dir / RECORD_NAME
    detached = json.loads(record.read_text())["localhost/905"]["mp0"]
    assert "mp0" not in mount_lines(node, 905)

    start = len(node.calls)
    reporter = run_converge(inventory, node)
    first = next(c for c in node.calls[start:] if c[0] == "pct")
    assert first == ("pct", "set", "905", "--mp0", detached)  # before anything else
    resumed = [e for e in reporter.events if e.kind == "resume"]
    assert [(e.ctid, e.message) for e in resumed][:1] == [
        (905, "mp0 detached for a snapshot by an interrupted run: put back")
    ]
    assert mount_lines(node, 905)["mp0"] == detached
    assert "final-form" in node.need(905).sections and 905 in node.running
    assert "mp0" not in mount_lines(node, 905, "final-form")
    assert json.loads(record.read_text()) == {}
    node.calls.clear()
    run_converge(inventory, node)  # converged: nothing changes
    assert node.mutations() == []


def test_a_cluster_puts_back_on_each_guests_node_and_waits_for_one_that_is_down(
    tmp_path: Path,
) -> None:
    cluster = FakeCluster(tmp_path / "cluster")
    record = DetachedBinds.in_state_dir(tmp_path / "state")

    def driver() -> ClusterDriver:  # a new Phoenix process: the cluster read anew
        nodes = {
            name: ProxmoxDriver(cluster.runner(name), name, sleep=lambda _: None, detached=record)
            for name in cluster.names
        }
        return ClusterDriver(nodes, {905: "pve2", 906: "pve3"}, "pve1")

    lines = {}
    for ctid, name in ((905, "pve2"), (906, "pve3")):
        node = cluster.nodes[name]
        node.path("/srv/models").mkdir(parents=True)
        driver().create(ctid, TEMPLATE, dataclasses.replace(BASE, mounts=(BIND,)))
        lines[ctid] = mount_lines(node, ctid)
        record.put(name, ctid, lines[ctid])  # as a run killed after its --delete left it
        node.dispatch(["pct", "set", str(ctid), "--delete", "mp0"])
    cluster.down.add("pve3")
    assert driver().resume_detached() == [(905, ("mp0",))]
    assert ("pct", "set", "905", "--mp0", lines[905]["mp0"]) in cluster.nodes["pve2"].calls
    assert mount_lines(cluster.nodes["pve2"], 905) == lines[905]
    assert list(record.of_node("pve3")) == [906]  # kept until its node is back
    cluster.down.clear()
    assert driver().resume_detached() == [(906, ("mp0",))]
    assert mount_lines(cluster.nodes["pve3"], 906) == lines[906]


def test_doctor_names_what_a_killed_run_left_detached(tmp_path: Path) -> None:
    record = DetachedBinds.in_state_dir(tmp_path)
    assert doctor_check(record).ok
    record.put("pve2", 905, {"mp0": "/srv/models,mp=/models"})
    found = doctor_check(record)
    assert not found.ok and "guest 905 on pve2: mp0: /srv/models,mp=/models" in found.detail
    assert "phoenix converge" in found.fix
    assert record.path is not None
    record.path.write_text("[]")
    assert not doctor_check(record).ok


class RefusingDelete:
    """A node that refuses the `--delete` (a backup took its lock in between)."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        if "--delete" in argv:
            return CommandResult(255, "", "CT is locked (backup)\n", tuple(argv))
        return self.node.run(argv, input=input, env=env, timeout=timeout)


def test_a_refused_detach_leaves_the_guest_running_and_no_record(node: FakeNode) -> None:
    made_running(node)
    before = mount_lines(node, 900)
    driver = ProxmoxDriver(RefusingDelete(node), "localhost", sleep=lambda _: None)
    with pytest.raises(PhoenixError, match="locked"):
        driver.snapshot_without_bind_mounts(900, "final-form")
    assert mount_lines(node, 900) == before and 900 in node.running
    assert driver.detached.of_node("localhost") == {}

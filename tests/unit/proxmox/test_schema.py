"""The contract the Proxmox driver is held to: every command it can emit is valid for the
Proxmox VE API schema of the node's version (8.4 and 9.1, tests/fixtures/pve/).

Commands come from: the golden steps of the seed inventory, the offline plans of both real
inventories (every guest), and a fake node driven through creation, drift, adoption, clone,
resize, snapshot, template, exec/push and destroy. Offline, a MAC Proxmox has not assigned
yet prints as `<MAC of N>`; it is replaced by a MAC of the same shape a node would assign
before checking.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers.base import FirewallRule, GuestSettings, MountSettings, NetSettings
from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.preview import Preview
from phoenix.errors import PlanError
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.desired import desired_settings
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import PlanPreview
from tests.conftest import shared_fixture
from tests.unit.proxmox import apischema
from tests.unit.proxmox.apischema import VERSIONS, check_argv, check_fw_file
from tests.unit.proxmox.conftest import data
from tests.unit.proxmox.fakenode import FakeNode

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
PLACEHOLDER = re.compile(r"<MAC of \d+>")
ASSIGNED_MAC = "BC:24:11:0A:0B:0C"
# Every pct verb and pvesh path the driver's builders can produce: the commands gathered
# below must cover them all (a new builder without a scenario here fails the test).
PCT_VERBS = {
    "create", "set", "clone", "resize", "snapshot", "template", "start", "shutdown",
    "destroy", "exec", "mount", "unmount",
}  # fmt: skip
PVESH_PATHS = {"config", "status/current", "snapshot", "interfaces", "version"}


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def real_inventory(name: str, tmp: Path) -> Inventory:
    """A real fixture with a derived gateway (the hand-written nginx sites do not pass
    `nginx -t`, which would stop 101's recording before its driver commands)."""
    etc = tmp / name
    shutil.copytree(shared_fixture(name), etc)
    shutil.rmtree(etc / "nginx", ignore_errors=True)  # the newest fixture has none
    return load_inventory(etc)


def offline_plan(inventory: Inventory, version: str, stopped: list[str] | None = None) -> Preview:
    """What `plan --offline --commands` lists for the whole inventory. A step whose recipe
    Phoenix lacks (the fixtures' `nvidia`, `vllm`...) lists nothing and is added to
    `stopped` as `CTID step: reason`; every later step, of that guest and the others, is
    still listed and checked. The builders refuse nothing else."""
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan(None)
    walker = PlanPreview(Preview(version_tuple(version)))
    for guest in plan.guests:
        for step in guest.steps:
            try:
                walker.step(step)
            except PlanError as exc:
                # a missing recipe (the original tool deleted some), or a built-in one's
                # missing keys (guest 917 has no llamacpp_sha256/llamacpp_model)
                text = str(exc)
                assert (
                    "has no recipe" in text
                    or "not found in" in text
                    or " needs " in text
                    or "cloud image on the node" in text  # a VM of the base image
                )
                if stopped is not None:
                    stopped.append(f"{guest.ctid} {type(step).__name__}: {text}")
    return walker.preview


def test_steps_after_a_missing_recipe_are_still_checked(tmp_path: Path) -> None:
    """A guest whose first feature has no recipe: its later feature, its snapshot and the
    next guest's commands are all listed (and so checked against the schema)."""
    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), etc)
    shutil.rmtree(etc / "nginx")
    lxc = etc / "phoenix_lxc_configs.json"
    data = json.loads(lxc.read_text())
    template = next(
        ctid for ctid, g in data["lxc_configs"].items() if g.get("template_snapshot_name")
    )
    data["lxc_configs"][template]["features"] = ["no_such_feature", "base_setup"]
    lxc.write_text(json.dumps(data))
    stopped: list[str] = []
    preview = offline_plan(load_inventory(etc), VERSIONS[-1], stopped)
    assert [s.split(":")[0] for s in stopped if s.startswith(template)] == [
        f"{template} Unrunnable"
    ]
    argvs = [c.argv for c in preview.commands]
    name = data["lxc_configs"][template]["template_snapshot_name"]
    snapshot = argvs.index(("pct", "snapshot", template, name))
    base_setup = [
        i for i, a in enumerate(argvs) if a[2] == template and "phoenix-feature-base_setup" in a
    ]
    assert base_setup and max(base_setup) < snapshot  # the feature after the missing one ran
    assert any(a[:2] == ("pct", "clone") for a in argvs[snapshot:])  # and the clones after it


def settings(**changes: object) -> GuestSettings:
    base = GuestSettings(
        hostname="web-1",
        memory_mb=2048,
        swap_mb=512,
        cores=2,
        disk_gb=8,
        storage="local-zfs",
        unprivileged=True,
        net=NetSettings("eth0", "vmbr0", "10.0.0.9/24", "10.0.0.1"),
        features=(("keyctl", "1"), ("nesting", "1")),
        raw_lxc=(("lxc.mount.auto", "sys:rw"),),
        apparmor_profile="unconfined",
        onboot=True,
        boot_order=2,
        boot_delay=5,
        firewall_enabled=True,
        firewall_rules=(
            FirewallRule("in", "ACCEPT", source="10.0.0.153", proto="tcp", port="8000:8010"),
            FirewallRule("in", "DROP", proto="udp", port="53"),
        ),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


MOUNTS = (
    MountSettings("/models", host_path="/srv/models", read_only=True, owner_uid=1000),
    MountSettings("/var/lib/data", pool="local-zfs", size_gb=10),
)


def fake_node_commands(root: Path, version: str) -> tuple[list[tuple[str, ...]], list[str]]:
    """Drive a fake node of `version` through every driver operation; its commands and the
    .fw files it ended with."""
    node = FakeNode(root, version=f"{version}.0")
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"):
        node.add_device(f"/dev/{name}")
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None)
    wanted = settings()
    driver.create(900, TEMPLATE, dataclasses.replace(wanted, net=None, firewall_enabled=False))
    driver.start(900)
    driver.snapshot(900, "final-form")
    driver.clone(900, 101, "final-form", dataclasses.replace(wanted, disk_gb=16))
    driver.start(101)
    driver.exec(101, ["sh", "-c", "true"], env={"A": "b"})
    # drift: every managed option differs, features and NIC removed, raw keys changed
    drifted = dataclasses.replace(
        wanted, memory_mb=4096, cores=4, features=(), net=None, onboot=False, disk_gb=16,
        raw_lxc=(("lxc.cgroup2.devices.allow", "c 195:* rwm"),), firewall_enabled=False,
        mounts=MOUNTS, gpus=(0, 1),
    )  # fmt: skip
    seen = driver.observe(101)
    assert seen.settings is not None
    driver.configure(101, drifted, frozenset(drifted.diff(seen.settings)))
    driver.resize(101, 20)
    # mounts and GPUs change: a volume grows and turns read-only, a bind mount and a GPU go
    seen = driver.observe(101)
    assert seen.settings is not None
    volume = dataclasses.replace(MOUNTS[1], size_gb=12, read_only=True)
    later = dataclasses.replace(drifted, mounts=(volume,), gpus=(1,))
    driver.configure(101, later, frozenset(later.diff(seen.settings)))
    # under HA: stop and start go through the HA manager's API
    node.ha[101] = "started"
    driver.stop(101)
    driver.start(101)
    driver.stop(101)
    del node.ha[101]
    driver.stop(900)
    # a guest without snapshots becomes a template (pct template refuses one with them)
    driver.create(902, TEMPLATE, dataclasses.replace(wanted, net=None, firewall_enabled=False))
    driver.mark_template(902)
    # adoption of a guest made by the original tool
    node.put_conf(950, data("conf_950_original_tool.conf"))
    node.storages["quickOS-lxc-disks"] = "zfspool"
    adopt = dataclasses.replace(wanted, hostname="vllm-qwen2.5-7b-awq", disk_gb=128)
    adopt = dataclasses.replace(adopt, storage="quickOS-lxc-disks", gpus=(1,))
    seen = driver.observe(950)
    assert seen.settings is not None
    driver.configure(950, adopt, frozenset(adopt.diff(seen.settings)))
    # adoption of a VLAN guest with a custom .fw: the merged net0 and edited file are checked
    node.put_conf(960, data("conf_960_vlan_gpu_bind.conf"))
    node.path("/etc/pve/firewall/960.fw").write_text(data("fw_960_custom.fw"))
    vlan = dataclasses.replace(wanted, hostname="llm", disk_gb=40, memory_mb=12288, features=())
    seen = driver.observe(960)
    assert seen.settings is not None
    driver.configure(960, vlan, frozenset(vlan.diff(seen.settings)))
    # lifecycle snapshots of a guest with a bind mount, detached for them (bindsnap)
    node.path("/srv/models").mkdir(parents=True, exist_ok=True)
    bound = (MountSettings("/models", host_path="/srv/models"),)
    driver.create(903, TEMPLATE, dataclasses.replace(wanted, net=None, mounts=bound))
    driver.start(903)
    driver.snapshot_without_bind_mounts(903, "final-form")
    # a forced delete of a protected HA guest: out of HA, protection cleared, destroyed
    node.ha[101] = "started"
    node.put_conf(101, node.conf_text(101) + "protection: 1\n")
    driver.force_destroy(101)
    # 960's .fw holds the administrator's ipsets, groups and macros beside Phoenix's lines,
    # which the checker does not model: only files Phoenix wrote whole are returned.
    fw_files = [
        p.read_text() for p in node.path("/etc/pve/firewall").glob("*.fw") if p.stem != "960"
    ]
    return node.calls, fw_files


def golden_commands(seed: Inventory, version: str) -> Preview:
    s900, s101 = desired_settings(seed, 900), desired_settings(seed, 101)
    preview = Preview(version_tuple(version))
    preview.create(900, seed.guests[900].template or "", s900)
    preview.snapshot(900, "final-form")
    preview.clone(900, 101, "final-form", s101)
    preview.start(101)
    preview.stop(101, timeout=30)
    preview.create(902, seed.guests[900].template or "", s900)
    preview.mark_template(902)  # one without snapshots: pct template refuses those
    bound = (MountSettings("/models", host_path="/srv/models"),)
    preview.create(903, seed.guests[900].template or "", dataclasses.replace(s900, mounts=bound))
    preview.snapshot_without_bind_mounts(903, "final-form")  # bind mounts detached for it
    preview.destroy(101)
    return preview


def every_guest(inventory: Inventory, version: str) -> Preview:
    """The builders called for every guest of an inventory, each on its own: its create or
    clone (with the settings applied), snapshot or template, start and stop."""
    preview = Preview(version_tuple(version))
    for ctid, guest in sorted(inventory.guests.items()):
        wanted = desired_settings(inventory, ctid)
        source = guest.clone_from_ctid
        if source is not None:
            snapshot = inventory.guests[source].template_snapshot_name
            preview.clone(source, ctid, snapshot, wanted)
        else:
            preview.create(ctid, guest.template or TEMPLATE, wanted)
        preview.start(ctid)
        if guest.template_snapshot_name:
            preview.snapshot(ctid, guest.template_snapshot_name)
        preview.stop(ctid)
        if guest.is_template:
            preview.mark_template(ctid)
    return preview


def gathered(version: str, tmp: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(origin, argv) of every command for `version`, placeholders resolved."""
    seed = real_inventory("phoenix-etc-seed", tmp)
    for origin, driver in (
        ("golden", golden_commands(seed, version)),
        ("offline seed", offline_plan(seed, version)),
        (
            "offline 2025-10-03",
            offline_plan(real_inventory("phoenix-etc-2025-10-03", tmp), version),
        ),
        ("every seed guest", every_guest(seed, version)),
        (
            "every 2025-10-03 guest",
            every_guest(real_inventory("phoenix-etc-2025-10-03", tmp / "b"), version),
        ),
        # id_maps pass-throughs, templates asked for snapshots, a clone smaller than its
        # source: the original tool's newest forms, as a fresh node gets them.
        ("offline newest", offline_plan(real_inventory("phoenix-etc-newest", tmp / "n"), version)),
    ):
        for command in driver.commands:
            yield origin, tuple(PLACEHOLDER.sub(ASSIGNED_MAC, a) for a in command.argv)
    calls, _ = fake_node_commands(tmp / "node", version)
    for argv in calls:
        yield "fake node", argv


@pytest.mark.parametrize("version", VERSIONS)
def test_every_command_is_valid_for_the_version(version: str, tmp_path: Path) -> None:
    problems: list[str] = []
    unchecked: set[str] = set()
    verbs: set[str] = set()
    paths: set[str] = set()
    count = 0
    for origin, argv in gathered(version, tmp_path):
        report = check_argv(version, list(argv))
        problems += [f"[{origin}] {p}" for p in report.problems]
        unchecked |= report.unchecked
        count += 1
        if argv[0] == "pct":
            verbs.add(argv[1])
        if argv[0] == "pvesh":
            path = argv[2]
            paths.add("version" if path == "/version" else "/".join(path.split("/")[5:]))
    assert problems == []
    assert unchecked == set(), "named formats the checker does not know yet"
    assert verbs == PCT_VERBS
    assert paths >= PVESH_PATHS
    assert count > 200


@pytest.mark.parametrize("version", VERSIONS)
def test_every_firewall_file_is_valid_for_the_version(version: str, tmp_path: Path) -> None:
    seed = real_inventory("phoenix-etc-2025-10-03", tmp_path)
    texts = [
        c.content
        for c in every_guest(seed, version).commands
        if c.content is not None and str(c.path).endswith(".fw")
    ]
    texts += fake_node_commands(tmp_path / "node", version)[1]
    assert len(texts) >= 4
    for text in texts:
        report = check_fw_file(version, text)
        assert report.problems == [] and report.unchecked == set(), text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["pct", "set", "101", "--memroy", "512"], "has no 'memroy'"),
        (["pct", "set", "101", "--net0", "name=eth0,hwaddr=<MAC of 101>"], "mac-addr"),
        (["pct", "set", "101", "--net0", "bridge=vmbr0"], "required key 'name'"),
        (["pct", "set", "101", "--startup", "order=1,up=x"], "pve-startup-order"),
        (["pct", "set", "101", "--features", "nesting=1,gpu=1"], "key 'gpu'"),
        (["pct", "set", "101", "--delete", "mp0,bogus"], "unknown options ['bogus']"),
        (["pct", "set", "101", "--cores", "0"], "minimum"),
        (["pct", "resize", "101", "rootfs", "32GB"], "does not match"),
        (["pct", "snapshot", "101", "x" * 41], "longer than 40"),
        (["pct", "create", "101", "--hostname", "a"], "missing positional"),
        (["pct", "clone", "101", "99"], "99 < minimum 100"),
        (["pct", "shutdown", "101", "--forceStop", "maybe"], "not a boolean"),
        (["pvesh", "get", "/nodes/pve/lxc/101/nope", "--output-format", "json"], "no path"),
        (
            ["pvesh", "get", "/nodes/pve/network", "--type", "wifi", "--output-format", "json"],
            "not one of",
        ),
    ],
)
def test_the_checker_rejects_invalid_commands(argv: list[str], says: str) -> None:
    problems = " | ".join(check_argv("9.1", argv).problems)
    assert says in problems


def test_the_checker_rejects_invalid_firewall_files() -> None:
    bad = "[OPTIONS]\nenable: 1\npolicy_in: BLOCK\n[RULES]\nIN ACCEPT -p tcp -dport 8000-8010\n"
    problems = " | ".join(check_fw_file("9.1", bad).problems)
    assert "'BLOCK' not one of" in problems and "pve-fw-dport-spec" in problems


def test_versions_differ_where_phoenix_adapts() -> None:
    """The schemas themselves: what a command may use differs between the versions."""
    env_84 = apischema.endpoint("8.4", "/nodes/{node}/lxc/{vmid}/config", "PUT")
    env_91 = apischema.endpoint("9.1", "/nodes/{node}/lxc/{vmid}/config", "PUT")
    assert env_84 is not None and env_91 is not None
    assert "env" not in env_84["properties"] and "env" in env_91["properties"]


def test_fixture_copies_are_the_reference(tmp_path: Path) -> None:
    """The gzipped schemas decompress to JSON trees with the container endpoints."""
    for version in VERSIONS:
        assert apischema.endpoint(version, "/nodes/{node}/lxc", "POST") is not None
    shutil.rmtree(tmp_path)

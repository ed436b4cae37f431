"""A run and its offline preview emit the same commands: every fixture inventory's plan,
step by step, through the Proxmox driver on a fake node and through the preview (both call
`configure_commands`). Only what a preview cannot know is set aside, each named below: the
MAC a node draws (`<MAC of N>` offline) and the lines of a guest's conf that `pct create`
wrote (offline a conf write shows only Phoenix's raw keys, unchecked against a digest).
In-guest steps (health checks, recipes) are not compared: they act on a running guest."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers import gpu
from phoenix.drivers.base import Driver
from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.proxmox import conffile, files
from phoenix.drivers.proxmox.configure_commands import Command
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.preview import Preview
from phoenix.drivers.proxmox.preview_node import mac_placeholder
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.drivers.split import SplitDriver
from phoenix.inventory import load_inventory
from phoenix.plan.dispatch import lifecycle
from phoenix.plan.model import Clone, Create, Plan, Unrunnable
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.runners.base import CommandResult, Stdin, stdin_bytes
from tests.conftest import shared_fixture
from tests.unit.proxmox.fakenode import FakeNode
from tests.unit.proxmox.fakeqemu import image

FIXTURES = ["phoenix-etc-seed", "phoenix-etc-2025-10-03", "phoenix-etc-newest"]
VERSIONS = {"8.4": "8.4.1", "9.1": "9.1.3"}
_DRAWN_MAC = re.compile(r"hwaddr=BC:24:11:[0-9A-F:]{8}")
_CONF = re.compile(r"^/etc/pve/lxc/(\d+)\.conf$")


def fixture_plan(name: str, tmp: Path) -> Plan:
    etc = tmp / name
    shutil.copytree(shared_fixture(name), etc)
    shutil.rmtree(etc / "nginx", ignore_errors=True)  # hand-written sites: not what is compared
    inventory = load_inventory(etc)
    return Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan(None)


def node_for(plan: Plan, root: Path, version: str) -> FakeNode:
    """A fresh node with the plan's storages and every GPU device node."""
    pools: set[str] = set()
    for guest in plan.guests:
        for step in guest.steps:
            settings = getattr(step, "settings", None)
            if settings is not None:
                pools.add(settings.storage)
                pools |= {m.pool for m in settings.mounts if m.pool}
    node = FakeNode(root, version=version, storages=dict.fromkeys(pools, "zfspool"))
    for guest in plan.guests:  # the VMs' images, on the node
        for step in guest.steps:
            if guest.kind == "vm" and isinstance(step, Create) and step.template:
                image(node.root, step.template)
    for path in gpu.device_paths(tuple(range(8))):
        node.add_device(path)
    return node


def comparable(command: Command, offline: bool) -> tuple[object, ...]:
    """The command with what only a node knows set aside (see the module docstring)."""
    argv = list(command.argv)
    if argv[:2] == ["pct", "set"]:
        argv = [_DRAWN_MAC.sub(f"hwaddr={mac_placeholder(int(argv[2]))}", a) for a in argv]
    conf = _CONF.match(command.path or "")
    if conf is None:
        return (*argv, command.content)
    writer = argv.index(files.WRITER)
    argv[writer + 2] = "<digest>"  # the conf as `pct create` wrote it is not known offline
    content = command.content or ""
    raw = (
        content
        if offline
        else "".join(f"{k}: {v}\n" for k, v in conffile.main_section_raw(content))
    )
    return (*argv, raw)


class Recording:
    """The fake node, keeping each mutating command with what it was sent on stdin."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.ran: list[Command] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        result = self.node.run(argv, input=input, env=env, timeout=timeout)
        args = tuple(argv)
        if _mutating(args):
            content = None if input is None else stdin_bytes(input).decode()
            self.ran.append(Command(args, _written_path(args), content))
        return result


def run_and_preview(
    plan: Plan, node: FakeNode, version: tuple[int, int]
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every lifecycle step of the plan through the driver and through the preview."""
    recording = Recording(node)
    vm_ids = frozenset(g.ctid for g in plan.guests if g.kind == "vm")
    driver = SplitDriver(
        cast(Driver, ProxmoxDriver(recording, "pve", sleep=lambda _: None)),
        cast(Driver, ProxmoxVmDriver(recording, "localhost", sleep=lambda _: None)),
        vm_ids,
    )
    preview = Preview(version)
    blocked: set[int] = set()  # guests stopped at a step that cannot run (no recipe)
    for guest in plan.guests:
        for step in guest.steps:
            if isinstance(step, Unrunnable) or (isinstance(step, Clone) and step.source in blocked):
                blocked.add(guest.ctid)  # the executor fails it, and its clones after it
                break
            lifecycle(driver, step)
            lifecycle(preview, step)
    ran = [comparable(c, offline=False) for c in recording.ran]
    shown = [comparable(c, offline=True) for c in preview.commands if _mutating(c.argv)]
    return ran, shown


def _mutating(argv: tuple[str, ...]) -> bool:
    if argv[:2] == ("pvesh", "set"):
        return True  # a VM's config
    readers = ("pvesh", "cat", "test", "pveversion")
    return argv[0] not in readers and argv[:2] not in (("pct", "exec"), ("qm", "guest"))


def _written_path(argv: tuple[str, ...]) -> str | None:
    return argv[argv.index(files.WRITER) + 1] if files.WRITER in argv else None


@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("fixture", FIXTURES)
def test_a_run_emits_the_commands_its_preview_shows(
    fixture: str, version: str, tmp_path: Path
) -> None:
    plan = fixture_plan(fixture, tmp_path)
    node = node_for(plan, tmp_path / "node", VERSIONS[version])
    major, minor = map(int, version.split("."))
    ran, shown = run_and_preview(plan, node, (major, minor))
    assert len(ran) > 20
    assert ran == shown

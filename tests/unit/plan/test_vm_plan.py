"""VMs planned and converged in the same graph as containers, on fake backends behind the
`SplitDriver` (the real QEMU path is tests/e2e/test_qemu_vms.py): step order per VM,
dependencies and boot order across both kinds, a converged lab re-planned with nothing to
do, features a VM lacks refused when planning, and an interrupted create resumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.base import Driver, FirewallRule, GuestSettings
from phoenix.drivers.fake import FakeDriver
from phoenix.drivers.split import SplitDriver
from phoenix.errors import PlanError
from phoenix.plan.desired import desired_settings
from phoenix.plan.journal import Journal
from phoenix.plan.planner import PlanOptions, plan
from phoenix.plan.run import power_plan, run_plan
from phoenix.recipes import runner
from phoenix.runners.base import CommandResult
from tests.unit.plan.conftest import Lab, guest

VM_FILE = "phoenix_vm_configs.json"


class FakeVms(FakeDriver):
    """The VM contract's differences from a container's (`VmConfig`): marking a running
    VM a template cleans cloud-init inside and shuts it down first."""

    def mark_template(self, ctid: int) -> None:
        if self._guest(ctid).state == "running":
            self.exec(ctid, ["cloud-init", "clean", "--logs"])
            self.stop(ctid)
        super().mark_template(ctid)


def vm(vmid: int, name: str, octet: int, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "vmid": vmid,
        "name": name,
        "cores": 2,
        "memory_mb": 1024,
        "disk_size_gb": 6,
        "network_config": {"ip": f"10.250.0.{octet}/24", "gw": "10.250.0.1"},
        "user_config": {"username": "phx", "ssh_authorized_keys": ["ssh-ed25519 AAAA k"]},
    }
    entry.update(extra)
    return entry


def vm_lab() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """A template VM, its linked clone with docker and snapshots, a container that needs
    the clone, and a container the template needs (a VM may depend on a container)."""
    containers = {
        "120": guest("phxt-db", 20, boot_order=1),
        "121": guest("phxt-web", 21, dependencies=[9101], boot_order=3),
    }
    vms = [
        vm(9100, "phxt-vmtpl", 40, is_template=True, features=["base_setup"], dependencies=[120]),
        vm(
            9101,
            "phxt-vm",
            41,
            clone_from_vmid=9100,
            features=["base_setup", "docker"],
            boot_order=2,
            snapshots={"pre_features": "pre", "post_features": "post"},
            health_check={"command": "docker info", "retries": 1, "interval_seconds": 1},
        ),
    ]
    return containers, vms


class VmLab(Lab):
    def __init__(self, root: Path) -> None:
        containers, self.vms = vm_lab()
        super().__init__(root, containers)
        self.lxc = self.driver
        self.vm_backend = FakeVms(runner)
        self.write_vms(self.vms)
        ids = frozenset(v["vmid"] for v in self.vms)
        self.split = SplitDriver(self.lxc, self.vm_backend, ids)
        self.driver = self.split  # type: ignore[assignment]

    def write_vms(self, vms: list[dict[str, Any]]) -> None:
        data = {"vm_defaults": {"network_bridge": "phxtbr0"}, "vms": vms}
        (self.etc / VM_FILE).write_text(json.dumps(data))


@pytest.fixture
def vm_lab_dir(tmp_path: Path) -> VmLab:
    return VmLab(tmp_path)


def _kinds(lab: VmLab, ctid: int) -> list[str]:
    the_plan = plan(lab.inventory, lab.split, None, PlanOptions())
    return [s.kind for s in the_plan.guest(ctid).steps]


def test_vms_are_planned_in_one_graph_with_the_containers(vm_lab_dir: VmLab) -> None:
    the_plan = plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions())
    order = [g.ctid for g in the_plan.guests]
    assert order.index(120) < order.index(9100) < order.index(9101) < order.index(121)
    assert the_plan.guest(9101).needs == (9100,) and the_plan.guest(121).needs == (9101,)
    assert the_plan.guest(9101).kind == "vm" and the_plan.guest(121).kind == "container"
    # boot_order (then id) across both kinds: 9100 (0), 120 (1), 9101 (2), 121 (3)
    assert list(the_plan.start_order) == [9100, 120, 9101, 121]
    template = [s.describe() for s in the_plan.guest(9100).steps]
    assert template == [
        "create from Phoenix's Debian base image",
        "start (until the guest agent answers and cloud-init is done)",
        "feature base_setup (unless already applied)",
        "mark as template (cloud-init cleaned, shut down)",
    ]
    clone = the_plan.guest(9101).steps
    assert [s.kind for s in clone] == [
        "clone",
        "start",
        "snapshot",
        "feature",
        "feature",
        "health_check",
        "snapshot",
    ]
    assert clone[0].detail == "linked clone of template 9100"
    assert [getattr(s, "snapshot", None) for s in clone if s.kind == "snapshot"] == ["pre", "post"]


def test_a_vms_settings_carry_its_cloud_init_and_a_mac_from_its_id(vm_lab_dir: VmLab) -> None:
    the_plan = plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions())
    make = the_plan.guest(9101).steps[0]
    settings: GuestSettings = make.settings  # type: ignore[union-attr]
    assert settings.vm is not None and settings.vm.username == "phx"
    assert settings.net is not None and settings.net.mac == "52:54:00:00:23:8D"
    assert settings.net.bridge == "phxtbr0" and settings.disk_gb == 6
    template = the_plan.guest(9100).steps[0].settings  # type: ignore[union-attr]
    assert template.disk_gb == 0  # a template keeps its image's size


def test_converge_runs_vms_on_their_backend_and_a_rerun_changes_nothing(
    vm_lab_dir: VmLab,
) -> None:
    outcome = vm_lab_dir.converge()
    assert outcome.result.ok, outcome.result.failed
    lxc, vms = vm_lab_dir.lxc, vm_lab_dir.vm_backend
    assert set(lxc.guests) == {120, 121} and set(vms.guests) == {9100, 9101}
    assert vms.guests[9100].is_template and vms.guests[9100].state == "stopped"
    assert vms.guests[9101].state == "running"
    assert set(vms.guests[9101].snapshots) == {"pre", "post"}
    assert ["cloud-init", "clean", "--logs"] in [list(a) for k, a in vms.log.entries]
    # the container that needs the VM started after the VM was converged
    starts = [(e.op, e.ctid) for e in lxc.timeline + vms.timeline if e.op == "start"]
    timeline = sorted(lxc.timeline + vms.timeline, key=lambda e: e.start)
    done_9101 = max(e.end for e in timeline if e.ctid == 9101)
    start_121 = next(e.start for e in timeline if e.ctid == 121 and e.op == "start")
    assert ("start", 121) in starts and start_121 >= done_9101
    again = vm_lab_dir.mutations_during(lambda: vm_lab_dir.converge())
    assert again == []
    assert plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions()).up_to_date


def test_changed_cores_and_a_bigger_disk_are_a_configure_and_a_resize(vm_lab_dir: VmLab) -> None:
    assert vm_lab_dir.converge().result.ok
    vms = vm_lab_dir.vms
    vms[1] = {**vms[1], "cores": 4, "disk_size_gb": 10}
    vm_lab_dir.write_vms(vms)
    the_plan = plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions())
    steps = the_plan.guest(9101).steps
    assert [s.detail for s in steps] == ["configure cores: 2 -> 4", "resize disk 6 -> 10 GB"]
    assert the_plan.guest(9100).up_to_date  # the template keeps its image's size
    vms[1] = {**vms[1], "disk_size_gb": 4}
    vm_lab_dir.write_vms(vms)
    with pytest.raises(PlanError, match=r"VM 9101 \(phxt-vm\): disk_size_gb 6 -> 4 would shrink"):
        plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions())


def test_features_a_vm_lacks_are_refused_when_planning(vm_lab_dir: VmLab) -> None:
    vms = vm_lab_dir.vms
    vms[1] = {**vms[1], "features": ["base_setup", "nvidia"]}
    vm_lab_dir.write_vms(vms)
    with pytest.raises(PlanError, match=r"VM 9101 \(phxt-vm\): feature 'nvidia' installs"):
        plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions())
    assert vm_lab_dir.vm_backend.log.mutations() == []  # nothing was done


def test_a_create_interrupted_by_a_crash_is_destroyed_and_made_again(vm_lab_dir: VmLab) -> None:
    vm_lab_dir.converge([120])
    backend = vm_lab_dir.vm_backend
    the_plan = plan(vm_lab_dir.inventory, vm_lab_dir.split, [9100], PlanOptions())
    create = the_plan.guest(9100).steps[0]
    journal = Journal(vm_lab_dir.state)
    journal.started(create)  # the run was killed inside the create: the VM is half-made
    backend.create(9100, "", create.settings)  # type: ignore[union-attr]
    options = PlanOptions(interrupted=Journal.interrupted(vm_lab_dir.state))
    again = plan(vm_lab_dir.inventory, vm_lab_dir.split, [9100], options).guest(9100).steps
    assert [s.kind for s in again[:2]] == ["destroy", "create"]
    assert vm_lab_dir.converge([9100]).result.ok
    assert backend.guests[9100].is_template


def test_the_split_driver_sends_each_id_to_its_kinds_backend() -> None:
    lxc, vms = FakeDriver(runner), FakeVms(runner)
    split: Driver = SplitDriver(lxc, vms, frozenset({7}))
    settings = GuestSettings("g", 512, 0, 1, 4, "local", True, None)
    split.create(7, "", settings)
    split.create(8, "t.tar.zst", settings)
    split.start(7)
    assert set(vms.guests) == {7} and set(lxc.guests) == {8}
    assert split.observe(7).running and not split.observe(8).running
    assert vms.log is lxc.log  # one log: a converged re-run is checked across both kinds
    assert ("create", "7", "") in [tuple(a[:3]) for a in split.log.mutations()]


def test_a_template_with_nothing_to_run_inside_is_never_booted(vm_lab_dir: VmLab) -> None:
    vms = vm_lab_dir.vms
    vms[0] = {k: v for k, v in vms[0].items() if k != "features"}
    vm_lab_dir.write_vms(vms)
    steps = plan(vm_lab_dir.inventory, vm_lab_dir.split, None, PlanOptions()).guest(9100).steps
    assert [s.kind for s in steps] == ["create", "mark_template"]
    assert vm_lab_dir.converge().result.ok
    assert not [e for e in vm_lab_dir.vm_backend.timeline if e.ctid == 9100 and e.op == "start"]


class Killed(BaseException):
    """What kill -9 leaves: the run stops inside a step and no handler runs."""


# Every kind of VM step a converge from nothing runs, killed as it starts (before the
# backend did its part); the next converge must finish the lab unaided and the one after
# must change nothing. The real-QEMU rows are in tests/e2e/test_qemu_vms.py.
VM_CRASH_STEPS = [
    (9100, "create"),
    (9100, "start"),
    (9100, "feature"),
    (9100, "mark_template"),
    (9101, "clone"),
    (9101, "start"),
    (9101, "snapshot"),
    (9101, "feature"),
]


@pytest.mark.parametrize(("ctid", "kind"), VM_CRASH_STEPS)
def test_a_kill_at_each_vm_step_kind_resumes_unaided(
    vm_lab_dir: VmLab, ctid: int, kind: str
) -> None:
    backend = vm_lab_dir.vm_backend
    armed = [True]

    def kill(op: str, at: int) -> None:
        if armed[0] and (at, op) == (ctid, kind):
            armed[0] = False
            raise Killed(f"{kind} of {at}")

    def script(at: int, name: str, env: Any, files: Any) -> CommandResult:
        kill("feature", at)
        return CommandResult(0, "", "")

    backend.on_mutate = kill
    backend.script_handler = script
    with pytest.raises(Killed):
        vm_lab_dir.converge()
    assert not armed[0], "the kill never fired"
    assert Journal.interrupted(vm_lab_dir.state), "the killed step is not in the journal"
    assert vm_lab_dir.converge().result.ok
    assert vm_lab_dir.mutations_during(vm_lab_dir.converge) == []
    assert backend.guests[9100].is_template and backend.guests[9101].state == "running"
    assert set(backend.guests[9101].snapshots) == {"pre", "post"}


def test_power_plans_name_each_step_and_keep_each_guests_kind(vm_lab_dir: VmLab) -> None:
    """start/stop/restart/delete plans say what each step does (the journal and the
    operator read it) and keep a VM a VM across the split driver."""
    env = vm_lab_dir
    assert env.converge().result.ok

    def steps(action: str) -> list[tuple[int, str, str]]:
        the_plan = power_plan(env.inventory, env.split, [120, 9101], action)
        assert {g.ctid: g.kind for g in the_plan.guests} == {120: "container", 9101: "vm"}
        return [(g.ctid, s.kind, s.detail) for g in the_plan.guests for s in g.steps]

    assert steps("restart") == [
        (120, "stop", "stop"),
        (120, "start", "start"),
        (9101, "stop", "stop"),
        (9101, "start", "start"),
    ]
    assert steps("delete") == [(9101, "destroy", "destroy"), (120, "destroy", "destroy")]
    assert steps("stop") == [(9101, "stop", "stop"), (120, "stop", "stop")]
    stopped = run_plan(
        env.inventory, env.split, power_plan(env.inventory, env.split, [120, 9101], "stop")
    )
    assert stopped.ok
    assert steps("start") == [(120, "start", "start"), (9101, "start", "start")]
    with pytest.raises(ValueError, match="unknown action 'reboot'"):
        power_plan(env.inventory, env.split, [120], "reboot")


def test_a_vms_firewall_rules_and_boot_order_reach_its_settings(vm_lab_dir: VmLab) -> None:
    rule = {"type": "in", "action": "ACCEPT", "source": "10.250.0.21", "proto": "tcp"}
    vm_lab_dir.vms[1].update(
        boot_delay=7, firewall={"enabled": True, "rules": [{**rule, "port": "22"}]}
    )
    vm_lab_dir.write_vms(vm_lab_dir.vms)
    settings = desired_settings(vm_lab_dir.inventory, 9101)
    assert (settings.boot_order, settings.boot_delay) == (2, 7)
    assert settings.firewall_enabled
    assert settings.firewall_rules == (
        FirewallRule("in", "ACCEPT", source="10.250.0.21", proto="tcp", port="22"),
    )

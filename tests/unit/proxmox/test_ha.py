"""HA-managed and protected guests, on a fake node with an HA model: `pct start`/`pct
shutdown` of an HA guest only queue a request (pve-container `src/PVE/API2/LXC/Status.pm`)
that the HA manager carries out later (pve-ha-manager `src/PVE/HA/Manager.pm`); `pct
destroy` refuses a protected guest, an HA one without `--purge`, and a running one
(pve-container `src/PVE/API2/LXC.pm`, `destroy_vm`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import PhoenixError
from phoenix.inventory import Inventory
from phoenix.plan.dispatch import Lifecycle, lifecycle
from phoenix.plan.model import Destroy
from phoenix.plan.run import power_plan, run_plan
from tests.unit.proxmox.fakenode import FakeNode

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
BASE = GuestSettings("b", 512, 512, 1, 8, "local-zfs", True, None)


class SlowHa(FakeNode):
    """An HA manager that needs two status polls to act (a real CRM round takes seconds)."""

    polls: int = 0

    def _ha_manager(self, ctid: int) -> None:
        self.polls += 1
        if self.polls % 3 == 0:
            super()._ha_manager(ctid)


def node_with_guest(tmp_path: Path, ha_state: str | None, slow: bool = True) -> FakeNode:
    node = (SlowHa if slow else FakeNode)(tmp_path / "node")
    ProxmoxDriver(node, "localhost", sleep=lambda _: None).create(100, TEMPLATE, BASE)
    node.running.add(100)
    if ha_state is not None:
        node.ha[100] = ha_state
    node.calls.clear()  # what each test does, not the setup
    return node


def driver_on(node: FakeNode) -> ProxmoxDriver:
    return ProxmoxDriver(node, "localhost", sleep=lambda _: None)


def test_a_restart_of_an_ha_guest_waits_for_ha_and_leaves_it_running(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, "started")
    driver = driver_on(node)
    driver.configure(
        100, dataclasses.replace(BASE, features=(("nesting", "1"),)), frozenset({"features"})
    )
    assert 100 in node.running and node.ha[100] == "started"
    asked = [c for c in node.calls if c[:2] == ("pvesh", "set")]
    assert [c[-1] for c in asked] == ["stopped", "started"]
    assert not any(c[:2] in {("pct", "start"), ("pct", "shutdown")} for c in node.mutations())


def test_an_ignored_ha_guest_gets_its_requested_state_back(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, "ignored", slow=False)
    node.ha_acts = True
    driver = driver_on(node)

    def acts(ctid: int) -> None:  # an ignored resource does not move, unless asked for
        if node.ha[ctid] == "started":
            node.running.add(ctid)
        elif node.ha[ctid] == "stopped":
            node.running.discard(ctid)

    node._ha_manager = acts  # type: ignore[method-assign]
    driver.configure(
        100, dataclasses.replace(BASE, features=(("nesting", "1"),)), frozenset({"features"})
    )
    assert 100 in node.running and node.ha[100] == "ignored"
    # pve-ha-manager src/PVE/HA/Config.pm: an ignored resource is not HA-managed, so pct
    # start/shutdown act themselves and Phoenix asks HA nothing
    assert not any(c[:2] == ("pvesh", "set") for c in node.calls)


def test_the_requested_state_is_the_resources_not_the_crms(tmp_path: Path) -> None:
    """The guest's status shows the CRM's state ('started': HA has not stopped it yet); the
    request is `stopped` in /cluster/ha/resources, and a restart of Phoenix's own puts it
    back."""
    node = node_with_guest(tmp_path, "stopped", slow=False)
    manager = node._ha_manager

    def acts_once_asked(ctid: int) -> None:  # the CRM gets to the old request late
        if any(c[:2] == ("pvesh", "set") for c in node.calls):
            manager(ctid)

    node._ha_manager = acts_once_asked  # type: ignore[method-assign]
    driver_on(node).configure(
        100, dataclasses.replace(BASE, features=(("nesting", "1"),)), frozenset({"features"})
    )
    asked = [c[-1] for c in node.calls if c[:2] == ("pvesh", "set")]
    assert asked == ["stopped", "started", "stopped"] and node.ha[100] == "stopped"


@pytest.mark.parametrize("wanted", ["stopped", "running"])
def test_a_service_in_error_fails_at_once_with_the_way_out(tmp_path: Path, wanted: str) -> None:
    node = node_with_guest(tmp_path, "started")
    node.ha_error.add(100)
    if wanted == "running":
        node.running.discard(100)
    ticks = iter(range(10_000))
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, clock=lambda: next(ticks))
    says = (
        rf"cannot become {wanted}: HA reports it 'error' on node 'pve'.*"
        r"ha-manager set ct:100 --state disabled"
    )
    with pytest.raises(PhoenixError, match=says):
        driver.stop(100) if wanted == "stopped" else driver.start(100)
    polls = [c for c in node.calls if c[:3] == ("pvesh", "get", "/cluster/ha/status/current")]
    assert len(polls) == 1  # no waiting for what cannot happen


def test_the_fake_node_takes_only_the_requested_states_the_api_knows(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, "started")
    said = node.run(["pvesh", "set", "/cluster/ha/resources/ct:100", "--state", "error"])
    assert "does not have a value in the enumeration" in said.stderr


def test_a_stop_through_ha_that_never_happens_times_out_with_a_clear_message(
    tmp_path: Path,
) -> None:
    node = node_with_guest(tmp_path, "started")
    node.ha_acts = False
    ticks = iter(range(10_000))
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, clock=lambda: next(ticks))
    with pytest.raises(
        PhoenixError, match=r"managed by Proxmox HA and did not stop.*ha-manager status"
    ):
        driver.stop(100, timeout=5)


def test_template_conversion_of_an_ha_guest_is_refused_before_it_stops(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, "started")
    with pytest.raises(PhoenixError, match=r"managed by Proxmox HA.*ha-manager remove ct:100"):
        driver_on(node).mark_template(100)
    assert 100 in node.running and node.ha[100] == "started"


@pytest.mark.parametrize(
    ("ha_state", "protection", "says"),
    [
        ("started", False, r"managed by Proxmox HA.*phoenix delete 100 --force.*ha-manager rem"),
        # pct destroy counts an `ignored` resource too (pve-ha-manager src/PVE/HA/Config.pm
        # service_is_configured), though pct start/shutdown act on such a guest themselves
        ("ignored", False, r"requested state 'ignored'.*phoenix delete 100 --force"),
        (None, True, r"protection enabled.*phoenix delete 100 --force.*--protection 0"),
        ("started", True, r"protection enabled.* and is managed by Proxmox HA"),
    ],
)
def test_destroy_of_an_ha_or_protected_guest_is_refused_and_leaves_it_running(
    tmp_path: Path, ha_state: str | None, protection: bool, says: str
) -> None:
    node = node_with_guest(tmp_path, ha_state)
    if protection:
        node.put_conf(100, node.conf_text(100) + "protection: 1\n")
    with pytest.raises(PhoenixError, match=says):
        driver_on(node).destroy(100)
    assert 100 in node.running and node.conf(100) is not None
    assert node.mutations() == []
    assert not any(c[:2] in {("pvesh", "set"), ("pvesh", "delete")} for c in node.calls)


def protect(node: FakeNode, ctid: int = 100) -> None:
    node.put_conf(ctid, node.conf_text(ctid) + "protection: 1\n")


def test_a_forced_destroy_takes_the_guest_out_of_ha_then_unprotects_and_destroys_it(
    tmp_path: Path,
) -> None:
    """The order a re-run can resume: out of HA, and only once the CRM has dropped the
    service (it would act on it until then) the protection goes, then stop and destroy."""
    node = node_with_guest(tmp_path, "started")
    protect(node)
    driver_on(node).force_destroy(100)
    assert node.conf(100) is None and 100 not in node.ha and 100 not in node.running
    steps = [c for c in node.calls if c[:2] != ("pvesh", "get") or "ha/status" in c[2]]
    acted = [c for c in steps if c[:2] != ("pvesh", "get")]
    assert acted == [
        ("pvesh", "delete", "/cluster/ha/resources/ct:100"),
        ("pct", "set", "100", "--protection", "0"),
        ("pct", "shutdown", "100", "--timeout", "60", "--forceStop", "1"),
        ("pct", "destroy", "100"),
    ]
    # the CRM still listed the service once after the delete: Phoenix waited for it
    between = steps[steps.index(acted[0]) + 1 : steps.index(acted[1])]
    assert len(between) == 2 and all("ha/status/current" in c[2] for c in between)


def test_a_forced_destroy_that_ha_never_releases_stops_nothing(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, "started")
    protect(node)
    node.ha_acts = False
    ticks = iter(range(10_000))
    driver = ProxmoxDriver(node, "localhost", sleep=lambda _: None, clock=lambda: next(ticks))
    with pytest.raises(PhoenixError, match=r"still lists ct:100.*nothing was stopped.*again"):
        driver.force_destroy(100)
    assert 100 in node.running and "protection: 1" in node.conf_text(100)
    assert not any(c[:2] in {("pct", "shutdown"), ("pct", "destroy")} for c in node.calls)


class Interrupted(Exception):
    """The run killed at one command."""


def test_an_interrupted_forced_destroy_is_refused_plainly_and_finished_by_a_rerun(
    tmp_path: Path,
) -> None:
    node = node_with_guest(tmp_path, "started")
    protect(node)
    run = node.run

    def killed_at_unprotect(argv, **kw):  # type: ignore[no-untyped-def]
        if list(argv[:2]) == ["pct", "set"] and "--protection" in argv:
            raise Interrupted
        return run(argv, **kw)

    node.run = killed_at_unprotect  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        driver_on(node).force_destroy(100)
    node.run = run  # type: ignore[method-assign]
    assert 100 not in node.ha and 100 in node.running  # out of HA, nothing else done
    with pytest.raises(PhoenixError, match=r"protection enabled.*phoenix delete 100 --force"):
        driver_on(node).destroy(100)
    node.calls.clear()
    driver_on(node).force_destroy(100)
    assert node.conf(100) is None
    assert not any(c[:2] == ("pvesh", "delete") for c in node.calls)  # HA was done already


def test_a_forced_destroy_of_an_unguarded_guest_is_a_plain_destroy(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, None)
    driver_on(node).force_destroy(100)
    assert node.conf(100) is None
    assert [c[:2] for c in node.mutations()[-2:]] == [("pct", "shutdown"), ("pct", "destroy")]
    assert node.mutations() == [
        ("pct", "shutdown", "100", "--timeout", "60", "--forceStop", "1"),
        ("pct", "destroy", "100"),
    ]


def test_the_fake_node_refuses_to_destroy_a_guest_with_any_ha_resource(tmp_path: Path) -> None:
    """pve-container src/PVE/API2/LXC.pm destroy_vm: `service_is_configured` (an `ignored`
    resource too); protection is checked before the lock (check_protection first)."""
    node = node_with_guest(tmp_path, "ignored")
    node.running.discard(100)
    assert "used in HA resources" in node.run(["pct", "destroy", "100"]).stderr
    assert node.run(["pvesh", "delete", "/cluster/ha/resources/ct:100"]).ok
    said = node.run(["pvesh", "delete", "/cluster/ha/resources/ct:100"]).stderr
    assert "no such resource 'ct:100'" in said
    node.put_conf(100, node.conf_text(100) + "protection: 1\nlock: backup\n")
    assert "protection mode enabled" in node.run(["pct", "destroy", "100"]).stderr


def test_the_fake_node_refuses_to_destroy_a_running_or_protected_guest(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, None)
    assert "container is running" in node.run(["pct", "destroy", "100"]).stderr
    node.running.discard(100)
    node.put_conf(100, node.conf_text(100) + "protection: 1\n")
    assert "protection mode enabled" in node.run(["pct", "destroy", "100"]).stderr


def test_start_and_stop_of_an_ha_guest_go_through_ha(tmp_path: Path) -> None:
    node = node_with_guest(tmp_path, "started")
    driver = driver_on(node)
    driver.stop(100)
    assert 100 not in node.running and node.ha[100] == "stopped"
    driver.start(100)
    assert 100 in node.running and node.ha[100] == "started"


def test_a_guest_on_another_cluster_node_is_said_to_be_there_not_missing(
    tmp_path: Path,
) -> None:
    """pct create checks the id cluster-wide (pve-container src/PVE/API2/LXC.pm): a guest HA
    moved to another node is not missing, and creating it again would die."""
    node = FakeNode(tmp_path / "node")
    node.elsewhere[105] = "pve2"
    assert "already exists on node 'pve2'" in node.run(["pct", "create", "105", TEMPLATE]).stderr
    with pytest.raises(PhoenixError, match=r"guest 105 is a container on cluster node 'pve2'"):
        driver_on(node).observe(105)
    assert driver_on(node).observe(106).state == "missing"


@pytest.mark.parametrize("force", [False, True])
def test_phoenix_delete_destroys_a_guarded_guest_only_when_forced(
    tmp_path: Path, seed: Inventory, force: bool
) -> None:
    """`phoenix delete 101 [--force]` as the CLI runs it: the plan's destroy step carries
    the flag to the driver (ForcedDestroy), and without it the guest is refused, untouched."""
    node = FakeNode(tmp_path / "node")
    driver = driver_on(node)
    driver.create(101, TEMPLATE, BASE)
    node.running.add(101)
    node.ha[101] = "started"
    protect(node, 101)
    the_plan = power_plan(seed, driver, [101], "delete", force)
    (step,) = the_plan.steps
    assert isinstance(step, Destroy) and step.force is force
    assert step.to_json().get("force", False) is force
    result = run_plan(seed, driver, the_plan, state_dir=tmp_path / "state")
    if force:
        assert result.ok and node.conf(101) is None and 101 not in node.ha
    else:
        assert "phoenix delete 101 --force" in str(result.failed[101])
        assert node.conf(101) is not None and 101 in node.running and node.ha[101] == "started"


def test_a_forced_delete_on_a_driver_without_guards_is_its_plain_destroy() -> None:
    """The LXC and VM backends have no protection or HA: `--force` changes nothing there."""
    destroyed: list[int] = []

    class Plain:
        def destroy(self, ctid: int) -> None:
            destroyed.append(ctid)

    lifecycle(cast(Lifecycle, Plain()), Destroy(7, "destroy", force=True))
    assert destroyed == [7]

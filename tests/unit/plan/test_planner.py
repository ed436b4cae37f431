"""Planner: order on the real fixture, refusals, rebuilds, recipes, snapshots, purity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phoenix.drivers.fake import FakeDriver
from phoenix.errors import PlanError
from phoenix.inventory import Inventory, build_graph, load_inventory
from phoenix.plan.model import BundleStep, Clone, Configure, Feature, Plan, Resize, Unrunnable
from phoenix.plan.planner import PlanOptions, plan
from phoenix.recipes import runner
from tests.conftest import FIXTURES

from .conftest import Lab, guest, lab

SEED = FIXTURES / "phoenix-etc-seed"


SeedPlan = tuple[Inventory, FakeDriver, Plan]


@pytest.fixture(scope="module")
def seed_plan() -> SeedPlan:
    inventory = load_inventory(SEED)
    driver = FakeDriver(runner)
    return inventory, driver, plan(inventory, driver, None, PlanOptions(state_dir=Path("/nx")))


def test_fixture_plan_is_in_creation_order(seed_plan: SeedPlan) -> None:
    inventory, _, the_plan = seed_plan
    order = [g.ctid for g in the_plan.guests]
    # containers and VMs in one graph (the template VM 9000 before its clone 1001)
    assert order == [900, 101, 901, 910, 911, 801, 802, 912, 914, 917, 950, 951, 952, 9000, 1001]
    position = {c: i for i, c in enumerate(order)}
    graph = build_graph(inventory)
    for ctid in order:
        for need in graph.needs(ctid):
            assert position[need] < position[ctid], (need, ctid)
    assert the_plan.start_order[:2] == (900, 901)
    boot = [(inventory.guests.get(c) or inventory.vms[c]).boot_order for c in the_plan.start_order]
    assert boot == sorted(boot)


def test_fixture_plan_steps_for_template_and_clone(seed_plan: SeedPlan) -> None:
    _, driver, the_plan = seed_plan
    base = the_plan.guest(900)
    assert [s.kind for s in base.steps] == [
        "create",
        "start",
        "snapshot",
        "feature",
        "snapshot",
        "stop",  # parked: a clone source not started at boot
    ]
    assert [s.snapshot for s in base.steps if s.kind == "snapshot"] == [
        "pre-configured",
        "final-form",
    ]
    clone = the_plan.guest(901).steps[0]
    assert isinstance(clone, Clone) and (clone.source, clone.snapshot) == (900, "final-form")
    qdrant = the_plan.guest(952)
    assert qdrant.steps[-1].kind == "health_check"
    nvidia = next(s for s in the_plan.guest(901).steps if s.kind == "feature")
    assert isinstance(nvidia, Feature)  # built in now: not Unrunnable
    assert nvidia.bundle.script_name == "feature_nvidia.sh"
    # planning a host where nothing exists: only observations, no exec, no change
    assert {kind for kind, _ in driver.log.entries} == {"observe"}


def test_fixture_plan_json_round_trips(seed_plan: SeedPlan) -> None:
    import json

    _, _, the_plan = seed_plan
    data = json.loads(json.dumps(the_plan.to_json()))
    assert data["creation_order"][0] == 900
    first = data["guests"][0]["steps"][0]
    assert first["kind"] == "create" and first["template"].endswith(".tar.zst")


def test_shrinking_the_disk_is_refused(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    guests = lab()
    guests["102"]["storage_size_gb"] = 2
    env.write(guests)
    with pytest.raises(PlanError) as refused:
        plan(env.inventory, env.driver)
    assert str(refused.value) == (
        "guest 102 (phxt-solo): storage_size_gb 4 -> 2 would shrink the root disk; "
        "Phoenix only grows disks (set it back to at least 4, or rebuild the guest)"
    )


def test_growing_the_disk_is_a_resize(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    guests = lab()
    guests["102"]["storage_size_gb"] = 10
    env.write(guests)
    (resize,) = plan(env.inventory, env.driver).steps
    assert isinstance(resize, Resize)
    assert (resize.detail, [c.describe() for c in resize.changes]) == (
        "resize disk 4 -> 10 GB",
        ["disk_gb: 4 -> 10"],
    )
    assert env.mutations_during(env.converge) == [("resize", "102", "10")]


@pytest.mark.parametrize(
    ("key", "value", "setting"),
    [("unprivileged", False, "unprivileged"), ("storage_pool", "tank-2", "storage")],
)
def test_a_change_made_only_at_creation_needs_recreate(
    make_lab: Callable[..., Lab], key: str, value: object, setting: str
) -> None:
    env = make_lab()
    env.converge()
    guests = lab()
    guests["102"][key] = value
    env.write(guests)
    with pytest.raises(PlanError) as err:
        plan(env.inventory, env.driver)
    assert "guest 102" in str(err.value) and "--recreate" in str(err.value)
    assert f"{setting} " in str(err.value)

    mutations = env.mutations_during(lambda: env.converge(options=PlanOptions(recreate=True)))
    assert [m[0] for m in mutations] == ["destroy", "create", "start"]
    assert getattr(env.driver.guests[102].settings, setting) == value


@pytest.mark.parametrize("kind", ["create", "clone"])
def test_half_created_guest_is_rebuilt(make_lab: Callable[..., Lab], kind: str) -> None:
    env = make_lab({"102": guest("phxt-solo", 12)})
    env.converge()
    the_plan = plan(env.inventory, env.driver, None, PlanOptions(interrupted={102: kind}))
    assert [s.kind for s in the_plan.steps] == ["destroy", "create", "start"]
    other = plan(env.inventory, env.driver, None, PlanOptions(interrupted={102: "start"}))
    assert [s.kind for s in other.steps] == []  # only a half-made guest is destroyed


def test_missing_recipe_fails_only_that_guest(make_lab: Callable[..., Lab]) -> None:
    guests = lab()
    guests["102"]["features"] = ["no_such_feature"]
    env = make_lab(guests)
    outcome = env.converge()
    assert set(outcome.result.failed) == {102}
    assert "no_such_feature" in str(outcome.result.failed[102])
    assert set(outcome.result.done) == {900, 101}


def test_missing_application_script_is_reported_in_plan(make_lab: Callable[..., Lab]) -> None:
    guests = lab()
    guests["101"]["application_script"] = "not_there.sh"
    env = make_lab(guests)
    app = next(s for s in plan(env.inventory, env.driver).steps if s.kind == "application")
    assert isinstance(app, Unrunnable) and "not_there.sh" in app.error
    assert app.to_json() == {"kind": "application", "detail": "application", "error": app.error}


def test_stopped_guest_plans_start_and_conditional_recipes(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    env.driver.stop(101)
    the_plan = plan(env.inventory, env.driver)
    steps = the_plan.guest(101).steps
    assert [s.kind for s in steps] == ["start", "feature", "application"]
    assert all(isinstance(s, BundleStep) and s.conditional for s in steps[1:])
    # executing it starts the guest and finds both recipes already applied
    assert env.mutations_during(env.converge) == [("start", "101")]


def test_running_guest_markers_are_read_with_one_exec(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    before = len(env.driver.log.entries)
    plan(env.inventory, env.driver)
    kinds = [kind for kind, _ in env.driver.log.entries[before:]]
    # the parked template 900 is stopped: its markers are not read
    assert kinds.count("exec") == 2 and kinds.count("observe") == 3
    assert "mutate" not in kinds


def test_is_template_guest_is_stopped_and_marked(make_lab: Callable[..., Lab]) -> None:
    guests = {
        "900": guest("phxt-tpl", 90, is_template=True, features=["base_setup"]),
        "101": guest("phxt-c1", 11, clone_from_ctid="900"),
    }
    env = make_lab(guests)
    outcome = env.converge()
    assert outcome.result.ok, outcome.result
    assert [s.kind for s in outcome.plan.guest(900).steps][-2:] == ["stop", "mark_template"]
    clone = outcome.plan.guest(101).steps[0]
    assert isinstance(clone, Clone) and (clone.source, clone.snapshot) == (900, None)
    assert env.driver.guests[900].is_template
    assert env.converge().plan.up_to_date


def test_digest_changes_when_the_script_changes(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    (env.etc / "scripts" / "app.sh").write_text("#!/bin/sh\necho v2\n")
    steps = plan(env.inventory, env.driver).steps
    assert [(s.ctid, s.kind) for s in steps] == [(101, "application")]


def test_configure_reports_network_change(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    guests = lab()
    guests["102"]["network_config"]["ip"] = "10.250.0.99/24"
    env.write(guests)
    step = plan(env.inventory, env.driver).steps[0]
    assert isinstance(step, Configure) and step.changes[0].field == "net"
    assert "10.250.0.12/24" in step.detail and "10.250.0.99/24" in step.detail


def test_assigned_mac_is_kept(make_lab: Callable[..., Lab]) -> None:
    env = make_lab()
    env.converge()
    observed = env.driver.guests[102].settings
    assert observed.net is not None and observed.net.mac is not None
    assert plan(env.inventory, env.driver).up_to_date


def test_without_the_gateway_handed_in_its_guest_says_why(seed_plan: SeedPlan) -> None:
    """The planner sits below the gateway: a gateway guest's application comes only from
    what the caller hands in (the CLI hands in phoenix.cli.gateway_app.GATEWAY)."""
    _, _, the_plan = seed_plan
    steps = [s for s in the_plan.guest(101).steps if isinstance(s, Unrunnable)]
    assert [(s.kind, s.error) for s in steps] == [
        ("application", "the built-in gateway application was not handed to the planner")
    ]

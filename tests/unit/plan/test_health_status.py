"""Health checks (retries, never a host shell) and status data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.errors import CommandFailed
from phoenix.inventory.models import HealthCheck
from phoenix.plan.events import CollectingReporter
from phoenix.plan.health import run_health_check
from phoenix.plan.model import BundleStep
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.status import gather_route_status, gather_status
from phoenix.runners.base import CommandResult

from .conftest import Lab, guest


def test_health_check_retries_then_passes(make_lab: Callable[..., Lab]) -> None:
    env = make_lab({"102": guest("phxt-solo", 12)})
    env.converge()
    calls: list[list[str]] = []

    def flaky(ctid: int, argv: Sequence[str]) -> CommandResult:
        calls.append(list(argv))
        return CommandResult(0 if len(calls) == 3 else 7, "", "not yet")

    env.driver.exec_handler = flaky
    sleeps: list[float] = []
    check = HealthCheck(command="curl -s --fail 'http://localhost:6333/a b'", retries=3, interval=2)
    run_health_check(env.driver, 102, check, sleeps.append)
    assert calls[0] == ["curl", "-s", "--fail", "http://localhost:6333/a b"]
    assert len(calls) == 3 and sleeps == [2, 2]


def test_health_check_failure_carries_output(make_lab: Callable[..., Lab]) -> None:
    env = make_lab({"102": guest("phxt-solo", 12)})
    env.converge()
    env.driver.exec_handler = lambda c, a: CommandResult(22, "", "connection refused")
    check = HealthCheck(command="curl -f http://localhost", retries=2, interval=0)
    with pytest.raises(CommandFailed, match="connection refused") as err:
        run_health_check(env.driver, 102, check, lambda s: None)
    assert "guest 102" in str(err.value)


def test_health_check_runs_in_converge_of_new_guest(make_lab: Callable[..., Lab]) -> None:
    env = make_lab({"102": guest("phxt-solo", 12, health_check={"command": "true", "retries": 1})})
    seen: list[list[str]] = []

    def record(ctid: int, argv: Sequence[str]) -> CommandResult:
        seen.append(list(argv))
        return CommandResult(0, "", "")

    env.driver.exec_handler = record
    assert env.converge().result.ok
    assert seen == [["true"]]
    seen.clear()
    # a converged guest is checked (one try, while planning), not trusted
    assert env.converge().plan.up_to_date and seen == [["true"]]


def test_a_failed_health_check_re_applies_the_application_then_checks_again(
    make_lab: Callable[..., Lab],
) -> None:
    entry = guest(
        "phxt-app",
        11,
        application_script="app.sh",
        health_check={"command": "probe-app", "retries": 1},
    )
    env = make_lab({"101": entry})
    assert env.converge().result.ok
    broken = {"now": True}

    def exec_handler(ctid: int, argv: Sequence[str]) -> CommandResult:
        return (
            CommandResult(1, "", "connection refused")
            if broken["now"]
            else CommandResult(0, "", "")
        )

    def script_handler(
        c: int, s: str, e: Mapping[str, str], f: Mapping[str, bytes]
    ) -> CommandResult:
        broken["now"] = False  # the application's re-run repairs it
        return CommandResult(0, "", "")

    env.driver.exec_handler = exec_handler
    env.driver.script_handler = script_handler
    outcome = env.converge()
    kinds = [(s.kind, isinstance(s, BundleStep) and s.force) for s in outcome.plan.steps]
    assert kinds == [("application", True), ("health_check", False)]
    assert "health check failed: exit 1: connection refused" in outcome.plan.steps[0].detail
    assert outcome.result.ok and not broken["now"]
    assert env.converge().plan.up_to_date


def test_a_failed_health_check_with_nothing_to_re_apply_fails_the_run(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab({"102": guest("phxt-solo", 12, health_check={"command": "x", "retries": 1})})
    assert env.converge().result.ok
    env.driver.exec_handler = lambda c, a: CommandResult(3, "", "down")
    outcome = env.converge()
    assert [s.kind for s in outcome.plan.steps] == ["health_check"]
    assert set(outcome.result.failed) == {102}


def test_gather_status(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(
        {
            "102": guest("phxt-solo", 12, boot_order=2, health_check={"command": "true"}),
            "103": guest("phxt-two", 13, boot_order=1),
        }
    )
    env.converge()
    env.driver.stop(103)
    rows = gather_status(env.inventory, env.driver)
    assert [r.ctid for r in rows] == [103, 102]
    solo = rows[1]
    assert (solo.state, solo.ip, solo.health, solo.boot_order) == (
        "running",
        "10.250.0.12",
        "ok",
        2,
    )
    assert rows[0].state == "stopped" and rows[0].health == "no check"
    assert solo.to_json()["ips"] == ["10.250.0.12"]


def _route_lab() -> dict[str, dict[str, Any]]:
    vllm = {"ServerConfig": {"port": 8000, "served_model_name": "alpha"}}
    return {
        "101": guest(
            "phxt-gw",
            11,
            gateway={
                "tls": False,
                "path_routes": [{"path": "/docs/", "url": "http://192.0.2.10:8000/"}],
                "host_routes": [
                    {"hostname": "b.lab.local", "ctid": "103", "port": 8000, "tls": False}
                ],
            },
        ),
        "102": guest("phxt-a", 12, vllm_engine_config=vllm),
        "103": guest(
            "phxt-b",
            13,
            vllm_engine_config={"ServerConfig": {"port": 8000, "served_model_name": "beta"}},
        ),
    }


def test_route_status_is_probed_from_inside_the_gateway(make_lab: Callable[..., Lab]) -> None:
    env = make_lab(_route_lab())
    assert env.converge().result.ok
    probes: list[tuple[int, str]] = []

    def curl(ctid: int, argv: Sequence[str]) -> CommandResult:
        probes.append((ctid, argv[-1]))
        if "10.250.0.13" in argv[-1]:
            return CommandResult(7, "000", "curl: (7) Failed to connect")
        return CommandResult(0, "200", "")

    env.driver.exec_handler = curl
    gateway, routes = gather_route_status(env.inventory, env.driver, GATEWAY)
    assert gateway == 101
    by_match = {r.match: r for r in routes}
    assert by_match["alpha"].health == "ok"
    assert by_match["beta"].health == "down"
    assert by_match["beta"].backends[0].health == "unreachable"
    assert by_match["b.lab.local"].health == "down"
    assert by_match["/docs/"].health == "unknown"  # an external URL is not probed
    assert {c for c, _ in probes} == {101}
    assert ("http://10.250.0.12:8000/health") in [u for _, u in probes]
    assert by_match["alpha"].to_json()["backends"][0]["target"] == "10.250.0.12:8000"


def test_route_status_without_a_running_gateway_is_unknown(
    make_lab: Callable[..., Lab],
) -> None:
    env = make_lab(_route_lab())
    assert env.converge().result.ok
    env.driver.stop(101)
    _gateway, routes = gather_route_status(env.inventory, env.driver, GATEWAY)
    assert {r.health for r in routes} == {"unknown"}


def test_routes_are_down_when_the_gateway_itself_does_not_answer(
    make_lab: Callable[..., Lab],
) -> None:
    """nginx stopped in the gateway: the backends answer the gateway guest's curl, but no
    request gets through; the route table must not say ok."""
    env = make_lab(_route_lab())
    assert env.converge().result.ok

    def nginx_down(ctid: int, argv: Sequence[str]) -> CommandResult:
        if argv[-1] == "http://127.0.0.1/phoenix/health":
            return CommandResult(7, "", "curl: (7) Failed to connect to 127.0.0.1 port 80")
        return CommandResult(0, "200", "")

    env.driver.exec_handler = nginx_down
    _gateway, routes = gather_route_status(env.inventory, env.driver, GATEWAY)
    assert {r.health for r in routes if r.match != "/docs/"} == {"down"}
    alpha = next(r for r in routes if r.match == "alpha")
    assert "the gateway does not answer: curl: (7)" in alpha.backends[0].detail


def test_the_gateway_is_re_pointed_only_after_its_backends_converged(
    make_lab: Callable[..., Lab],
) -> None:
    """A gateway bundle that routes to a backend still being made would answer 502s for
    the backend's whole load time (a real vLLM: minutes)."""
    env = make_lab(_route_lab())
    collect = CollectingReporter()
    outcome = env.converge(reporter=collect)
    assert outcome.result.ok, outcome.result
    assert outcome.plan.guest(101).after == (102, 103)
    kinds = [(e.kind, e.ctid, e.step_kind) for e in collect.events]
    gateway_bundle = kinds.index(("step_started", 101, "application"))
    assert kinds.index(("guest_done", 102, None)) < gateway_bundle
    assert kinds.index(("guest_done", 103, None)) < gateway_bundle


def test_the_backends_first_wish_yields_to_boot_order_and_dependencies(
    make_lab: Callable[..., Lab],
) -> None:
    """A guest that needs the gateway boots before a backend the gateway routes to: waiting
    for that backend would be circular, so the gateway does not wait (no deadlock)."""
    guests = _route_lab()
    guests["101"]["boot_order"] = 1
    guests["103"]["boot_order"] = 5
    guests["104"] = guest("phxt-app", 14, boot_order=2, dependencies=["101"])
    env = make_lab(guests)
    outcome = env.converge()
    assert outcome.result.ok, outcome.result
    assert outcome.plan.guest(101).after == (102, 103)


def test_planning_tries_a_converged_guests_check_once_whatever_its_retries(
    make_lab: Callable[..., Lab],
) -> None:
    """Planning reads; a check that retries 4 times (with its waits) on every `phoenix
    plan` would make planning a broken lab slow: the plan tries once, the run retries."""
    check = {"command": "probe-app", "retries": 4, "interval": 0}
    env = make_lab({"102": guest("phxt-solo", 12, health_check=check)})
    assert env.converge().result.ok
    tries: list[int] = []

    def down(ctid: int, argv: Sequence[str]) -> CommandResult:
        tries.append(ctid)
        return CommandResult(3, "", "down")

    env.driver.exec_handler = down
    the_plan = Planner(env.inventory, env.driver, PlanOptions(gateway=GATEWAY)).plan()
    assert [s.kind for s in the_plan.steps] == ["health_check"]
    assert tries == [102]

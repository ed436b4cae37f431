"""The lifecycle CLI on a fake driver (injected where the CLI builds its driver)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers import factory
from phoenix.plan.lock import host_lock
from phoenix.runners.base import CommandResult

from .conftest import Lab


@pytest.fixture
def cli_lab(make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch) -> Lab:
    env = make_lab()
    monkeypatch.setattr(factory, "make_driver", lambda *a, **k: env.driver)
    return env


def run(env: Lab, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config-dir", str(env.etc), *args])


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_plan_then_converge_then_up_to_date(cli_lab: Lab) -> None:
    result = run(cli_lab, "plan")
    assert result.exit_code == 0, result.output
    assert "clone 900 at snapshot golden" in result.output
    assert "3 guest(s) to change" in result.output

    result = run(cli_lab, "converge", "--json")
    assert result.exit_code == 0, result.output
    events = json_lines(result.output)
    assert events[-1]["event"] == "result" and events[-1]["ok"] is True
    assert any(e["event"] == "step_done" and e.get("step_kind") == "clone" for e in events)

    result = run(cli_lab, "plan", "--json")
    assert json.loads(result.output)["up_to_date"] is True
    assert "up to date" in run(cli_lab, "plan", "101").output


def test_failed_converge_exits_1_with_script_output(cli_lab: Lab) -> None:
    cli_lab.driver.script_handler = lambda *a: CommandResult(4, "disk full somewhere\n", "")
    result = run(cli_lab, "converge", "102", "900")
    assert result.exit_code == 1
    assert "disk full somewhere" in result.output
    assert "Traceback" not in result.output


def test_plan_error_is_one_message(cli_lab: Lab) -> None:
    run(cli_lab, "converge")
    data = json.loads((cli_lab.etc / "phoenix_lxc_configs.json").read_text())
    data["lxc_configs"]["102"]["unprivileged"] = False
    (cli_lab.etc / "phoenix_lxc_configs.json").write_text(json.dumps(data))
    result = run(cli_lab, "plan")
    assert result.exit_code == 1
    assert "error: guest 102 (phxt-solo)" in result.output and "--recreate" in result.output


def test_create_makes_guest_without_starting_it(cli_lab: Lab) -> None:
    result = run(cli_lab, "create", "101")
    assert result.exit_code == 0, result.output
    assert cli_lab.driver.guests[101].state == "stopped"
    # its source is fully converged: snapshot taken, then parked (not started at boot)
    assert cli_lab.driver.guests[900].state == "stopped"
    assert cli_lab.driver.guests[900].snapshots
    assert 102 not in cli_lab.driver.guests


def test_stop_start_restart_delete(cli_lab: Lab) -> None:
    assert run(cli_lab, "LetsGo").exit_code == 0
    assert run(cli_lab, "stop", "101", "102").exit_code == 0
    assert {c: g.state for c, g in cli_lab.driver.guests.items()} == {
        900: "stopped",
        101: "stopped",
        102: "stopped",
    }
    before = len(cli_lab.driver.timeline)
    assert run(cli_lab, "start").exit_code == 0
    assert [e.ctid for e in cli_lab.driver.timeline[before:]] == [101, 102]
    before = len(cli_lab.driver.timeline)
    assert run(cli_lab, "restart", "102").exit_code == 0
    assert [e.op for e in cli_lab.driver.timeline[before:]] == ["stop", "start"]

    refused = run(cli_lab, "delete", "102")
    assert refused.exit_code == 1 and "--yes" in refused.output
    assert run(cli_lab, "delete", "--yes", "900", "101").exit_code == 0
    assert set(cli_lab.driver.guests) == {102}
    destroys = [e.ctid for e in cli_lab.driver.timeline if e.op == "destroy"]
    assert destroys == [101, 900], "dependents are deleted first"


def test_unknown_guest_id(cli_lab: Lab) -> None:
    result = run(cli_lab, "converge", "555")
    assert result.exit_code == 1 and "guest 555 is not in the inventory" in result.output


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_prints_the_result_and_exits_128_plus_it(
    cli_lab: Lab, sig: signal.Signals, code: int
) -> None:
    def hook(op: str, ctid: int) -> None:
        if op == "create" and ctid == 900:
            os.kill(os.getpid(), sig)  # delivered to the main thread, as from a terminal

    cli_lab.driver.on_mutate = hook
    result = run(cli_lab, "converge", "--json")
    assert result.exit_code == code, result.output
    last = json_lines(result.output)[-1]
    assert last["event"] == "result" and last["ok"] is False
    assert last["interrupted"] == sig.name
    assert "900" in last["left"] and "101" in last["left"]
    # the create that was running finished; the next run converges, the one after is idle
    assert 900 in cli_lab.driver.guests
    cli_lab.driver.on_mutate = None
    assert run(cli_lab, "converge").exit_code == 0
    assert json.loads(run(cli_lab, "plan", "--json").output)["up_to_date"] is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_signal_in_text_mode_says_what_was_done_and_left(cli_lab: Lab) -> None:
    def hook(op: str, ctid: int) -> None:
        if op == "start" and ctid == 102:
            os.kill(os.getpid(), signal.SIGINT)

    cli_lab.driver.on_mutate = hook
    result = run(cli_lab, "converge", "102")
    assert result.exit_code == 130
    assert "interrupted by SIGINT" in result.output
    assert "left: 102: stopped before" in result.output
    assert "run the same command again to resume" in result.output


def test_a_run_refused_by_the_lock_still_ends_json_output_with_a_result(cli_lab: Lab) -> None:
    with host_lock(cli_lab.state):
        result = run(cli_lab, "converge", "--json")
    assert result.exit_code == 1
    last = json_lines(result.output)[-1]
    assert last == {"event": "result", "ok": False, "error": last["error"]}
    assert "another phoenix run holds the host lock" in last["error"]


def test_delete_force_asks_the_driver_to_lift_its_guards(
    cli_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--force` reaches a driver that has guards (ForcedDestroy: Proxmox's protection and
    HA); without it the plain destroy runs."""
    assert run(cli_lab, "LetsGo").exit_code == 0
    forced: list[int] = []

    def force_destroy(self: object, ctid: int) -> None:
        forced.append(ctid)
        cli_lab.driver.destroy(ctid)

    monkeypatch.setattr(type(cli_lab.driver), "force_destroy", force_destroy, raising=False)
    assert run(cli_lab, "delete", "--yes", "102").exit_code == 0
    assert forced == []
    assert run(cli_lab, "delete", "--yes", "--force", "101").exit_code == 0
    assert forced == [101] and 101 not in cli_lab.driver.guests
    assert "--force" in run(cli_lab, "delete", "--help").output

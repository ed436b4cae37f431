"""Converge on real LXC: a template with base_setup, a clone with an application, a guest
whose application fails once. Runs as root on the isolated lab of `conftest.lxc_host`.

Order matters (one lab, built once per module): first converge (template created,
snapshotted, cloned; one application fails with its output), resume, converge again with
zero mutating commands, change memory only, delete.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.lxc import LxcDriver
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.journal import Journal
from phoenix.plan.model import Configure
from phoenix.plan.planner import plan
from phoenix.plan.run import Outcome, converge, power_plan, run_plan
from phoenix.recipes.runner import UNPACK_SCRIPT as UNPACK
from tests.e2e.conftest import LxcHost, destroy_guests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

TEMPLATE, APP, FLAKY = 7730, 7731, 7732
IDS = (TEMPLATE, APP, FLAKY)

APP_SH = """#!/bin/sh
set -eu
mkdir -p /var/lib/phxt
printf '%s\\n' "$PHOENIX_CTID" > /var/lib/phxt/app-ran
grep -q '"name": "phxt-app"' /tmp/phoenix_run/guest.json
echo "phxt app configured for $PHOENIX_CTID"
"""
FAILING_SH = """#!/bin/sh
echo "phxt flaky: preparing"
echo "phxt flaky: simulated failure, the thing is missing" >&2
exit 7
"""
FIXED_SH = """#!/bin/sh
set -eu
mkdir -p /var/lib/phxt
echo fixed > /var/lib/phxt/flaky-ran
echo "phxt flaky: ok"
"""


@dataclass
class ConvergeLab:
    host: LxcHost
    etc: Path
    state: Path

    def entries(self, app_memory: int = 512) -> dict[str, Any]:
        def net(n: int) -> dict[str, str]:
            return {
                "name": "eth0",
                "bridge": self.host.bridge,
                "ip": self.host.address(n),
                "gw": self.host.gateway,
            }

        common = {"swap_mb": 256, "cores": 1, "storage_size_gb": 4, "unprivileged": True}
        return {
            str(TEMPLATE): {
                **common,
                "name": "phxt-base",
                "memory_mb": 512,
                "template": self.host.template,
                "network_config": net(130),
                "features": ["base_setup"],
                "template_snapshot_name": "final-form",
            },
            str(APP): {
                **common,
                "name": "phxt-app",
                "memory_mb": app_memory,
                "clone_from_ctid": str(TEMPLATE),
                "network_config": net(131),
                "features": ["base_setup"],
                "application_script": "app.sh",
                "boot_order": 1,
            },
            str(FLAKY): {
                **common,
                "name": "phxt-flaky",
                "memory_mb": 512,
                "clone_from_ctid": str(TEMPLATE),
                "network_config": net(132),
                "application_script": "flaky.sh",
                "boot_order": 2,
            },
        }

    def write(self, app_memory: int = 512) -> None:
        hyp = {
            "timezone": "Europe/Berlin",
            "phoenix": {
                "driver": "lxc",
                "lxc_path": str(self.host.lxc_path),
                "template_cache": str(self.host.template_cache),
                "state_dir": str(self.state),
                "parallel": 2,
            },
        }
        (self.etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
        lxc = {"lxc_configs": self.entries(app_memory)}
        (self.etc / "phoenix_lxc_configs.json").write_text(json.dumps(lxc))

    @property
    def inventory(self) -> Inventory:
        return load_inventory(self.etc)

    def converge(self, driver: LxcDriver) -> Outcome:
        return converge(
            self.inventory, driver, None, reporter=CollectingReporter(), state_dir=self.state
        )


@pytest.fixture(scope="module")
def lab(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConvergeLab]:
    root = tmp_path_factory.mktemp("converge")
    etc = root / "etc"
    (etc / "scripts").mkdir(parents=True)
    (etc / "scripts" / "app.sh").write_text(APP_SH)
    (etc / "scripts" / "flaky.sh").write_text(FAILING_SH)
    the_lab = ConvergeLab(lxc_host, etc, root / "state")
    the_lab.write()
    try:
        yield the_lab
    finally:
        destroy_guests(lxc_host.driver(), list(reversed(IDS)))


def guest_out(driver: LxcDriver, ctid: int, *argv: str) -> str:
    res = driver.exec(ctid, list(argv), timeout=60)
    assert res.ok, f"{argv} in {ctid}: {res.stdout}{res.stderr}"
    return res.stdout.strip()


def test_first_converge_builds_template_and_clones_and_reports_failure(
    lab: ConvergeLab,
) -> None:
    driver = lab.host.driver()
    outcome = lab.converge(driver)

    assert set(outcome.result.failed) == {FLAKY}, outcome.result
    message = str(outcome.result.failed[FLAKY])
    assert "guest 7732" in message and "flaky.sh" in message and "exit 7" in message
    assert "simulated failure, the thing is missing" in message
    assert set(outcome.result.done) == {TEMPLATE, APP}

    template = driver.observe(TEMPLATE)
    assert "final-form" in template.snapshots
    assert not template.running, "a clone source not started at boot is parked"
    for ctid in set(IDS) - {TEMPLATE}:
        assert driver.observe(ctid).running
    # base_setup really ran in the template; the clone inherited it (same digest)
    assert guest_out(driver, APP, "cat", "/etc/timezone") == "Europe/Berlin"
    assert guest_out(driver, APP, "cat", "/var/lib/phxt/app-ran") == str(APP)
    pushed = [argv for kind, argv in driver.log.entries if kind == "exec" and UNPACK in argv]
    feature_pushes = [a for a in pushed if "phoenix-feature-base_setup" in a]
    assert len(feature_pushes) == 1, "base_setup must run once (in the template only)"
    # the run dir is gone even after the failure
    res = driver.exec(FLAKY, ["test", "-e", "/tmp/phoenix_run"])
    assert res.returncode == 1
    assert Journal.read_inflight(lab.state)[FLAKY]["status"] == "failed"


def test_next_run_resumes_with_only_the_failed_application(lab: ConvergeLab) -> None:
    (lab.etc / "scripts" / "flaky.sh").write_text(FIXED_SH)
    driver = lab.host.driver()
    outcome = lab.converge(driver)
    assert outcome.result.ok, outcome.result
    assert [(s.ctid, s.kind) for s in outcome.plan.steps] == [(FLAKY, "application")]
    assert driver.log.mutations() == []
    assert guest_out(driver, FLAKY, "cat", "/var/lib/phxt/flaky-ran") == "fixed"
    assert Journal.read_inflight(lab.state) == {}


def test_second_converge_runs_no_mutating_command(lab: ConvergeLab) -> None:
    driver = lab.host.driver()
    outcome = lab.converge(driver)
    assert outcome.result.ok
    assert outcome.plan.up_to_date
    assert driver.log.mutations() == []
    assert not [argv for kind, argv in driver.log.entries if kind == "exec" and UNPACK in argv], (
        "no bundle may be pushed"
    )


def test_memory_change_changes_only_memory(lab: ConvergeLab) -> None:
    lab.write(app_memory=384)
    driver = lab.host.driver()
    the_plan = plan(lab.inventory, driver)
    assert [(s.ctid, s.kind) for s in the_plan.steps] == [(APP, "configure")]
    step = the_plan.steps[0]
    assert isinstance(step, Configure)
    assert [c.field for c in step.changes] == ["memory_mb"]

    driver = lab.host.driver()
    outcome = lab.converge(driver)
    assert outcome.result.ok
    mutations = driver.log.mutations()
    assert mutations, "the new limit must be applied"
    app_dir = str(lab.host.lxc_path / str(APP)) + "/"
    for argv in mutations:
        if argv[0] == "write":  # the guest's own config file (or its metadata)
            assert argv[1].startswith(app_dir), f"a write outside guest {APP}: {argv}"
        else:
            assert argv[0] == "lxc-cgroup" and str(APP) in argv, f"not a limit: {argv}"
    cgroup = ["lxc-cgroup", "-P", str(lab.host.lxc_path), "-n", str(APP), "memory.limit_in_bytes"]
    limit = subprocess.run(cgroup, capture_output=True, text=True, check=True).stdout.strip()
    assert int(limit) == 384 * 1024 * 1024
    config = (lab.host.lxc_path / str(APP) / "config").read_text()
    assert str(384 * 1024 * 1024) in config or "384M" in config

    again = lab.host.driver()
    assert lab.converge(again).plan.up_to_date
    assert again.log.mutations() == []


def test_delete_removes_the_guest(lab: ConvergeLab) -> None:
    driver = lab.host.driver()
    result = run_plan(
        lab.inventory,
        driver,
        power_plan(lab.inventory, driver, [FLAKY], "delete"),
        state_dir=lab.state,
    )
    assert result.ok
    assert not driver.observe(FLAKY).exists
    assert not (lab.host.lxc_path / str(FLAKY)).exists()
    names = subprocess.run(
        ["lxc-ls", "-P", str(lab.host.lxc_path), "-1"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert str(FLAKY) not in names and str(APP) in names

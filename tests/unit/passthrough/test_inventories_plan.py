"""The newest real inventory and a GPU lab fixture with every key of issue 13 plan on both
drivers with nothing 'not applied' and (the GPU lab) no missing recipe; the Proxmox
commands for its mounts and GPUs are valid for PVE 8.4 and 9.1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers.factory import OfflineDriver
from phoenix.inventory import load_inventory
from phoenix.names import DRIVERS
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import plan_commands
from tests.conftest import shared_fixture
from tests.unit.proxmox.apischema import VERSIONS, check_argv

GPU_LAB = "phoenix-etc-gpu-lab"


@pytest.mark.parametrize("fixture", ["phoenix-etc-2025-10-03", GPU_LAB])
@pytest.mark.parametrize("driver", DRIVERS)
def test_plans_with_nothing_left_unapplied(fixture: str, driver: str) -> None:
    result = CliRunner().invoke(
        app, ["-c", str(shared_fixture(fixture)), "--driver", driver, "plan", "--offline"]
    )
    assert result.exit_code == 0, result.output
    assert "not applied" not in result.output
    if fixture == GPU_LAB:
        assert "cannot run" not in result.output


@pytest.mark.parametrize("version", VERSIONS)
def test_the_gpu_labs_mount_and_device_commands_are_valid(version: str) -> None:
    inventory = load_inventory(shared_fixture(GPU_LAB))
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan(None)
    major, minor = (int(p) for p in version.split("."))
    argvs = [list(c.argv) for c in plan_commands(plan, (major, minor)).commands]
    mounts = [a for a in argvs if any(x.startswith("--mp") for x in a)]
    devices = [a for a in argvs if any(x.startswith("--dev") for x in a)]
    assert ["pct", "set", "910", "--mp0", "/srv/models,mp=/models,ro=1,replicate=0",
            "--mp1", "/srv/hf-cache,mp=/opt/vllm/hf,replicate=0", "--mp2", "local-zfs:50,mp=/scratch"] in mounts  # fmt: skip
    assert any("local-zfs:100,mp=/var/lib/ollama" in a for a in mounts)
    dev_910 = next(a for a in devices if a[2] == "910")
    assert dev_910[3:] == [
        "--dev0", "/dev/nvidia0,mode=0666", "--dev1", "/dev/nvidia1,mode=0666",
        "--dev2", "/dev/nvidiactl,mode=0666", "--dev3", "/dev/nvidia-uvm,mode=0666",
        "--dev4", "/dev/nvidia-uvm-tools,mode=0666",
    ]  # fmt: skip
    problems = [p for a in mounts + devices for p in check_argv(version, a).problems]
    assert problems == []

"""The original tool's newest inventory (`tests/fixtures/phoenix-etc-newest`) loads with a
warning for each form whose meaning is surprising, keeps the original's meaning, and plans
on both drivers; `plan --offline --commands` lists every guest a missing recipe does not
block, and marks the blocked step with the reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers.factory import OfflineDriver
from phoenix.errors import PlanError
from phoenix.inventory import load_inventory
from phoenix.plan.desired import desired_settings
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import plan_commands
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import edit_guest, validate_json

NEWEST = "phoenix-etc-newest"
TEMPLATES = (900, 901, 911)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["-c", str(shared_fixture(NEWEST)), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


# The guests with host bind mounts that ask for snapshots nothing clones from: Proxmox
# cannot take them, and the original tool went on without them.
BIND_SNAPSHOTTED = ("101", "102", "103", "910", "912")


def _warnings(problems: list[dict[str, str]], key: str) -> dict[str, str]:
    return {p["path"]: p["message"] for p in problems if p["path"].endswith(key)}


def test_it_validates_with_a_warning_for_each_surprising_form() -> None:
    code, problems, output = validate_json(shared_fixture(NEWEST))
    assert code == 0, output
    assert not [p for p in problems if p["severity"] == "error"]
    snapshots = _warnings(problems, "enable_lifecycle_snapshots")
    assert set(snapshots) == {f"lxc_configs.{t}.enable_lifecycle_snapshots" for t in TEMPLATES}
    assert all("template with no snapshots" in m for m in snapshots.values())
    disk = _warnings(problems, "storage_size_gb")
    assert list(disk) == ["lxc_configs.912.storage_size_gb"]
    assert "the clone keeps 64 GiB" in disk["lxc_configs.912.storage_size_gb"]
    assert not [p for p in problems if "id_maps" in p["path"]]


def test_templates_take_no_snapshot_and_a_small_clone_keeps_its_sources_disk() -> None:
    inventory = load_inventory(shared_fixture(NEWEST))
    plan = Planner(inventory, OfflineDriver("lxc"), PlanOptions(gateway=GATEWAY)).plan(None)
    steps = {gp.ctid: [s.detail for s in gp.steps] for gp in plan.guests}
    for ctid in TEMPLATES:
        assert not [d for d in steps[ctid] if d.startswith("snapshot")], steps[ctid]
        assert steps[ctid][-2:] == ["stop (to become a template)", "mark as template"]
    assert steps[912][0] == "clone 911"  # from the template itself, no snapshot
    assert "snapshot final-form" in steps[914]  # a clone keeps its lifecycle snapshots
    assert desired_settings(inventory, 912).disk_gb == 64
    assert not [d for d in steps[912] if "resize" in d]


def test_both_drivers_plan_it() -> None:
    for driver in ("lxc", "proxmox"):
        code, output = _cli("--driver", driver, "plan", "--offline")
        assert code == 0, output
        assert "13 guest(s) to change" in output  # 12 containers and the VM 1002


def test_on_proxmox_snapshots_of_guests_with_bind_mounts_are_skipped_with_a_warning() -> None:
    code, problems, output = validate_json(shared_fixture(NEWEST), "--driver", "proxmox")
    assert code == 0, output
    skipped = {
        p["path"].split(".")[1]
        for p in problems
        if p["severity"] == "warning" and p["message"].startswith("not taken on Proxmox")
    }
    assert skipped == set(BIND_SNAPSHOTTED)


def test_proxmox_commands_list_every_guest_and_mark_the_blocked_steps() -> None:
    code, output = _cli("--driver", "proxmox", "plan", "--offline", "--commands", "--json")
    assert code == 0, output
    lines = json.loads(output)["commands"]
    blocked = [line for line in lines if "BLOCKED" in line]
    assert blocked[0].startswith("# guest 103: BLOCKED at feature step_ca: feature 'step_ca'")
    assert "has no recipe" in blocked[0]
    assert {re.match(r"# guest (\d+)", b)[1] for b in blocked} == {  # type: ignore[index]
        "103",
        "101",
        "102",
        "910",
        "911",
        "801",
        "802",
        "912",
        "917",  # llama.cpp without llamacpp_sha256/llamacpp_model
        "1002",  # a VM of Phoenix's base image: Proxmox needs a cloud image on the node
    }
    # The blocked guest stops there; the guests after it are listed in full.
    text = "\n".join(lines)
    after = text.split(blocked[0], 1)[1]
    assert "pct start 103" in text.split(blocked[0], 1)[0]
    assert "pct exec 103" not in after
    assert "pct clone 901 914" in after and "pct start 914" in after
    # Every GPU and every mount point of the inventory is in the commands: a GPU is added
    # to the guest, or to the clone source it comes with (a clone has its source's devN).
    inventory = load_inventory(shared_fixture(NEWEST))
    for ctid, guest in inventory.guests.items():
        for gpu in guest.gpus:
            chain = [ctid]
            while (source := inventory.guests[chain[-1]].clone_from_ctid) is not None:
                chain.append(source)
            holders = "|".join(map(str, chain))
            found = re.search(rf"pct set ({holders}) .*--dev\d+ /dev/nvidia{gpu},", text)
            assert found, (ctid, gpu)
        for mount in guest.mount_points:
            assert f"{mount.host_path},mp={mount.container_path}" in text, (ctid, mount)
        for volume in guest.zfs_volumes:
            assert f"{volume.pool}:{volume.size_gb},mp={volume.mount_point}" in text
    for line in ("u 0 100000 65536", "g 0 100000 33", "g 33 33 1", "g 34 100034 65502"):
        assert f"#   | lxc.idmap: {line}" in lines
    snapshotted = {line.split()[2] for line in lines if line.startswith("pct snapshot ")}
    assert snapshotted.isdisjoint(BIND_SNAPSHOTTED)
    assert "pct snapshot 914 final-form" in lines


def test_callers_that_need_the_whole_list_still_get_the_reason() -> None:
    inventory = load_inventory(shared_fixture(NEWEST))
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan([103])
    try:
        plan_commands(plan)
    except PlanError as exc:
        assert str(exc).startswith("guest 103: feature step_ca: feature 'step_ca' has no recipe")
    else:
        raise AssertionError("plan_commands listed a plan with a step that cannot run")


def test_a_template_snapshot_name_on_a_template_is_a_warning_too(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "900", is_template=True)
    code, problems, output = validate_json(minimal_dir)
    assert code == 0, output
    message = _warnings(problems, "template_snapshot_name")[
        "lxc_configs.900.template_snapshot_name"
    ]
    assert "ignored for a template" in message


def test_clones_of_a_bigger_source_warn_down_the_whole_chain(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "900", storage_size_gb=64)
    code, problems, output = validate_json(minimal_dir)
    assert code == 0, output
    disk = _warnings(problems, "storage_size_gb")
    assert set(disk) == {"lxc_configs.101.storage_size_gb", "lxc_configs.102.storage_size_gb"}
    inventory = load_inventory(minimal_dir)
    assert desired_settings(inventory, 102).disk_gb == 64

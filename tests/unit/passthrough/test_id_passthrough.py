"""`id_maps` written as the original tool did (`{"type": "gid", "container_id": 33,
"host_id": 33, "size": 1}`) are pass-throughs composed with the default map: the ranges
below, the hole, the ranges above, for uids and gids separately."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.cli.proxmox_cmds import needs_of
from phoenix.drivers import idmaps
from phoenix.drivers.base import MountSettings
from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.lxc import idmap
from phoenix.drivers.lxc import mounts as lxc_mounts
from phoenix.inventory import load_inventory
from phoenix.inventory.idcompose import compose
from phoenix.inventory.models import IdMap
from phoenix.plan.desired import guest_settings
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import plan_commands
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import edit_guest, validate_json

GPU_LAB = "phoenix-etc-gpu-lab"
WWW_DATA = {"type": "gid", "container_id": 33, "host_id": 33, "size": 1}


def _lines(*entries: dict[str, Any]) -> list[str]:
    return [r.line for r in compose([IdMap.model_validate(e) for e in entries])]


def _lab(tmp_path: Path, *entries: object) -> Path:
    target = tmp_path / "etc"
    shutil.copytree(shared_fixture(GPU_LAB), target)
    edit_guest(target, "910", id_maps=list(entries))
    return target


def _errors(lab: Path) -> list[dict[str, str]]:
    code, problems, output = validate_json(lab)
    errors = [p for p in problems if p["severity"] == "error"]
    assert (code == 1) == bool(errors), output
    return errors


def test_one_gid_is_a_hole_in_the_default_gid_map_and_uids_keep_it() -> None:
    assert _lines(WWW_DATA) == [
        "u 0 100000 65536",
        "g 0 100000 33",
        "g 33 33 1",
        "g 34 100034 65502",
    ]


def test_uids_and_gids_are_composed_separately() -> None:
    uid = {"type": "uid", "container_id": 1000, "host_id": 1000, "size": 2}
    assert _lines(WWW_DATA, uid) == [
        "u 0 100000 1000",
        "u 1000 1000 2",
        "u 1002 101002 64534",
        "g 0 100000 33",
        "g 33 33 1",
        "g 34 100034 65502",
    ]


def test_a_range_at_the_top_leaves_no_range_above_and_one_past_it_keeps_the_default() -> None:
    top = {"type": "gid", "container_id": 65535, "host_id": 5000, "size": 1}
    assert _lines(top)[1:] == ["g 0 100000 65535", "g 65535 5000 1"]
    past = {"type": "gid", "container_id": 70000, "host_id": 5000, "size": 10}
    assert _lines(past)[1:] == ["g 0 100000 65536", "g 70000 5000 10"]
    straddling = {"type": "gid", "container_id": 65530, "host_id": 5000, "size": 10}
    assert _lines(straddling)[1:] == ["g 0 100000 65530", "g 65530 5000 10"]


def test_adjacent_pass_throughs_leave_no_default_range_between_them() -> None:
    next_one = {"type": "gid", "container_id": 34, "host_id": 34, "size": 1}
    assert _lines(next_one, WWW_DATA)[1:] == [  # sorted by guest id, whatever the order
        "g 0 100000 33",
        "g 33 33 1",
        "g 34 34 1",
        "g 35 100035 65501",
    ]


def test_the_other_spellings_of_a_whole_map_are_kept_as_written() -> None:
    assert _lines({"type": "b", "container_id": 0, "host_id": 100000, "size": 65536}) == [
        "u 0 100000 65536",
        "g 0 100000 65536",
    ]


def test_the_original_form_validates_and_becomes_the_guests_raw_lines(tmp_path: Path) -> None:
    lab = _lab(tmp_path, WWW_DATA)
    assert _errors(lab) == []
    settings = guest_settings(load_inventory(lab).guests[910])
    ranges = idmaps.from_raw(settings.raw_lxc)
    assert idmaps.root(ranges) == (100000, 100000)
    assert idmaps.to_host(ranges, "g", 33) == 33
    assert idmaps.to_host(ranges, "g", 34) == 100034
    assert idmaps.to_host(ranges, "u", 33) == 100033
    logs = MountSettings(target="/var/log/nginx", host_path="/srv/l", owner_uid=33, owner_gid=33)
    assert lxc_mounts.host_ids(logs, True, ranges) == (100033, 33)  # www-data:www-data inside


def test_proxmox_gets_the_composed_lines_and_doctor_the_delegation(tmp_path: Path) -> None:
    lab = _lab(tmp_path, WWW_DATA)
    inventory = load_inventory(lab)
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan([910])
    text = "\n".join(c.content or "" for c in plan_commands(plan, (9, 1)).commands)
    for line in ("u 0 100000 65536", "g 0 100000 33", "g 33 33 1", "g 34 100034 65502"):
        assert f"lxc.idmap: {line}\n" in text + "\n"
    assert ("g", 33, 1) in needs_of(inventory).id_ranges
    # The LXC driver refuses to create it until /etc/subgid gives root gid 33.
    ranges = idmaps.from_raw(guest_settings(inventory.guests[910]).raw_lxc)
    default = "root:100000:65536\n"
    assert idmap.subid_problems(ranges, default, default) == [
        "/etc/subgid does not delegate 33:1 to root (for 'g 33 33 1')"
    ]
    assert idmap.subid_problems(ranges, default, default + "root:33:1\n") == []


@pytest.mark.parametrize(
    ("entries", "index", "message"),
    [
        ([{**WWW_DATA, "container_id": 0}], 0, "cannot include the guest's root"),
        ([{**WWW_DATA, "host_id": 0}], 0, "maps host root"),
        ([WWW_DATA, {**WWW_DATA, "container_id": 32, "size": 2}], 1, "gid 33 is mapped twice"),
        ([WWW_DATA, {**WWW_DATA, "container_id": 50}], 1, "host gid 33 is mapped twice"),
        (
            [{**WWW_DATA, "container_id": 50, "host_id": 100033}],
            0,
            "host gid 100033 is the default map's host id of guest gid 33",
        ),
        (
            [WWW_DATA, {"type": "u", "container_id": 0, "host_id": 100000, "count": 65536}],
            None,
            "write every entry one way",
        ),
    ],
)
def test_overlapping_and_root_mapping_pass_throughs_are_refused(
    tmp_path: Path, entries: list[dict[str, Any]], index: int | None, message: str
) -> None:
    errors = _errors(_lab(tmp_path, *entries))
    path = "lxc_configs.910.id_maps" + ("" if index is None else f"[{index}]")
    assert [e for e in errors if e["path"] == path and message in e["message"]], errors


def test_a_pass_through_of_the_default_host_ids_of_the_same_guest_ids_is_no_conflict(
    tmp_path: Path,
) -> None:
    same = {**WWW_DATA, "host_id": 100033}
    assert _errors(_lab(tmp_path, same)) == []

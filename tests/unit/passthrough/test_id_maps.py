"""`id_maps` applied as written: validated, rendered as `lxc.idmap` lines on both drivers,
used to shift mount owners, checked against the host's delegated ids, and a change to the
map of an existing guest is a rebuild (every file would need re-owning)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.cli.proxmox_cmds import needs_of
from phoenix.drivers import idmaps
from phoenix.drivers.base import MountSettings
from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc import idmap
from phoenix.drivers.lxc import mounts as lxc_mounts
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.proxmox import doctor
from phoenix.drivers.proxmox import mounts as pve_mounts
from phoenix.errors import DriverError
from phoenix.inventory import load_inventory
from phoenix.plan.desired import guest_settings
from phoenix.plan.planner import Planner, PlanOptions
from phoenix.plan.preview import plan_commands
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import edit_guest, validate_json

GPU_LAB = "phoenix-etc-gpu-lab"
CUSTOM = [
    ("lxc.idmap", "u 0 100000 1000"),
    ("lxc.idmap", "g 0 100000 1000"),
    ("lxc.idmap", "u 1000 1000 1"),
    ("lxc.idmap", "g 1000 1000 1"),
    ("lxc.idmap", "u 1001 101001 64535"),
    ("lxc.idmap", "g 1001 101001 64535"),
]


def _lab(tmp_path: Path) -> Path:
    target = tmp_path / "etc"
    shutil.copytree(shared_fixture(GPU_LAB), target)
    return target


def test_the_fixture_map_becomes_lxc_idmap_lines_as_written() -> None:
    settings = guest_settings(load_inventory(shared_fixture(GPU_LAB)).guests[910])
    assert [line for line in settings.raw_lxc if line[0] == "lxc.idmap"] == CUSTOM


def test_mount_owner_goes_through_the_guests_own_map() -> None:
    ranges = idmaps.from_raw(CUSTOM)
    mount = MountSettings(target="/data", host_path="/srv/x", owner_uid=1000, owner_gid=1000)
    assert lxc_mounts.host_ids(mount, True, ranges) == (1000, 1000)
    assert pve_mounts.host_ids(mount, True, ranges) == (1000, 1000)
    assert lxc_mounts.host_ids(mount, True, ()) == (101000, 101000)  # the default map
    other = dataclasses.replace(mount, owner_uid=1001, owner_gid=5)
    assert lxc_mounts.host_ids(other, True, ranges) == (101001, 100005)
    with pytest.raises(DriverError, match="outside the guest's id map"):
        lxc_mounts.host_ids(dataclasses.replace(mount, owner_uid=70000), True, ranges)


def test_lxc_config_has_exactly_the_custom_map_and_reads_it_back(tmp_path: Path) -> None:
    settings = guest_settings(load_inventory(shared_fixture(GPU_LAB)).guests[910])
    settings = dataclasses.replace(
        settings,
        gpus=(),
        net=dataclasses.replace(settings.net, mac="02:00:00:00:09:10") if settings.net else None,
    )
    ctx = lxcconf.RenderContext(
        rootfs=tmp_path / "rootfs", cgroup=CgroupHost(1, True, 2), apparmor=False
    )
    text = lxcconf.render(910, settings, ctx)
    lines = [line.split(" = ", 1)[1] for line in text.splitlines() if line.startswith("lxc.idmap")]
    assert lines == [value for _, value in CUSTOM]  # no default map besides it
    parsed = lxcconf.to_settings(lxcconf.parse(text), lxcconf.GuestMeta.of(settings))
    assert parsed.unprivileged
    assert idmaps.from_raw(parsed.raw_lxc) == idmaps.from_raw(CUSTOM)


def test_proxmox_writes_the_map_and_chowns_the_bind_source_through_it() -> None:
    inventory = load_inventory(shared_fixture(GPU_LAB))
    plan = Planner(inventory, OfflineDriver("proxmox"), PlanOptions(gateway=GATEWAY)).plan(None)
    commands = plan_commands(plan, (9, 1)).commands
    argvs = [list(c.argv) for c in commands]
    assert ["chown", "--", "1000:1000", "/srv/hf-cache"] in argvs
    text = "\n".join(c.content or "" for c in commands)
    for _, value in CUSTOM:
        assert f"lxc.idmap: {value}" in text


@pytest.mark.parametrize(
    ("id_maps", "message"),
    [
        (["u 0 100000 65536"], "no range maps the guest's root gid 0"),
        (["b 0 100000 65536", "u 10 5000 1"], "uid 10 is mapped twice"),
        (["b 0 100000 65536", "b 70000 100000 1"], "host uid 100000 is mapped twice"),
        (["b 0 0 65536"], "maps host root"),
        (["u 0 100000 65536", "g 0 200000 65536"], "the guest's root is uid 100000 but gid 200000"),
        (["x 0 1 2"], "id_maps"),
        # str.isdigit() passes these: int() reads Arabic-Indic digits as 100000, and "²"
        # made int() raise inside the validator.
        (["b 0 \u0661\u0660\u0660\u0660\u0660\u0660 65536"], "write 'u|g|b CONTAINER_ID"),
        (["b 0 100000 \u00b2"], "write 'u|g|b CONTAINER_ID"),
        ([{"type": "u", "container_id": 0, "host_id": 1}], "count"),
    ],
)
def test_a_bad_map_is_a_clear_problem(tmp_path: Path, id_maps: list[object], message: str) -> None:
    lab = _lab(tmp_path)
    edit_guest(lab, "910", id_maps=id_maps)
    code, problems, output = validate_json(lab)
    assert code == 1
    assert any(message in p["message"] or message in p["path"] for p in problems), output


def test_a_map_on_a_privileged_guest_is_refused(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    edit_guest(lab, "910", unprivileged=False)
    code, problems, _ = validate_json(lab)
    assert code == 1
    assert any("unprivileged" in p["message"] for p in problems)


def test_the_fixture_validates() -> None:
    code, problems, output = validate_json(shared_fixture(GPU_LAB))
    assert code == 0, output
    assert not [p for p in problems if "id_maps" in p["path"]]


def test_host_delegation_is_checked_range_by_range() -> None:
    ranges = idmaps.from_raw(CUSTOM)
    default_only = "root:100000:65536\n"
    problems = idmap.subid_problems(ranges, default_only, default_only)
    assert problems == [
        "/etc/subuid does not delegate 1000:1 to root (for 'u 1000 1000 1')",
        "/etc/subgid does not delegate 1000:1 to root (for 'g 1000 1000 1')",
    ]
    both = "root:100000:65536\nroot:1000:1\n"
    assert idmap.subid_problems(ranges, both, both) == []
    # Two adjacent lines cover one range together.
    split = "root:100000:30000\nroot:130000:35536\nroot:1000:1\n"
    assert idmap.subid_problems(ranges, split, split) == []


def test_proxmox_doctor_names_the_missing_subuid_lines() -> None:
    needs = needs_of(load_inventory(shared_fixture(GPU_LAB)))
    assert ("u", 1000, 1) in needs.id_ranges and ("g", 1000, 1) in needs.id_ranges

    class Runner:
        def run(self, argv: list[str], **_: object) -> object:
            from phoenix.runners.base import CommandResult

            return CommandResult(0, "root:100000:65536\n", "", tuple(argv))

    checks = doctor.check_subids(Runner(), needs.id_ranges)  # type: ignore[arg-type]
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == ["/etc/subuid (id_maps)", "/etc/subgid (id_maps)"]
    assert "'root:1000:1'" in failed[0].fix


def test_changing_the_map_of_an_existing_guest_needs_recreate() -> None:
    inventory = load_inventory(shared_fixture(GPU_LAB))
    desired = guest_settings(inventory.guests[910])
    observed = dataclasses.replace(
        desired, raw_lxc=tuple(p for p in desired.raw_lxc if p[0] != "lxc.idmap")
    )
    from phoenix.plan.planner import _idmap_change

    shown = _idmap_change(desired.diff(observed))
    assert shown and "u 1000 1000 1" in shown[0] and "default" in shown[0]
    # Writing the default map out is no change.
    default = dataclasses.replace(
        observed, raw_lxc=(("lxc.idmap", "u 0 100000 65536"), ("lxc.idmap", "g 0 100000 65536"))
    )
    assert _idmap_change(default.diff(observed)) == []


def test_a_clone_is_reowned_from_its_sources_map_to_its_own(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    root = tmp_path / "rootfs"
    (root / "home").mkdir(parents=True)
    user_file = root / "home" / "f"
    user_file.write_text("x")
    os.chown(root, 100000, 100000)
    os.chown(root / "home", 100000, 100000)
    os.chown(user_file, 101000, 101000)  # uid 1000 under the default map
    idmap.reown_tree(root, idmaps.DEFAULT, idmaps.from_raw(CUSTOM))
    assert (user_file.stat().st_uid, user_file.stat().st_gid) == (1000, 1000)
    assert root.stat().st_uid == 100000
    idmap.reown_tree(root, idmaps.from_raw(CUSTOM), idmaps.DEFAULT)
    assert user_file.stat().st_uid == 101000


def test_usernsexec_unpacks_with_the_guests_map() -> None:
    argv = idmap.usernsexec_prefix(idmaps.from_raw(CUSTOM))
    assert argv[:3] == ["lxc-usernsexec", "-m", "u:0:100000:1000"]
    assert argv.count("-m") == 6 and argv[-1] == "--"
    assert idmap.usernsexec_prefix() == ["lxc-usernsexec", "-m", "b:0:100000:65536", "--"]

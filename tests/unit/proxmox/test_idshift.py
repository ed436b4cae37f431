"""A guest whose id_maps do not keep Proxmox's default owns its files through its map from
the first boot: `pct create` unpacks every template under the default map (pve-container
`src/PVE/LXC/Create.pm`, `restore_archive` with `parse_id_maps($conf)` of a config that
has no `lxc.idmap` yet), so the driver re-owns the root disk on the node before the guest
starts (`pct mount`, Phoenix's program, `pct unmount`; pve-container `src/PVE/CLI/pct.pm`).

The fake node unpacks a real template tree under the default map (as root), runs the
program for real, and the owners, modes and file capabilities are read back from disk."""

from __future__ import annotations

import dataclasses
import os
import stat
import struct
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import idshift
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import PhoenixError
from phoenix.inventory.idcompose import compose
from phoenix.inventory.models import IdMap
from tests.unit.proxmox.fakenode import FakeNode, options

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chowns files to guest ids")

TEMPLATE = "/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst"
BASE = GuestSettings("g", 512, 512, 1, 8, "local-zfs", True, None)
CAP = "security.capability"
NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # cap_net_raw+ep, v2
ROOT_AT_200000 = (("lxc.idmap", "u 0 200000 65536"), ("lxc.idmap", "g 0 200000 65536"))


def template_tree(at: Path) -> Path:
    """A template as its archive holds it: owners as the guest sees them."""
    files: dict[str, tuple[int, int, int]] = {
        "etc/passwd": (0, 0, 0o644),
        "usr/bin/su": (0, 0, 0o4755),
        "usr/bin/ping": (0, 0, 0o755),
        "var/mail/root": (0, 8, 0o2660),
        "var/www/index.html": (33, 33, 0o644),
        "home/alice/notes": (1000, 1000, 0o600),
    }
    for name, (uid, gid, mode) in files.items():
        path = at / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        os.chown(path, uid, gid)
        path.chmod(mode)
    os.chown(at / "var/www", 33, 33)
    os.chown(at / "home/alice", 1000, 1000)
    os.setxattr(at / "usr/bin/ping", CAP, NET_RAW)
    os.link(at / "home/alice/notes", at / "home/alice/notes.link")
    (at / "home/alice/latest").symlink_to("notes")
    os.lchown(at / "home/alice/latest", 1000, 1000)
    return at


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path / "node", template_tree=template_tree(tmp_path / "template"))


def driver_on(node: FakeNode) -> ProxmoxDriver:
    return ProxmoxDriver(node, "localhost", sleep=lambda _: None)


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def cap_root(path: Path) -> int:
    """The root id of a v3 file capability (the host uid it was made for)."""
    cap = os.getxattr(path, CAP)
    assert len(cap) == 24 and cap[3] == 3, cap.hex()
    assert struct.unpack("<I", cap[4:8])[0] == 1 << 13  # still cap_net_raw
    return int(struct.unpack("<I", cap[20:])[0])


def test_the_fake_node_unpacks_under_the_default_map(node: FakeNode) -> None:
    driver_on(node).create(300, TEMPLATE, BASE)
    disk = node.disk(300)
    assert owner(disk / "etc/passwd") == (100_000, 100_000)
    assert owner(disk / "home/alice/notes") == (101_000, 101_000)
    assert cap_root(disk / "usr/bin/ping") == 100_000
    assert not any(c[:2] == ("pct", "mount") for c in node.calls)  # nothing to re-own


def test_a_map_with_root_elsewhere_owns_the_files_from_the_first_boot(node: FakeNode) -> None:
    wanted = dataclasses.replace(BASE, raw_lxc=ROOT_AT_200000)
    driver_on(node).create(300, TEMPLATE, wanted)
    disk = node.disk(300)
    assert owner(disk) == (200_000, 200_000)
    assert owner(disk / "etc/passwd") == (200_000, 200_000)
    assert owner(disk / "var/mail/root") == (200_000, 200_008)
    assert owner(disk / "var/www/index.html") == (200_033, 200_033)
    assert owner(disk / "home/alice/notes") == (201_000, 201_000)
    assert owner(disk / "home/alice/latest") == (201_000, 201_000)  # the link itself
    assert os.stat(disk / "home/alice/notes.link").st_nlink == 2
    # chown clears setuid/setgid and file capabilities: both are back, the capability for
    # the new root (a v3 capability is only honoured for the namespace whose root it names)
    assert stat.S_IMODE(os.lstat(disk / "usr/bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(disk / "var/mail/root").st_mode) == 0o2660
    assert cap_root(disk / "usr/bin/ping") == 200_000
    # before the first start, and the guest's map written after it
    verbs = [c[1] if c[0] == "pct" else c[0] for c in node.mutations()]
    assert verbs[:4] == ["create", "mount", "python3", "unmount"]
    assert "start" not in verbs
    conf = node.conf_text(300)
    assert "lxc.idmap: u 0 200000 65536" in conf and "lock:" not in conf


def test_pass_through_maps_keep_root_and_move_only_their_ids(node: FakeNode) -> None:
    """The original tool's newest form: gid 33 and uid/gid 1000 are the host's own ids."""
    maps = [
        IdMap.model_validate({"type": "gid", "container_id": 33, "host_id": 33, "size": 1}),
        IdMap.model_validate({"type": "uid", "container_id": 1000, "host_id": 1000, "size": 1}),
        IdMap.model_validate({"type": "gid", "container_id": 1000, "host_id": 1000, "size": 1}),
    ]
    raw = tuple(("lxc.idmap", r.line) for r in compose(maps))
    driver_on(node).create(300, TEMPLATE, dataclasses.replace(BASE, raw_lxc=raw))
    disk = node.disk(300)
    assert owner(disk / "etc/passwd") == (100_000, 100_000)
    assert owner(disk / "var/www/index.html") == (100_033, 33)
    assert owner(disk / "home/alice/notes") == (1000, 1000)
    assert cap_root(disk / "usr/bin/ping") == 100_000


def test_a_clone_is_owned_through_its_own_map_and_its_source_is_untouched(
    node: FakeNode,
) -> None:
    driver = driver_on(node)
    driver.create(300, TEMPLATE, BASE)
    driver.snapshot(300, "base")
    driver.clone(300, 301, "base", dataclasses.replace(BASE, raw_lxc=ROOT_AT_200000))
    assert owner(node.disk(301) / "home/alice/notes") == (201_000, 201_000)
    assert owner(node.disk(300) / "home/alice/notes") == (101_000, 101_000)
    # and back to the default map for a clone of the clone
    driver.snapshot(301, "again")
    driver.clone(301, 302, "again", BASE)
    assert owner(node.disk(302) / "home/alice/notes") == (101_000, 101_000)
    assert cap_root(node.disk(302) / "usr/bin/ping") == 100_000


def test_a_failed_re_own_still_unmounts(node: FakeNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idshift, "SHIFTER", "import sys\nsys.exit('disk full')\n")
    monkeypatch.setattr("tests.unit.proxmox.fakenode.idshift.SHIFTER", idshift.SHIFTER)
    with pytest.raises(PhoenixError, match="disk full"):
        driver_on(node).create(300, TEMPLATE, dataclasses.replace(BASE, raw_lxc=ROOT_AT_200000))
    conf = node.conf(300)
    assert conf is not None and "lock" not in options(conf.main)


def test_a_run_killed_while_mounted_is_destroyed_on_the_next(node: FakeNode) -> None:
    """kill -9 between `pct mount` and `pct unmount`: the journal marks the create unfinished
    and the next run destroys the guest, which Proxmox refuses while `lock: mounted`."""
    driver_on(node).create(300, TEMPLATE, BASE)
    assert node.run(["pct", "mount", "300"]).ok
    assert "is locked (mounted)" in node.run(["pct", "mount", "300"]).stderr
    assert "is locked (mounted)" in node.run(["pct", "destroy", "300"]).stderr
    driver_on(node).destroy(300)
    assert node.conf(300) is None


def test_the_fake_node_removes_only_the_mounted_lock(node: FakeNode) -> None:
    driver_on(node).create(300, TEMPLATE, BASE)
    said = node.run(["pct", "unmount", "300"]).stderr
    assert "no lock found trying to remove 'mounted' lock" in said
    node.put_conf(300, node.conf_text(300) + "lock: backup\n")
    assert "found lock 'backup'" in node.run(["pct", "unmount", "300"]).stderr


def test_a_map_without_nobody_is_refused_before_anything_runs(node: FakeNode) -> None:
    short = (("lxc.idmap", "u 0 200000 1000"), ("lxc.idmap", "g 0 200000 65536"))
    with pytest.raises(PhoenixError, match=r"no host id to uid 65534 \(nobody\)"):
        driver_on(node).create(300, TEMPLATE, dataclasses.replace(BASE, raw_lxc=short))
    assert node.mutations() == []


def test_re_owning_is_needed_only_when_a_map_moves_an_id() -> None:
    split = (
        ("u", 0, 100_000, 1000),
        ("u", 1000, 101_000, 64_536),
        ("g", 0, 100_000, 65_536),
    )
    from phoenix.drivers.idmaps import IdRange

    ranges = tuple(IdRange(k, g, h, n) for k, g, h, n in split)  # type: ignore[arg-type]
    assert not idshift.needed((), ranges)  # the default map, written in two pieces
    assert idshift.commands(300, (), ()) == []
    moved = tuple(IdRange(r.kind, r.guest, r.host + 1, r.count) for r in ranges)
    assert idshift.needed((), moved)
    assert [c[:2] for c in idshift.commands(300, (), moved)] == [
        ["pct", "mount"],
        ["python3", "-c"],
        ["pct", "unmount"],
    ]


def test_validate_on_proxmox_refuses_a_map_without_nobody(tmp_path: Path) -> None:
    import json
    import shutil

    from phoenix.inventory import validate_config_dir
    from phoenix.inventory.problems import errors
    from tests.conftest import shared_fixture

    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), etc)
    path = etc / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"]["101"]["id_maps"] = ["u 0 200000 1000", "g 0 200000 65536"]
    path.write_text(json.dumps(data))
    _, problems = validate_config_dir(etc, driver="proxmox")
    found = [p for p in errors(problems) if "65534" in p.message]
    assert [p.path for p in found] == ["lxc_configs.101.id_maps"]
    assert "uid 65534 (nobody)" in found[0].message
    _, on_lxc = validate_config_dir(etc, driver="lxc")
    assert not [p for p in on_lxc if "65534" in p.message]

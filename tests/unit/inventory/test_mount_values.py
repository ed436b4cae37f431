"""Volume and mount values that reach Proxmox's `mpN` property string: a `pool` is a storage
id (a `,` or `/` in it used to reach `pct set --mpN`), and paths are written plainly (no
`.`/`..`/empty components, which pve-container refuses and which would defeat the
one-mount-per-path check; no `,` or `=`, which Proxmox reads as more options). Each is
refused at validate, at its own path; the property-string builder refuses them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.drivers.base import MountSettings
from phoenix.drivers.proxmox import mounts
from phoenix.drivers.proxmox.properties import PropertyStringError, render_property_string
from phoenix.errors import DriverError
from tests.unit.inventory.helpers import edit_guest, validate_json
from tests.unit.proxmox import apischema


def errors_at(config_dir: Path, path: str) -> list[str]:
    code, problems, _ = validate_json(config_dir)
    found = [p["message"] for p in problems if p["path"] == path and p["severity"] == "error"]
    assert code == 1 and found, problems
    return found


@pytest.mark.parametrize(
    "pool", ["fast,mp=/etc", "fastData/shared", "fast data", "fast=1", "-fast", "fast\n"]
)
def test_a_volume_pool_is_a_storage_id(minimal_dir: Path, pool: str) -> None:
    volume = {"name": "models", "pool": pool, "size_gb": 8, "mount_point": "/models"}
    edit_guest(minimal_dir, "102", volumes=[volume], zfs_volumes=[volume | {"mount_point": "/z"}])
    messages = errors_at(minimal_dir, "lxc_configs.102.volumes[0].pool")
    assert any("storage id" in m for m in messages), messages
    errors_at(minimal_dir, "lxc_configs.102.zfs_volumes[0].pool")


@pytest.mark.parametrize(
    "path", ["/data/../etc", "/data/..", "/a/./b", "/a/.", "/a//b", "//a", "/srv/a=b", "/a,ro=1"]
)
def test_mount_paths_are_written_plainly(minimal_dir: Path, path: str) -> None:
    edit_guest(
        minimal_dir,
        "102",
        mount_points=[
            {"host_path": path, "container_path": "/ok"},
            {"host_path": "/srv/ok", "container_path": path},
        ],
        volumes=[{"name": "v", "pool": "local", "size_gb": 1, "mount_point": path}],
    )
    for where in ("mount_points[0].host_path", "mount_points[1].container_path"):
        (message,) = errors_at(minimal_dir, f"lxc_configs.102.{where}")
        assert repr(path) in message and ("Proxmox" in message or "'..'" in message)
    errors_at(minimal_dir, "lxc_configs.102.volumes[0].mount_point")


def test_plain_paths_with_a_trailing_slash_still_validate(minimal_dir: Path) -> None:
    edit_guest(
        minimal_dir,
        "102",
        mount_points=[{"host_path": "/srv/data/", "container_path": "/data/"}],
        volumes=[{"name": "v", "pool": "quickOS-lxc-disks", "size_gb": 1, "mount_point": "/v"}],
    )
    _, problems, _ = validate_json(minimal_dir)
    assert [p for p in problems if p["severity"] == "error"] == [], problems


@pytest.mark.parametrize(
    "mount",
    [
        MountSettings(target="/m", pool="fast,mp=/etc", size_gb=1),
        MountSettings(target="/m", pool="a=b", size_gb=1),
        MountSettings(target="/m", host_path="/srv/a,ro=0"),
        MountSettings(target="/m,ro=0", host_path="/srv/a"),
    ],
)
def test_the_mount_builder_never_writes_a_separator_in_a_value(mount: MountSettings) -> None:
    """The same rule in the one builder: nothing reaches `pct set` even if validate is
    bypassed, and the error is Phoenix's one-line DriverError, not a traceback."""
    with pytest.raises(DriverError):
        mounts.changes(101, [mount], [], [])


def test_the_property_string_builder_refuses_heads_and_keys_that_add_options() -> None:
    for head in ("local:8,mp=/etc", "a=b", "", "x\ny"):
        with pytest.raises(PropertyStringError):
            render_property_string([("mp", "/m")], head=head)
    with pytest.raises(PropertyStringError):
        render_property_string([("", "x")])
    assert render_property_string([("mp", "/m"), ("ro", "1")], head="/srv") == "/srv,mp=/m,ro=1"


@pytest.mark.parametrize("path", ["/a/../b", "/a/./b", "/a/..", "/a/.", "../a"])
def test_the_schema_check_refuses_what_pve_container_refuses(path: str) -> None:
    report = apischema.Report()
    apischema.check_format("mp", path, "pve-lxc-mp-string", report, {})
    assert report.problems


def test_the_schema_check_keeps_plain_mount_paths() -> None:
    report = apischema.Report()
    for path in ("/a/b", "/a/..b", "/a/.hidden", "local:subvol-1-disk-0"):
        apischema.check_format("mp", path, "pve-lxc-mp-string", report, {})
    assert report.problems == []

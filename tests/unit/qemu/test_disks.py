"""LocalVms' disks and seeds with the real tools (qemu-img, mkfs.vfat, mtools; no VM is
booted): linked clones are overlays on a read-only template, full clones copies, disks
only grow, snapshots are taken once, a seed is rebuilt only when it changes, and a pid is
believed only when /proc shows that VM's QEMU."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from phoenix.drivers.qemu.cloudinit import SeedSpec
from phoenix.drivers.qemu.vms import LocalVms
from phoenix.errors import DriverError
from phoenix.runners.local import LocalRunner


@pytest.fixture
def vms(tmp_path: Path) -> LocalVms:
    return LocalVms(tmp_path / "vms", LocalRunner(), "tcg")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    return path


def test_template_linked_and_full_clones(vms: LocalVms, image: Path) -> None:
    vms.create(900, image, 2)
    assert vms.disk_gb(900) == 2 and vms.backing_file(900) is None  # a copy, not the cache
    with pytest.raises(DriverError, match="needs a template"):
        vms.clone(900, 901, linked=True, disk_gb=None)
    vms.mark_template(900)
    assert vms.is_template(900) and vms.paths(900).disk.stat().st_mode & 0o222 == 0
    vms.clone(900, 901, linked=True, disk_gb=4)
    assert vms.backing_file(901) == vms.paths(900).disk and vms.disk_gb(901) == 4
    vms.clone(900, 902, linked=False, disk_gb=None)
    assert vms.backing_file(902) is None and vms.disk_gb(902) == 2
    with pytest.raises(DriverError, match="already exists"):
        vms.clone(900, 901, linked=True, disk_gb=None)
    with pytest.raises(DriverError, match="does not exist"):
        vms.clone(999, 903, linked=False, disk_gb=None)
    with pytest.raises(DriverError, match="is a template"):
        vms.start(900, hw=None)  # type: ignore[arg-type]


def test_disks_only_grow_and_snapshots_are_taken_once(vms: LocalVms, image: Path) -> None:
    vms.create(910, image, None)
    vms.resize(910, 3)
    vms.resize(910, 3)
    assert vms.disk_gb(910) == 3
    with pytest.raises(DriverError, match="can only grow"):
        vms.resize(910, 2)
    vms.snapshot(910, "pre_features")
    vms.snapshot(910, "pre_features")
    vms.snapshot(910, "post_features")
    assert vms.snapshots(910) == ["pre_features", "post_features"]
    vms.delete(910)
    assert not vms.paths(910).root.exists()
    vms.delete(910)  # nothing left: nothing to do


def test_seed_is_rebuilt_only_when_it_changes(vms: LocalVms, image: Path) -> None:
    vms.create(920, image, None)
    spec = SeedSpec(hostname="vm", mac="52:54:00:00:03:98", username="u")
    assert vms.write_seed(920, spec)
    first = vms.paths(920).seed.stat().st_mtime_ns
    assert not vms.write_seed(920, spec)
    assert vms.paths(920).seed.stat().st_mtime_ns == first
    listing = subprocess.run(
        ["mdir", "-b", "-i", str(vms.paths(920).seed), "::"], capture_output=True, text=True
    ).stdout
    assert {"::/meta-data", "::/user-data", "::/network-config"} <= set(listing.split())
    label = subprocess.run(["mlabel", "-s", "-i", str(vms.paths(920).seed), "::"],
                           capture_output=True, text=True).stdout  # fmt: skip
    assert "CIDATA" in label
    assert vms.write_seed(920, SeedSpec(hostname="vm2", mac="52:54:00:00:03:98"))


def test_a_pid_is_believed_only_for_that_vms_qemu(vms: LocalVms, image: Path) -> None:
    vms.create(930, image, None)
    vms.paths(930).pidfile.write_text(str(os.getpid()))  # alive, but not QEMU
    assert vms.pid(930) is None and not vms.running(930)
    vms.paths(930).pidfile.write_text("not a pid")
    assert vms.pid(930) is None
    vms.stop(930)  # not running: only the stale files go
    assert not vms.paths(930).pidfile.exists()

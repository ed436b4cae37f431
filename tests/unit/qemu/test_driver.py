"""The local VM driver with the real disk tools (qemu-img, mkfs.vfat, mtools; no VM is
booted): a VM exists exactly when its definition does, observe reads back what create and
configure applied (so a converged VM plans nothing), an interrupted create is a leftover
the next create removes, clones are linked or copies, and destroy leaves nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, NetSettings, VmConfig
from phoenix.drivers.qemu import meta
from phoenix.drivers.qemu.driver import QemuDriver, host_nameservers
from phoenix.drivers.qemu.vms import UNTAGGED
from phoenix.errors import DriverError, ParseError
from phoenix.plan import reaper
from phoenix.plan.lock import host_lock
from phoenix.runners.local import LocalRunner


@pytest.fixture
def driver(tmp_path: Path) -> QemuDriver:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nnameserver 10.9.9.9\n")
    return QemuDriver(
        tmp_path / "vms",
        tmp_path / "cache",
        state_dir=tmp_path / "state",
        fw_table="phoenix_vmfw_unit",
        accel="tcg",
        resolv_conf=resolv,
    )


@pytest.fixture
def image(tmp_path: Path) -> str:
    path = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    return str(path)


def settings(vmid: int, disk_gb: int = 3, **changes: object) -> GuestSettings:
    net = NetSettings(
        "eth0", "phxtbr9", f"10.250.9.{vmid % 100}/24", "10.250.9.1", "52:54:00:00:00:01"
    )
    base = GuestSettings(
        hostname=f"vm{vmid}",
        memory_mb=1024,
        swap_mb=0,
        cores=2,
        disk_gb=disk_gb,
        storage="local",
        unprivileged=False,
        net=net,
        vm=VmConfig("phx", ("ssh-ed25519 AAAA k",)),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def seed_text(driver: QemuDriver, vmid: int, name: str) -> str:
    seed = driver.vms.paths(vmid).seed
    out = subprocess.run(["mtype", "-i", str(seed), f"::{name}"], capture_output=True, check=True)
    return out.stdout.decode()


def test_create_then_observe_reads_back_what_was_applied(driver: QemuDriver, image: str) -> None:
    desired = settings(901)
    driver.create(901, image, desired)
    seen = driver.observe(901)
    assert seen.state == "stopped" and seen.settings is not None
    assert desired.diff(seen.settings) == {}
    assert seen.settings.disk_gb == 3
    # the host's resolvers without the loopback stub, as containers get them
    assert '"10.9.9.9"' in seed_text(driver, 901, "network-config")
    assert "phx" in seed_text(driver, 901, "user-data")
    before = len(driver.log.mutations())
    driver.observe(901)
    assert driver.log.mutations()[before:] == []  # observing changes nothing
    with pytest.raises(DriverError, match="already exists"):
        driver.vms.create(901, Path(image), None)


def test_an_interrupted_create_is_a_leftover_the_next_create_removes(
    driver: QemuDriver, image: str
) -> None:
    driver.create(902, image, settings(902))
    driver._meta_path(902).unlink()  # killed before the definition was written
    seen = driver.observe(902)
    assert seen.state == "missing" and seen.leftover and "before its vm.json" in seen.leftover
    driver.create(902, image, settings(902))
    assert driver.observe(902).exists


def test_configure_rewrites_the_seed_only_for_what_cloud_init_reads(
    driver: QemuDriver, image: str
) -> None:
    driver.create(903, image, settings(903))
    digest = (driver.vms.paths(903).root / "seed.digest").read_text()
    driver.configure(903, settings(903, cores=4), frozenset({"cores"}))
    assert (driver.vms.paths(903).root / "seed.digest").read_text() == digest
    renamed = settings(903, cores=4, hostname="renamed")
    driver.configure(903, renamed, frozenset({"hostname"}))
    assert "renamed" in seed_text(driver, 903, "meta-data")
    seen = driver.observe(903).settings
    assert seen is not None and renamed.diff(seen) == {}


def test_clones_are_linked_to_a_template_or_copies(driver: QemuDriver, image: str) -> None:
    driver.create(904, image, settings(904, disk_gb=0))
    assert driver.observe(904).settings.disk_gb == 1  # type: ignore[union-attr]  # kept
    driver.mark_template(904)
    assert driver.observe(904).is_template
    driver.clone(904, 905, None, settings(905, disk_gb=4))
    assert driver.vms.backing_file(905) == driver.vms.paths(904).disk
    assert driver.observe(905).settings.disk_gb == 4  # type: ignore[union-attr]
    full = settings(906, vm=VmConfig("phx", full_clone=True))
    driver.clone(904, 906, None, full)
    assert driver.vms.backing_file(906) is None
    driver.snapshot(906, "golden")
    driver.clone(906, 907, "golden", settings(907))
    assert driver.vms.backing_file(907) is None and driver.list_snapshots(906) == ["golden"]


def test_destroy_leaves_nothing(driver: QemuDriver, image: str) -> None:
    driver.create(908, image, settings(908))
    driver.destroy(908)
    assert driver.observe(908).state == "missing" and driver.observe(908).leftover is None
    assert not list(driver.vm_path.iterdir())
    driver.destroy(908)  # nothing to do


def test_a_definition_phoenix_did_not_write_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"vm.json: not a VM definition Phoenix wrote"):
        meta.from_json({"hostname": "x"}, 1, "vm.json")
    data = meta.to_json(settings(1))
    assert meta.from_json(json.loads(json.dumps(data)), 3, "vm.json") == settings(1)


def test_host_nameservers_skip_the_loopback_stub() -> None:
    assert host_nameservers("nameserver 127.0.0.53\nnameserver 1.1.1.1\n", "10.0.0.1") == (
        "1.1.1.1",
    )
    assert host_nameservers("nameserver 127.0.0.53\n", "10.0.0.1") == ("10.0.0.1",)
    assert host_nameservers("", None) == ()


def test_a_vm_started_by_a_run_that_was_killed_is_not_reaped_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QEMU is started the way LocalVms starts it (daemonized, `UNTAGGED`); the next run's
    lock ends a killed run's children (a half-done tar), never the VM it started."""
    dead = _gone_pid()
    monkeypatch.setenv(reaper.ENV, f"{tmp_path / 'phoenix.lock'}|{dead}")
    daemon = ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"]
    vm = int(LocalRunner().run(daemon, env=UNTAGGED).stdout)
    child = int(LocalRunner().run(daemon).stdout)
    try:
        with host_lock(tmp_path):
            pass
        assert reaper._alive(vm) and not reaper._alive(child)
    finally:
        for pid in (vm, child):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _gone_pid() -> int:
    proc = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(proc.stdout)

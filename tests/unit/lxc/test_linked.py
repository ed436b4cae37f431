"""Linked clones: overlay rootfs render/parse, the dependency rules, files in the upper."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from phoenix.drivers.base import GuestSettings, NetSettings
from phoenix.drivers.factory import make_driver as factory_driver
from phoenix.drivers.lxc import LxcDriver, guestfiles, linked
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.drivers.lxc.config import GuestMeta, RenderContext, RootfsSpec
from phoenix.errors import DriverError
from phoenix.inventory.loader import load_inventory
from phoenix.runners.base import CommandResult
from phoenix.runners.recorded import RecordedRunner

V1 = CgroupHost(1, memsw=True, cpus=2)
NET = NetSettings("eth0", "phxtbr0", "10.213.77.5/24", "10.213.77.1", "02:00:00:00:00:05")
SETTINGS = GuestSettings("g", 512, 128, 1, 4, "local", True, NET)
MINIMAL = Path(__file__).parents[2] / "inventories" / "valid" / "minimal"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chowns to the mapped root")


def make_driver(tmp_path: Path, runner: RecordedRunner, mode: str = "linked") -> LxcDriver:
    subids = tmp_path / "subid"
    subids.write_text("root:100000:65536\n")
    return LxcDriver(
        tmp_path / "lxc",
        tmp_path / "cache",
        runner,
        cgroup=V1,
        apparmor=False,
        resolv_conf=tmp_path / "resolv.conf",
        subid_files=(subids,),
        clone_mode=mode,  # type: ignore[arg-type]
    )


def write_guest(
    driver: LxcDriver, ctid: int, rootfs: RootfsSpec, settings: GuestSettings = SETTINGS
) -> Path:
    cdir = driver.lxc_path / str(ctid)
    cdir.mkdir(parents=True, exist_ok=True)
    ctx = RenderContext(rootfs.path, V1, False, lower=rootfs.lower)
    (cdir / "config").write_text(lxcconf.render(ctid, settings, ctx))
    (cdir / "phoenix.json").write_text(GuestMeta.of(settings).to_json())
    return cdir


def add_snapshot(driver: LxcDriver, ctid: int, index: int, name: str) -> Path:
    """A snapshot as lxc-snapshot leaves it: snaps/snapN/{comment,config,rootfs/etc}."""
    snap = driver.lxc_path / str(ctid) / "snaps" / f"snap{index}"
    (snap / "rootfs" / "etc" / "network").mkdir(parents=True)
    (snap / "rootfs" / "etc" / "hostname").write_text("template\n")
    (snap / "comment").write_text(name + "\n")
    ctx = RenderContext(snap / "rootfs", V1, False)
    (snap / "config").write_text(lxcconf.render(ctid, SETTINGS, ctx))
    return snap


# ---- config -----------------------------------------------------------------------------


def test_overlay_rootfs_renders_and_parses_back(tmp_path: Path) -> None:
    lower, upper = Path("/l/100/snaps/snap0/rootfs"), Path("/l/101/overlay/delta")
    text = lxcconf.render(101, SETTINGS, RenderContext(upper, V1, False, lower=lower))
    assert f"lxc.rootfs.path = overlay:{lower}:{upper}\n" in text
    assert "lxc.rootfs.options = userxattr\n" in text
    parsed = lxcconf.parse(text)
    assert lxcconf.rootfs_spec(parsed) == RootfsSpec(upper, lower, "userxattr")
    # the rootfs kind is not a setting: a linked guest observes exactly like a copied one
    assert lxcconf.to_settings(parsed, GuestMeta.of(SETTINGS)) == SETTINGS
    plain = lxcconf.render(101, SETTINGS, RenderContext(upper, V1, False))
    assert "lxc.rootfs.path = dir:/l/101/overlay/delta\n" in plain
    assert "lxc.rootfs.options" not in plain
    assert lxcconf.rootfs_spec(lxcconf.parse(plain)) == RootfsSpec(upper)


def test_unreadable_overlay_rootfs_is_an_error() -> None:
    with pytest.raises(DriverError, match="unreadable overlay"):
        lxcconf.rootfs_spec(lxcconf.parse("lxc.rootfs.path = overlay:/only-one\n"))


def test_paths_with_separators_cannot_be_linked() -> None:
    assert linked.paths_usable(Path("/var/lib/phoenix/lxc/100"))
    assert not linked.paths_usable(Path("/srv/a:b/100"))
    assert not linked.paths_usable(Path("/srv/a,b/100"))


def test_merged_mount_stacks_the_upper_on_the_lower() -> None:
    spec = RootfsSpec(Path("/u"), Path("/l"), "userxattr")
    argv = linked.merged_mount_argv(spec, Path("/m"))
    assert argv == ["mount", "-t", "overlay", "overlay", "-o", "ro,userxattr,lowerdir=/u:/l", "/m"]


# ---- dependencies -------------------------------------------------------------------------


def linked_lab(driver: LxcDriver) -> tuple[Path, Path]:
    """Source 100 with snapshots final-form (used) and spare; 101 linked on final-form,
    103's snapshot linked on it too, 102 a full copy; 104 is on another guest's snapshot."""
    write_guest(driver, 100, RootfsSpec(driver.lxc_path / "100" / "rootfs"))
    used = add_snapshot(driver, 100, 0, "final-form")
    spare = add_snapshot(driver, 100, 1, "spare")
    write_guest(driver, 101, RootfsSpec(driver.lxc_path / "101" / "overlay/delta", used / "rootfs"))
    write_guest(driver, 102, RootfsSpec(driver.lxc_path / "102" / "rootfs"))
    write_guest(driver, 103, RootfsSpec(driver.lxc_path / "103" / "rootfs"))
    snap = driver.lxc_path / "103" / "snaps" / "snap0"
    snap.mkdir(parents=True)
    ctx = RenderContext(snap / "overlay/delta", V1, False, lower=used / "rootfs")
    (snap / "config").write_text(lxcconf.render(103, SETTINGS, ctx))
    write_guest(driver, 200, RootfsSpec(driver.lxc_path / "200" / "rootfs"))
    other = add_snapshot(driver, 200, 0, "final-form")
    write_guest(
        driver, 104, RootfsSpec(driver.lxc_path / "104" / "overlay/delta", other / "rootfs")
    )
    return used, spare


def test_dependents_are_found_in_configs_and_snapshot_configs(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, RecordedRunner())
    linked_lab(driver)
    found = linked.dependents(driver.lxc_path, 100)
    assert {(d.ctid, d.snapshot_dir) for d in found} == {(101, "snap0"), (103, "snap0")}
    assert driver.dependents(100) == [101, 103]
    assert driver.dependents(200) == [104]
    assert driver.dependents(101) == []


def test_the_source_cannot_be_destroyed_while_linked_clones_exist(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, copying_runner())
    linked_lab(driver)
    with pytest.raises(DriverError, match=r"destroy guest 100: linked clone\(s\) 101, 103 "):
        driver.destroy(100)
    assert driver.log.mutations() == []
    assert (driver.lxc_path / "100" / "snaps" / "snap0" / "rootfs").is_dir()

    # deleting the dependents first is the way out
    driver.destroy(101)
    driver.destroy(103)
    assert not (driver.lxc_path / "101").exists()
    assert (driver.lxc_path / "100" / "snaps" / "snap0" / "rootfs" / "etc" / "hostname").exists()
    driver.destroy(100)
    assert not (driver.lxc_path / "100").exists()


# ---- cloning ---------------------------------------------------------------------------------


def stopped_runner() -> RecordedRunner:
    runner = RecordedRunner()
    runner.respond(["lxc-info"], "STOPPED\n")
    runner.respond(["nft"], "", returncode=1)  # no firewall table
    return runner


def copying_runner() -> RecordedRunner:
    """Stopped guests; `cp -a` and `rm -rf` really run (on tmp dirs), and the merged
    read-only mount of a linked rootfs is stood in for by copying lower then upper."""
    runner = stopped_runner()

    def host(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:3] == ("cp", "-a", "--"):
            subprocess.run(["cp", "-a", "--", argv[3], argv[4]], check=True)
        elif argv[0] == "mount":
            upper, lower = argv[5].rpartition("lowerdir=")[2].split(":")
            for layer in (lower, upper):
                subprocess.run(["cp", "-a", "--", f"{layer}/.", argv[6]], check=True)
        elif argv[:2] == ("rm", "-rf"):
            subprocess.run(list(argv), check=True)
        elif argv[0] == "umount":
            for entry in Path(argv[1]).iterdir():
                shutil.rmtree(entry)
        else:
            return None
        return CommandResult(0, "", "", argv)

    runner.responders.insert(0, host)
    return runner


def source_with_snapshot(driver: LxcDriver, tmp_path: Path) -> Path:
    (tmp_path / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    write_guest(driver, 100, RootfsSpec(driver.lxc_path / "100" / "rootfs"))
    snap = add_snapshot(driver, 100, 0, "final-form")
    for path in [snap / "rootfs", *(snap / "rootfs").rglob("*")]:
        os.lchown(path, 100_000, 100_000)
    return snap / "rootfs"


@needs_root
def test_linked_clone_writes_identity_files_to_its_upper_only(tmp_path: Path) -> None:
    runner = copying_runner()
    driver = make_driver(tmp_path, runner)
    lower = source_with_snapshot(driver, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in lower.rglob("*")}
    want = replace(SETTINGS, hostname="clone")
    driver.clone(100, 101, "final-form", want)

    cdir = driver.lxc_path / "101"
    upper = cdir / "overlay" / "delta"
    assert not any(argv[0] == "cp" for argv in runner.calls)
    spec = lxcconf.rootfs_spec(lxcconf.parse((cdir / "config").read_text()))
    assert spec == RootfsSpec(upper, lower, "userxattr")
    for name in ("hostname", "hosts", "resolv.conf", "machine-id", "network/interfaces"):
        assert (upper / "etc" / name).is_file(), name
    assert (upper / "etc" / "hostname").read_text() == "clone\n"
    assert os.stat(upper / "etc" / "hostname").st_uid == 100_000
    # copied-up dirs and the upper root mirror the lower's owner and mode
    assert os.stat(upper / "etc" / "network").st_uid == 100_000
    assert os.stat(upper).st_uid == os.stat(cdir / "overlay" / "work").st_uid == 100_000
    assert {p: p.stat().st_mtime_ns for p in lower.rglob("*")} == before
    assert (lower / "etc" / "hostname").read_text() == "template\n"
    assert not (lower / "etc" / "machine-id").exists()
    meta = json.loads((cdir / "phoenix.json").read_text())
    assert meta["template_source"] == "100@final-form"

    seen = driver.observe(101).settings
    assert seen is not None and seen.net is not None
    assert replace(want, net=replace(NET, mac=seen.net.mac)).diff(seen) == {}
    again = make_driver(tmp_path, runner)
    again.observe(101)
    assert again.log.mutations() == []

    driver.destroy(101)
    assert not cdir.exists() and (lower / "etc" / "hostname").exists()


@needs_root
@pytest.mark.parametrize(
    ("mode", "snapshot", "settings"),
    [
        ("full", "final-form", SETTINGS),
        ("linked", "final-form", replace(SETTINGS, unprivileged=False)),
        ("linked", None, SETTINGS),
    ],
    ids=["full-mode", "privilege-differs", "no-snapshot"],
)
def test_other_clones_are_full_copies(
    tmp_path: Path, mode: str, snapshot: str | None, settings: GuestSettings
) -> None:
    runner = copying_runner()
    driver = make_driver(tmp_path, runner, mode)
    source_with_snapshot(driver, tmp_path)
    (driver.lxc_path / "100" / "rootfs" / "etc" / "network").mkdir(parents=True)
    driver.clone(100, 101, snapshot, settings)
    cdir = driver.lxc_path / "101"
    assert any(argv[0] == "cp" for argv in runner.calls)
    spec = lxcconf.rootfs_spec(lxcconf.parse((cdir / "config").read_text()))
    assert spec == RootfsSpec(cdir / "rootfs")
    assert driver.dependents(100) == []
    owner = 100_000 if settings.unprivileged else 0
    assert os.stat(cdir / "rootfs" / "etc" / "hostname").st_uid == owner


@needs_root
def test_a_linked_clone_of_a_linked_rootfs_is_copied_through_a_merged_mount(
    tmp_path: Path,
) -> None:
    runner = copying_runner()
    driver = make_driver(tmp_path, runner)
    source_with_snapshot(driver, tmp_path)
    driver.clone(100, 101, "final-form", SETTINGS)
    driver.clone(101, 102, None, SETTINGS)
    mounts = [argv for argv in runner.calls if argv[0] in ("mount", "umount")]
    assert [m[0] for m in mounts] == ["mount", "umount"]
    upper = driver.lxc_path / "101" / "overlay" / "delta"
    lower = driver.lxc_path / "100" / "snaps" / "snap0" / "rootfs"
    assert mounts[0][5] == f"ro,userxattr,lowerdir={upper}:{lower}"
    assert driver.dependents(101) == [] and driver.dependents(100) == [101]
    assert not list(driver.lxc_path.glob(".merged-*"))  # the mount point is removed
    spec = lxcconf.rootfs_spec(lxcconf.parse((driver.lxc_path / "102" / "config").read_text()))
    assert spec == RootfsSpec(driver.lxc_path / "102" / "rootfs")
    assert (driver.lxc_path / "102" / "rootfs" / "etc" / "network" / "interfaces").is_file()


@needs_root
def test_configuring_a_running_linked_guest_writes_through_the_guest(tmp_path: Path) -> None:
    runner = copying_runner()
    driver = make_driver(tmp_path, runner)
    source_with_snapshot(driver, tmp_path)
    driver.clone(100, 101, "final-form", SETTINGS)
    upper = driver.lxc_path / "101" / "overlay" / "delta"
    runner.respond(["lxc-info", "-P", str(driver.lxc_path), "-n", "101", "-s"], "RUNNING\n")
    runner.respond(["lxc-attach", "-P", str(driver.lxc_path), "-n", "101"])  # in-guest writes
    driver.configure(101, replace(SETTINGS, hostname="renamed"), frozenset({"hostname"}))
    assert (upper / "etc" / "hostname").read_text() == "g\n"  # not touched under the mount
    attach = [argv for argv in runner.calls if argv[0] == "lxc-attach"]
    assert any("/etc/hostname" in argv for argv in attach)
    assert any(argv[-2:] == ("hostname", "renamed") for argv in attach)
    assert "lxc.uts.name = renamed" in (driver.lxc_path / "101" / "config").read_text()


def test_guest_file_copy_up_refuses_a_linked_parent(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "real").mkdir(parents=True)
    (lower / "real").chmod(0o751)
    (lower / "link").symlink_to(tmp_path)
    upper.mkdir()
    guestfiles.write(upper, "real/file", "x", os.geteuid(), lower=lower)
    assert (upper / "real" / "file").read_text() == "x"
    assert (upper / "real").stat().st_mode & 0o777 == 0o751
    assert not (lower / "real" / "file").exists()
    with pytest.raises(DriverError, match="not a directory"):
        guestfiles.write(upper, "link/file", "x", os.geteuid(), lower=lower)
    assert not (tmp_path / "file").exists()


# ---- option ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["linked", "full"])
def test_hypervisor_option_picks_the_clone_mode(tmp_path: Path, value: str) -> None:
    etc = tmp_path / "etc"
    shutil.copytree(MINIMAL, etc)
    hyp = json.loads((etc / "phoenix_hypervisor_config.json").read_text())
    hyp["phoenix"] = {"driver": "lxc", "lxc_clone": value}
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
    driver = factory_driver(load_inventory(etc).hypervisor.phoenix)
    assert isinstance(driver, LxcDriver) and driver.clone_mode == value


def test_clone_mode_defaults_to_linked_and_rejects_unknown(tmp_path: Path) -> None:
    driver = factory_driver(load_inventory(MINIMAL).hypervisor.phoenix)
    assert isinstance(driver, LxcDriver) and driver.clone_mode == "linked"
    with pytest.raises(DriverError, match="unknown LXC clone mode"):
        make_driver(tmp_path, RecordedRunner(), "thin")

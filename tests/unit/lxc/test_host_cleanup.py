"""Removing a lab's files: the LXC path, LXC's lock dirs, the state dir with its CA, the
template cache only on --purge; never while a guest or a mount remains."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.errors import PhoenixError
from phoenix.host.cleanup import mounts_below, remove_lab_files, template_cache_note


def lab(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "var/lib/phoenix/lab"
    state, lxc = root / "state", root / "lxc"
    (state / "gateway-ca").mkdir(parents=True)
    (state / "gateway-ca" / "ca.crt").write_text("cert")
    (state / "journal.jsonl").write_text("")
    (lxc / "900" / "rootfs").mkdir(parents=True)  # a half-made guest: no config
    locks = tmp_path / "run/lxc/lock"
    (locks / str(lxc).lstrip("/") / ".900").mkdir(parents=True)
    return state, lxc, locks


def test_everything_of_the_lab_goes_and_its_empty_phoenix_parents(tmp_path: Path) -> None:
    state, lxc, locks = lab(tmp_path)
    (tmp_path / "var/lib/other").mkdir(parents=True)
    done = remove_lab_files(state, lxc, mounts="", lock_root=locks)
    assert not (tmp_path / "var/lib/phoenix").exists()
    assert (tmp_path / "var/lib/other").is_dir()
    assert not locks.exists()
    assert any("clients that trust it should drop it" in line for line in done)
    assert any(f"removed the LXC path {lxc}" == line for line in done)


def test_refuses_while_a_guest_remains(tmp_path: Path) -> None:
    state, lxc, locks = lab(tmp_path)
    (lxc / "900" / "config").write_text("lxc.uts.name = x\n")
    with pytest.raises(PhoenixError, match=r"guest\(s\) 900 still exist"):
        remove_lab_files(state, lxc, mounts="", lock_root=locks)
    assert (state / "gateway-ca" / "ca.crt").is_file()


def test_refuses_while_something_is_mounted_below(tmp_path: Path) -> None:
    state, lxc, locks = lab(tmp_path)
    mounts = f"overlay {lxc}/900/rootfs overlay rw 0 0\n"
    assert mounts_below(lxc, mounts) == [f"{lxc}/900/rootfs"]
    assert mounts_below(lxc, f"x {lxc}2/a ext4 rw 0 0\n") == []
    with pytest.raises(PhoenixError, match="still mounted"):
        remove_lab_files(state, lxc, mounts=mounts, lock_root=locks)
    assert lxc.is_dir()


def test_template_cache_is_kept_and_named_unless_purged(tmp_path: Path) -> None:
    cache = tmp_path / "var/cache/phoenix/templates"
    cache.mkdir(parents=True)
    (cache / "debootstrap-bookworm-amd64.tar.gz").write_bytes(b"x" * 2_000_000)
    (note,) = template_cache_note(cache, purge=False)
    assert f"kept the template cache {cache} (2 MB)" in note and "--purge" in note
    assert template_cache_note(cache, purge=True) == [f"removed the template cache {cache} (2 MB)"]
    assert not (tmp_path / "var/cache/phoenix").exists()
    assert template_cache_note(cache, purge=True) == []

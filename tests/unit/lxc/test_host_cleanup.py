"""Removing a lab's files: the LXC path, LXC's lock dirs, the state dir with its CA, the
template cache only on --purge; never while a guest or a mount remains, and only what
Phoenix created: a directory without its marker, one holding another lab's directory or
another filesystem, or a link, is kept and named."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.errors import PhoenixError
from phoenix.files import OWNED_MARKER, make_owned_dir
from phoenix.host.cleanup import mounts_below, not_ours, remove_lab_files, template_cache_note


def lab(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "var/lib/phoenix/lab"
    state, lxc = make_owned_dir(root / "state"), make_owned_dir(root / "lxc")
    (state / "gateway-ca").mkdir()
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
    cache = make_owned_dir(tmp_path / "var/cache/phoenix/templates")
    (cache / "debootstrap-bookworm-amd64.tar.gz").write_bytes(b"x" * 2_000_000)
    (note,) = template_cache_note(cache, purge=False)
    assert f"kept the template cache {cache} (2 MB)" in note and "--purge" in note
    assert template_cache_note(cache, purge=True, mounts="") == [
        f"removed the template cache {cache} (2 MB)"
    ]
    assert not (tmp_path / "var/cache/phoenix").exists()
    assert template_cache_note(cache, purge=True, mounts="") == []


def test_a_directory_phoenix_did_not_create_is_kept_with_everything_in_it(
    tmp_path: Path,
) -> None:
    """`state_dir: /home`-style settings: a folder that existed before Phoenix has no marker;
    teardown names it and leaves every file in it."""
    state, lxc, locks = lab(tmp_path)
    (state / OWNED_MARKER).unlink()
    (lxc / OWNED_MARKER).unlink()
    (state / "someone's-file").write_text("keep me")
    done = remove_lab_files(state, lxc, mounts="", lock_root=locks)
    assert (state / "someone's-file").read_text() == "keep me"
    assert (lxc / "900" / "rootfs").is_dir()
    assert f"kept the LXC path {lxc}: Phoenix did not create it" in done[0]
    assert f"kept the state dir {state}: Phoenix did not create it" in done[1]
    assert not any("removed" in line for line in done)


def test_make_owned_dir_marks_only_what_it_creates(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    assert make_owned_dir(existing) == existing
    assert not (existing / OWNED_MARKER).exists()
    made = make_owned_dir(tmp_path / "a" / "b")
    assert (made / OWNED_MARKER).is_file()
    assert not (tmp_path / "a" / OWNED_MARKER).exists()


def test_make_owned_dir_makes_every_directory_open_whatever_the_umask(tmp_path: Path) -> None:
    """A guest's root passes through the directories Phoenix made above a mount source
    (the demo's /var/lib/phoenix/lab/shared): a umask of 077 must not close them."""
    import os
    import stat

    old = os.umask(0o077)
    try:
        made = make_owned_dir(tmp_path / "var" / "lib" / "phoenix" / "state")
    finally:
        os.umask(old)
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", made.parent, made):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory
    assert (made / OWNED_MARKER).is_file() and not (made.parent / OWNED_MARKER).exists()


def test_another_labs_directory_inside_keeps_the_whole_tree(tmp_path: Path) -> None:
    state, lxc, locks = lab(tmp_path)
    inner = make_owned_dir(state / "other-lab" / "state")
    done = remove_lab_files(state, lxc, mounts="", lock_root=locks)
    assert inner.is_dir()
    assert f"{inner} is another Phoenix directory" in " ".join(done)


def test_a_mount_below_the_state_dir_is_never_crossed(tmp_path: Path) -> None:
    """A bind mount of the same filesystem keeps its device number: the mount table says."""
    state, lxc, locks = lab(tmp_path)
    (state / "bound").mkdir()
    (state / "bound" / "host-file").write_text("not ours")
    done = remove_lab_files(
        state, lxc, mounts=f"/dev/sda1 {state}/bound ext4 rw 0 0\n", lock_root=locks
    )
    assert (state / "bound" / "host-file").is_file()
    assert f"still mounted below it: {state}/bound" in " ".join(done)


def test_a_link_in_place_of_a_directory_is_not_followed(tmp_path: Path) -> None:
    target = make_owned_dir(tmp_path / "elsewhere")
    link = tmp_path / "state"
    link.symlink_to(target)
    assert not_ours(link, "") == "it is not a directory"
    done = remove_lab_files(link, tmp_path / "lxc", mounts="", lock_root=tmp_path / "locks")
    assert (target / OWNED_MARKER).is_file() and link.is_symlink()
    assert done == [
        f"kept the state dir {link}: it is not a directory; remove it yourself if it is the lab's"
    ]


def test_purge_keeps_a_template_cache_phoenix_did_not_create(tmp_path: Path) -> None:
    cache = tmp_path / "usr-data"
    cache.mkdir()
    (cache / "x.tar.gz").write_bytes(b"x")
    (note,) = template_cache_note(cache, purge=True, mounts="")
    assert note.startswith(f"kept the template cache {cache}: Phoenix did not create it")
    assert (cache / "x.tar.gz").is_file()

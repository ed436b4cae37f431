"""write_atomic: content, mode, links and failures."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest

from phoenix.errors import PhoenixError
from phoenix.files import write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_file_gets_the_default_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "a.json", "{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert _mode(tmp_path / "a.json") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_an_explicit_mode_and_bytes(tmp_path: Path) -> None:
    write_atomic(tmp_path / "k.key", b"\x00secret", 0o600)
    assert (tmp_path / "k.key").read_bytes() == b"\x00secret"
    assert _mode(tmp_path / "k.key") == 0o600


def test_replacing_keeps_the_mode_of_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "inventory.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o640


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / "out"
    link.symlink_to(victim)
    write_atomic(link, "new")
    assert victim.read_text() == "keep me"
    assert not link.is_symlink()
    assert link.read_text() == "new"


def test_a_planted_link_at_the_temp_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda n: "fixed")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / ".out.fixed.tmp").symlink_to(victim)
    with pytest.raises(PhoenixError, match="out: cannot write"):
        write_atomic(tmp_path / "out", "new")
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_a_failure_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(PhoenixError, match=r"missing/a\.json: cannot write"):
        write_atomic(tmp_path / "missing" / "a.json", "{}")
    target = tmp_path / "dir"
    target.mkdir()
    with pytest.raises(PhoenixError, match="dir: cannot write"):
        write_atomic(target, "x")  # a directory cannot be replaced by a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]

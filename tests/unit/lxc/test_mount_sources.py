"""A bind mount's source in a directory others cannot pass (`/root`, a home folder): the
LXC driver used to give every directory above it `o+x`, making `/root` world-traversable.
It now opens only directories it made (or that lie in a folder it owns) and refuses the
rest before making anything, naming the directory and the ways out."""

from __future__ import annotations

import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.drivers.base import MountSettings
from phoenix.drivers.lxc import mounts
from phoenix.errors import DriverError
from phoenix.files import OWNED_MARKER


@pytest.fixture()
def open_dir() -> Iterator[Path]:
    """A folder everyone may pass (under /tmp), unlike pytest's 0700 tmp_path."""
    with tempfile.TemporaryDirectory(prefix="phx-mounts-") as name:
        root = Path(name)
        root.chmod(0o755)
        yield root


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_source_under_a_closed_directory_is_refused_untouched(open_dir: Path) -> None:
    closed = open_dir / "root"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    source = closed / "models"
    mount = MountSettings("/models", host_path=str(source), read_only=True)
    with pytest.raises(DriverError) as err:
        mounts.ensure_sources(101, [mount], True, open_dir / "volumes")
    message = str(err.value)
    assert f"cannot pass through {closed} (mode 0700)" in message, message
    assert "setfacl -m u:100000:x" in message and "move the source" in message
    assert _mode(closed) == 0o700 and not source.exists()


def test_nothing_is_made_when_any_mount_is_refused(open_dir: Path) -> None:
    closed = open_dir / "home"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    first = MountSettings("/a", host_path=str(open_dir / "a"))
    second = MountSettings("/b", host_path=str(closed / "b"))
    with pytest.raises(DriverError):
        mounts.ensure_sources(101, [first, second], True, open_dir / "volumes")
    assert not (open_dir / "a").exists()


def test_directories_phoenix_makes_are_open_whatever_the_umask(open_dir: Path) -> None:
    import os

    old = os.umask(0o077)
    try:
        source = open_dir / "new" / "deeper" / "data"
        made = mounts.ensure_sources(
            101, [MountSettings("/data", host_path=str(source))], True, open_dir / "volumes"
        )
    finally:
        os.umask(old)
    assert made == [source]
    assert _mode(open_dir / "new") == _mode(open_dir / "new" / "deeper") == 0o755
    assert source.stat().st_uid == 100_000


def test_a_closed_folder_phoenix_owns_is_opened(open_dir: Path) -> None:
    owned = open_dir / "state"
    owned.mkdir(mode=0o700)
    owned.chmod(0o700)
    (owned / OWNED_MARKER).write_text("")
    source = owned / "lab" / "shared"
    mounts.ensure_sources(
        101, [MountSettings("/shared", host_path=str(source))], True, open_dir / "volumes"
    )
    assert _mode(owned) & stat.S_IXOTH and source.is_dir()


def test_a_privileged_guest_needs_nothing_opened(open_dir: Path) -> None:
    closed = open_dir / "root"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    source = closed / "data"
    mounts.ensure_sources(101, [MountSettings("/data", host_path=str(source))], False, open_dir)
    assert _mode(closed) == 0o700 and source.is_dir()

"""The gateway's state files are read like Phoenix's config files: a FIFO never hangs,
a link to a device never exhausts memory, state another user owns is refused, and a CA
key that is not its certificate's is refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from phoenix.errors import GatewayError, PhoenixError
from phoenix.files import read_state
from phoenix.gateway.tls import LocalCA


def made_ca(tmp_path: Path) -> Path:
    directory = tmp_path / "state" / "gateway-ca"
    LocalCA.load_or_create(directory)
    return directory


@pytest.mark.parametrize("name", ["ca.crt", "ca.key"])
def test_a_fifo_in_place_of_a_ca_file_is_refused_at_once(tmp_path: Path, name: str) -> None:
    directory = made_ca(tmp_path)
    (directory / name).unlink()
    os.mkfifo(directory / name)
    with pytest.raises(GatewayError, match="not a regular file"):
        LocalCA.open(directory, persist=False)


def test_a_link_to_dev_zero_is_refused_not_read(tmp_path: Path) -> None:
    directory = made_ca(tmp_path)
    (directory / "ca.crt").unlink()
    (directory / "ca.crt").symlink_to("/dev/zero")
    with pytest.raises(GatewayError, match="not a regular file"):
        LocalCA.open(directory, persist=True)


def test_reads_stop_at_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(PhoenixError, match="larger than 1000 bytes"):
        read_state(big, limit=1000)
    assert read_state(big, limit=2000) == b"x" * 2000


def test_a_ca_owned_by_another_user_is_not_adopted(tmp_path: Path) -> None:
    directory = made_ca(tmp_path)
    os.chown(directory, 12345, 12345)
    with pytest.raises(GatewayError, match="owned by uid 12345"):
        LocalCA.open(directory, persist=True)
    os.chown(directory, 0, 0)
    os.chown(directory / "ca.key", 12345, 12345)
    with pytest.raises(GatewayError, match="owned by uid 12345"):
        LocalCA.open(directory, persist=False)


def test_a_ca_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    first, second = made_ca(tmp_path / "a"), made_ca(tmp_path / "b")
    shutil.copy(second / "ca.key", first / "ca.key")
    with pytest.raises(GatewayError, match="is not the key of"):
        LocalCA.open(first, persist=True)

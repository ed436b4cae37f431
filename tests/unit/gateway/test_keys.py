"""API key helpers: a new key, its hash, and how long a limited client is told to wait."""

from __future__ import annotations

import hashlib

import pytest

from phoenix.gateway.keys import KEY_PREFIX, key_hash, new_key, retry_after


@pytest.mark.parametrize(
    ("rpm", "seconds"), [(1, 60), (5, 12), (7, 9), (30, 2), (60, 1), (61, 1), (1000, 1)]
)
def test_retry_after_is_the_time_one_request_takes_to_refill(rpm: int, seconds: int) -> None:
    assert retry_after(rpm) == seconds


def test_a_new_key_is_long_random_and_recognisable() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        assert len(key) == len(KEY_PREFIX) + 43  # 32 random bytes, URL-safe base64
        assert key_hash(key) == hashlib.sha256(key.encode()).hexdigest()

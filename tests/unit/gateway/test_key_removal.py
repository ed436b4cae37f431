"""Removing one API key leaves every other key, of both lists, as it was."""

from __future__ import annotations

from typing import Any

import pytest

from phoenix.errors import GatewayError
from phoenix.gateway.keys import remove_entry


def _gateway() -> dict[str, Any]:
    return {
        "api_keys": [{"name": "alice", "key": "a" * 43}, {"name": "bob", "key": "b" * 43}],
        "operator_keys": [{"name": "ops", "key": "o" * 43}],
        "routes": ["kept"],
    }


def test_removing_a_client_key_keeps_the_others() -> None:
    gateway = _gateway()
    remove_entry(gateway, "alice")
    assert gateway == {**_gateway(), "api_keys": [{"name": "bob", "key": "b" * 43}]}


def test_removing_an_operator_key_keeps_the_client_keys() -> None:
    gateway = _gateway()
    remove_entry(gateway, "ops")
    assert gateway == {**_gateway(), "operator_keys": []}


def test_an_unknown_name_changes_nothing_and_says_so() -> None:
    gateway = _gateway()
    with pytest.raises(GatewayError, match="no key named 'carol'"):
        remove_entry(gateway, "carol")
    assert gateway == _gateway()

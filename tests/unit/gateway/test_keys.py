"""API key helpers: a new key, its hash, and how long a limited client is told to wait."""

from __future__ import annotations

import hashlib
import textwrap

import pytest

from phoenix.gateway.keys import (
    KEY_PREFIX,
    http_directives,
    key_hash,
    new_key,
    rate_limited_location,
    retry_after,
    server_directives,
)
from phoenix.gateway.nginx import build
from phoenix.inventory.models import ApiKey


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


KEYS = [
    ApiKey(name="a", sha256="1" * 64, models=["alpha"], rpm=30),
    ApiKey(name="default", sha256="2" * 64, rpm=1),  # an nginx map word: escaped
    ApiKey(name="c", sha256="3" * 64, models=["alpha"], rpm=30),
    ApiKey(name="open", sha256="4" * 64),
]


def test_http_level_key_directives() -> None:
    """The key's name and class for the fast path, one zone per rate keyed by the names
    of that rate's keys only, Retry-After per key, and the Authorization passed to routes
    only when it is not one of the gateway's keys."""
    assert build(http_directives(KEYS)) == textwrap.dedent(
        """\
        js_set $phx_key router.keyName;
        map $phx_key $phx_key_class {
            default '';
            a c0;
            \\default c1;
            c c0;
            open c1;
        }
        map $phx_key $phx_rl_1 {
            default '';
            \\default $phx_key;
        }
        limit_req_zone $phx_rl_1 zone=phx_rpm_1:64k rate=1r/m;
        map $phx_key $phx_rl_30 {
            default '';
            a $phx_key;
            c $phx_key;
        }
        limit_req_zone $phx_rl_30 zone=phx_rpm_30:64k rate=30r/m;
        map $phx_key $phx_retry_after {
            default 60;
            \\default 60;
            a 2;
            c 2;
        }
        map $phx_key $phx_route_auth {
            default '';
            '' $http_authorization;
        }
        """
    )
    assert http_directives([]) == []


def test_server_level_limits_and_the_429_answer() -> None:
    """Exactly `rpm` requests pass at once (burst rpm-1, nodelay; no burst for 1), then
    429 with Retry-After and an OpenAI-shaped body naming the key."""
    assert build(server_directives(KEYS)) == textwrap.dedent(
        """\
        limit_req zone=phx_rpm_1 nodelay;
        limit_req zone=phx_rpm_30 burst=29 nodelay;
        limit_req_status 429;
        limit_req_log_level warn;
        error_page 429 = @phx_rate_limited;
        """
    )
    assert server_directives([KEYS[3]]) == []  # keys without limits: no limit_req at all
    assert build([rate_limited_location()]) == textwrap.dedent(
        """\
        location @phx_rate_limited {
            default_type application/json;
            add_header Retry-After $phx_retry_after always;
            return 429 '{"error":{"message":"Rate limit reached for key \\'$phx_key\\': retry after $phx_retry_after s","type":"requests","param":null,"code":"rate_limit_exceeded"}}\\n';
        }
        """
    )

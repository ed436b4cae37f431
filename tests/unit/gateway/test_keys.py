"""API key helpers: a new key, its hash, and how long a limited client is told to wait."""

from __future__ import annotations

import hashlib
import json
import textwrap
from typing import Any

import pytest

from phoenix.errors import GatewayError
from phoenix.gateway.keys import (
    KEY_PREFIX,
    add_entry,
    allowed_keys,
    classes_for,
    edit_keys,
    http_directives,
    key_classes,
    key_hash,
    map_key,
    new_key,
    njs_table,
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


def test_the_njs_table_gives_each_hash_its_name_and_only_its_models() -> None:
    """The njs router's whole authority: a key may use its own models, `*` all of them."""
    keys = [
        ApiKey(name="a", sha256="1" * 64, models=["zeta", "alpha"]),
        ApiKey(name="all", sha256="2" * 64, models=["*"]),
        ApiKey(name="mixed", sha256="3" * 64, models=["alpha", "*"]),
    ]
    assert njs_table(keys) == {
        "1" * 64: {"name": "a", "models": ["alpha", "zeta"]},
        "2" * 64: {"name": "all", "models": None},
        "3" * 64: {"name": "mixed", "models": None},
    }
    assert njs_table([]) is None  # no keys: the API is open


def test_a_key_class_is_its_set_of_models() -> None:
    keys = [
        ApiKey(name="a", sha256="1" * 64, models=["alpha", "beta"]),
        ApiKey(name="b", sha256="2" * 64, models=["beta", "alpha"]),
        ApiKey(name="c", sha256="3" * 64, models=["*"]),
        ApiKey(name="d", sha256="4" * 64, models=["alpha", "*"]),
        ApiKey(name="e", sha256="5" * 64, models=["beta"]),
    ]
    assert key_classes(keys) == {"a": "c0", "b": "c0", "c": "c1", "d": "c1", "e": "c2"}
    assert allowed_keys(keys, "alpha") == ["a", "b", "c", "d"]
    assert allowed_keys(keys, "gamma") == ["c", "d"]
    assert classes_for(keys, "beta") == ["c0", "c1", "c2"]
    assert classes_for(keys, "alpha") == ["c0", "c1"]
    assert classes_for(keys, "gamma") == ["c1"]


@pytest.mark.parametrize("word", ["default", "hostnames", "include", "volatile"])
def test_a_key_named_like_a_map_parameter_is_escaped(word: str) -> None:
    assert map_key(word) == "\\" + word
    assert map_key(word + "x") == word + "x"


def test_a_zone_grows_with_the_keys_of_its_rate() -> None:
    keys = [ApiKey(name=f"k{i}", sha256=f"{i:064x}", rpm=10) for i in range(9)]
    zones = [x for x in http_directives(keys) if x.name == "limit_req_zone"]
    assert [z.args for z in zones] == [["$phx_rl_10", "zone=phx_rpm_10:66k", "rate=10r/m"]]


def _inventory(gateway: object) -> str:
    return json.dumps({"lxc_configs": {"101": {"name": "gw", "gateway": gateway}}}, indent=2)


def test_editing_keys_keeps_the_rest_of_the_file_and_its_indent() -> None:
    text = json.dumps({"lxc_configs": {"101": {"name": "gw", "cores": 2}}, "x": "é"}, indent=4)
    out = edit_keys(text, 101, lambda g: g.setdefault("api_keys", []).append({"name": "k"}))
    assert json.loads(out) == {
        "lxc_configs": {
            "101": {"name": "gw", "cores": 2, "gateway": {"api_keys": [{"name": "k"}]}}
        },
        "x": "é",
    }
    assert out.endswith("}\n") and '\n    "lxc_configs"' in out and "é" in out
    two = _inventory({"api_keys": []})  # two spaces, nested: kept two
    assert edit_keys(two, 101, lambda g: None) == two + "\n"
    one_line = json.dumps({"lxc_configs": {"101": {}}})
    assert edit_keys(one_line, 101, lambda g: None).startswith('{\n  "lxc_configs"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "cannot find guest 101 in the inventory file"),
        ('{"lxc_configs": {"102": {}}}', "cannot find guest 101 in the inventory file"),
        ('{"lxc_configs": []}', "cannot find guest 101 in the inventory file"),
        (_inventory([]), "guest 101: 'gateway' is not an object"),
        (_inventory({"api_keys": {}}), "guest 101: 'gateway.api_keys' is not a list"),
        (_inventory({"operator_keys": "x"}), "guest 101: 'gateway.operator_keys' is not a list"),
    ],
)
def test_an_unusable_inventory_file_is_refused(text: str, message: str) -> None:
    called: list[dict[str, Any]] = []
    with pytest.raises(GatewayError, match=message):
        edit_keys(text, 101, called.append)
    assert called == []


def test_a_new_client_key_is_stored_as_its_hash_with_its_models_and_limit() -> None:
    gateway: dict[str, Any] = {}
    key, entry = add_entry(gateway, "alice", ["alpha"], 30)
    assert entry == {"name": "alice", "sha256": key_hash(key), "models": ["alpha"], "rpm": 30}
    assert gateway == {"api_keys": [entry]}
    _, unlimited = add_entry(gateway, "bob", ["*"], None)
    assert "rpm" not in unlimited and gateway["api_keys"] == [entry, unlimited]
    op_key, op = add_entry(gateway, "ops", ["alpha"], 5, operator=True)
    assert op == {"name": "ops", "sha256": key_hash(op_key)}
    assert gateway["operator_keys"] == [op]
    for taken in ("alice", "ops"):
        with pytest.raises(GatewayError, match=f"a key named '{taken}' exists already"):
            add_entry(gateway, taken, ["alpha"], None)


def test_an_invalid_key_is_refused_naming_the_field() -> None:
    gateway: dict[str, Any] = {}
    with pytest.raises(GatewayError, match=r"^invalid key: rpm: "):
        add_entry(gateway, "alice", ["alpha"], 0)
    assert gateway == {}

"""The native model-routing fast path: its body rule, its map and its nginx plumbing.

The body rules are checked with libpcre2-8 as nginx runs them (tests/unit/gateway/pcre2.py);
the real nginx runs them in tests/e2e/test_gateway_host.py and test_gateway_abuse.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from phoenix.gateway.api_site import nginx_token
from phoenix.gateway.bodyrules import FAST_MODEL_RE, FORM_TWICE_RE
from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.nginx import Directive, parse_file
from tests.unit.gateway.pcre2 import MatchError, Pcre2
from tests.unit.gateway.test_render import Make

RULE = Pcre2(FAST_MODEL_RE)


def fast_model(body: str | bytes) -> str | None:
    match = RULE.group1(body)
    return match.decode() if match is not None else None


def test_takes_the_model_wherever_the_key_is() -> None:
    pad = "x" * 100_000
    first = json.dumps({"model": "alpha", "messages": [{"role": "user", "content": pad}]})
    last = json.dumps({"messages": [{"role": "user", "content": pad}], "model": "beta"})
    pretty = json.dumps({"stream": True, "model": "m/Llama-3.1:8b"}, indent=2)
    assert fast_model(first) == "alpha"
    assert fast_model(last) == "beta"
    assert fast_model(pretty) == "m/Llama-3.1:8b"
    assert fast_model('{"model":"alpha"}') == "alpha"


def test_ignores_text_and_non_string_values() -> None:
    quoted = json.dumps(
        {"messages": [{"role": "user", "content": 'say "model": "beta"'}], "model": "alpha"}
    )
    key_suffix = json.dumps({'say "model': "beta", "model": "alpha"})
    schema = json.dumps(
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "parameters": {
                            "properties": {"model": {"type": "string"}},
                            "required": ["model"],
                        }
                    },
                }
            ],
            "model": "alpha",
        }
    )
    assert fast_model(quoted) == "alpha"  # an escaped quote never starts the key
    assert fast_model(key_suffix) == "alpha"  # a key that merely ends in "model
    assert fast_model(schema) == "alpha"  # "model": {...} is not a string value


def test_leaves_everything_else_to_njs() -> None:
    assert fast_model(json.dumps({"messages": []})) is None
    assert fast_model('{"model": 5}') is None
    assert fast_model('{"model": ""}') is None
    assert fast_model(r'{"model": "alph\u0061"}') is None  # escapes: njs decodes them
    assert fast_model("") is None


def test_routes_only_on_the_one_top_level_model() -> None:
    # A nested "model" (metadata, a tool's schema) before or after the top-level one is
    # never taken; a body naming it twice, in any case or escaped, is left to njs.
    assert fast_model(json.dumps({"metadata": {"model": "beta"}, "model": "alpha"})) == "alpha"
    assert fast_model(json.dumps({"tools": [{"model": "beta"}], "model": "alpha"})) == "alpha"
    assert fast_model('{"model": "alpha", "metadata": {"model": "beta"}}') == "alpha"
    for twice in (
        '{"model": "alpha", "model": "beta"}',
        '{"model": "alpha", "Model": "beta"}',
        '{"MODEL": "beta", "model": "alpha"}',
        '{"model": "alpha", "mod\\u0065l": "beta"}',
        '{"m\\u006Fdel": "beta", "model": "alpha"}',
    ):
        assert fast_model(twice) is None, twice
    assert fast_model('{"metadata": {"model": "alpha"}}') is None  # no top-level model
    # An escaped value is njs's to decode; the nested plain one is not taken instead.
    assert fast_model('{"model": "demo\\u002dembed", "metadata": {"model": "x"}}') is None


def test_routes_only_valid_json_objects() -> None:
    for bad in (
        '[{"model": "alpha"}]',
        '{"model": "alpha",',
        '{"model": "alpha"} x',
        '{"model": "alpha", "n": 01}',
        '{"model": "alpha", "s": "tab\there"}',
        '\ufeff{"model": "alpha"}',
        '{"model": "alpha", "x": tru}',
    ):
        assert fast_model(bad) is None, bad
    ok = '{"model": "alpha", "n": -1.5e+3, "t": true, "z": null, "a": [[], {}, "\\u00e9\\n"]}'
    assert fast_model(ok) == "alpha"


def test_large_legit_bodies_match_and_pathological_ones_fail_with_an_error() -> None:
    tokens = json.dumps({"input": list(range(1_000_000)), "model": "alpha"})
    assert fast_model(tokens) == "alpha"
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + ', "model": "alpha"}'
    with pytest.raises(MatchError):  # nginx: a 500, answered as body_too_complex
        fast_model(deep)
    shallow = '{"a": ' + "[" * 64 + "]" * 64 + ', "model": "alpha"}'
    assert fast_model(shallow) == "alpha"


def _conf(tmp_path: Path, text: bytes) -> list[Directive]:
    path = tmp_path / "conf"
    path.write_bytes(text)
    directives, errors = parse_file(path)
    assert errors == []
    return [x for top in directives for x in top.walk()]


def test_map_names_only_exact_safe_models(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    lab_configs["204"]["vllm_engine_config"] = {
        "ServerConfig": {"port": 8000, "served_model_name": "odd name's"}
    }
    lab_configs["205"] = {
        "name": "m5",
        "network_config": lab_configs["201"]["network_config"] | {"ip": "10.9.0.25/24"},
        "vllm_engine_config": {
            "ServerConfig": {"port": 8000, "served_model_name": "meta/Llama-3.1+x"}
        },
    }
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    conf = _conf(tmp_path, rendered.files["conf.d/phoenix-upstreams.conf"])
    model_map = next(x for x in conf if x.name == "map")
    assert model_map.args == ["$phx_model", "$phx_upstream"]
    keys = {x.name: x.args for x in model_map.block or []}
    # Regex keys: plain map keys would match case-insensitively. Doubled backslashes are
    # nginx's escaping; nginx hands PCRE `~^alpha\z`.
    assert keys["default"] == [""]
    assert keys[nginx_token(r"~^alpha\z")] == ["model_alpha"]
    assert keys[nginx_token(r"~^meta\/Llama\-3\.1\+x\z")] == ["model_meta_llama_3_1_x"]
    assert not any("odd" in k for k in keys)  # routed by njs alone
    table = rendered.files["njs/phoenix_models.js"].decode()
    assert "odd name's" in table


def test_http_plumbing(make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    main = _conf(tmp_path, rendered.files["nginx.conf"])
    assert ["on"] in [x.args for x in main if x.name == "pcre_jit"]
    http = _conf(tmp_path, rendered.files["conf.d/phoenix-http.conf"])
    assert ["on"] in [x.args for x in http if x.name == "client_body_in_single_buffer"]
    api = _conf(tmp_path, rendered.files["sites-available/phoenix-api"])
    route = next(x for x in api if x.name == "location" and x.args == ["@phx_route"])
    assert route.children("error_page")[0].args == ["418", "=", "@phx_parse"]
    ifs = route.children("if")
    assert ifs[0].args[:2] == ["$request_body", "~"]
    assert ifs[1].args == ["$phx_upstream", "=", ""]
    assert ifs[1].first_arg("return") == "418"
    entry = next(x for x in api if x.name == "location" and x.args[-1] == "/v1/embeddings")
    assert entry.first_arg("js_content") == "router.route"


def test_form_rule_takes_the_model_field_of_a_multipart_body() -> None:
    from phoenix.gateway.bodyrules import FORM_MODEL_RE

    rule = re.compile(FORM_MODEL_RE)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b'Content-Type: audio/wav\r\n\r\n\x00\r\n"model"\r\n--b\r\n'
        b'content-disposition: form-data; name="model"\r\n\r\nwhisper-large/v3\r\n--b--\r\n'
    ).decode("latin-1")
    match = rule.search(body)
    assert match and match.group(1) == "whisper-large/v3"
    typed = 'Content-Disposition: form-data; name="model"\r\nContent-Type: text/plain\r\n\r\nm\r\n'
    assert (m := rule.search(typed)) and m.group(1) == "m"
    assert rule.search('Content-Disposition: form-data; name="models"\r\n\r\nx\r\n') is None


def test_form_rule_sees_a_model_field_named_twice() -> None:
    twice = Pcre2(FORM_TWICE_RE)
    part = 'Content-Disposition: form-data; name="model"\r\n\r\n{}\r\n--b\r\n'
    assert twice.group1(part.format("a") + part.format("b")) is not None
    assert twice.group1(part.format("a") + 'name="models"\r\n') is None

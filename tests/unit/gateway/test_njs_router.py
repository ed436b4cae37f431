"""router.js in the njs interpreter: authorization, model extraction and errors, case by
case. The key and model tables are rendered by Phoenix from an inventory, so a change to
keys.py's table breaks these cases too. To add a case: one line in KEYED or OPEN."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crossplane
import pytest

from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.keys import key_hash
from phoenix.inventory import load_inventory
from tests.unit.gateway.conftest import net, vllm
from tests.unit.gateway.njs import Answer, NjsGateway, Request

KEY_A = "phx-test-key-a-0123456789"  # may use alpha only
KEY_B = "phx-test-key-b-9876543210"  # may use every model
ALL_MODELS = ("alpha", "beta", "gamma")


def lab(api_keys: list[dict[str, Any]] | None) -> dict[str, Any]:
    gateway: dict[str, Any] = {"api_keys": api_keys} if api_keys else {}
    return {
        "101": {"name": "gw", "network_config": net("10.9.0.2"), "gateway": gateway},
        "201": {"name": "m1", "network_config": net("10.9.0.21"), **vllm_guest("alpha", 8001)},
        "202": {"name": "m2", "network_config": net("10.9.0.22"), **vllm_guest("beta", 8000)},
        "203": {"name": "m3", "network_config": net("10.9.0.23"), **vllm_guest("gamma", 8000)},
    }


def vllm_guest(model: str, port: int) -> dict[str, Any]:
    return {"vllm_engine_config": vllm(model, port)}


def njs_gateway(folder: Path, api_keys: list[dict[str, Any]] | None) -> NjsGateway:
    config = folder / "etc"
    config.mkdir(parents=True)
    (config / "phoenix_hypervisor_config.json").write_text("{}")
    (config / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": lab(api_keys)}))
    rendered, _ = render_gateway(load_inventory(config), 101, None, "derived")
    return NjsGateway(rendered, folder / "njs")


# Rendered for each test, not once per module: mutation testing (scripts/mutation.py)
# maps each test to the code it runs, and a module-wide render would be seen by one test.
@pytest.fixture
def keyed(tmp_path_factory: pytest.TempPathFactory) -> NjsGateway:
    keys: list[dict[str, Any]] = [
        {"name": "a", "sha256": key_hash(KEY_A), "models": ["alpha"]},
        {"name": "b", "sha256": key_hash(KEY_B)},
    ]
    return njs_gateway(tmp_path_factory.mktemp("keyed"), keys)


@pytest.fixture
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> NjsGateway:
    return njs_gateway(tmp_path_factory.mktemp("open"), None)


@dataclass(frozen=True)
class Expect:
    """What a handler must do. `redirect` is a literal location, or `model:NAME` for the
    upstream the table gives that model (and $phx_model must then name it)."""

    status: int | None = None
    code: str | None = None  # the OpenAI error code of a JSON error answer
    message: str = ""  # a part of the error message
    not_in_message: str = ""
    redirect: str | None = None
    models: tuple[str, ...] | None = None  # ids of a model list (or the one model) answered
    headers: tuple[tuple[str, str], ...] = ()


def routed(model: str) -> Expect:
    return Expect(redirect=f"model:{model}")


def refused(status: int, code: str, message: str = "", not_in: str = "") -> Expect:
    return Expect(status=status, code=code, message=message, not_in_message=not_in)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(body: str = '{"model": "alpha"}', **headers: str) -> Request:
    return Request("router.parse", requestText=body, headersIn=headers)


def keyed_post(key: str, model: str) -> Request:
    return Request("router.parse", requestText=json.dumps({"model": model}), headersIn=bearer(key))


def get(handler: str, uri: str, **headers: str) -> Request:
    return Request(handler, method="GET", uri=uri, headersIn=headers)


DIDNT = "didn't provide an API key"
WRONG = "Incorrect API key"
AUTH = "Authorization"

# Gateway with keys: a may use alpha, b every model.
KEYED: list[tuple[str, Request, Expect]] = [
    ("no key", post(), refused(401, "invalid_api_key", DIDNT)),
    ("wrong key", post(**{AUTH: "Bearer nope"}), refused(401, "invalid_api_key", WRONG)),
    ("key without Bearer", post(**{AUTH: KEY_A}), refused(401, "invalid_api_key", WRONG)),
    ("Basic scheme", post(**{AUTH: f"Basic {KEY_A}"}), refused(401, "invalid_api_key")),
    ("Bearer glued to key", post(**{AUTH: f"Bearer{KEY_A}"}), refused(401, "invalid_api_key")),
    ("two tokens", post(**{AUTH: f"Bearer {KEY_A} x"}), refused(401, "invalid_api_key")),
    ("key prefix", post(**{AUTH: f"Bearer {KEY_A[:-1]}"}), refused(401, "invalid_api_key")),
    ("key + suffix", post(**{AUTH: f"Bearer {KEY_A}0"}), refused(401, "invalid_api_key")),
    ("scheme any case, tab", post(**{AUTH: f"bEaReR\t{KEY_A} "}), routed("alpha")),
    ("lowercase header name", post(authorization=f"Bearer {KEY_A}"), routed("alpha")),
    ("a may use alpha", keyed_post(KEY_A, "alpha"), routed("alpha")),
    (
        "a may not use beta",
        keyed_post(KEY_A, "beta"),
        refused(404, "model_not_found", "Available models: alpha", not_in="beta,"),
    ),
    ("a, unknown model", keyed_post(KEY_A, "zeta"), refused(404, "model_not_found", ": alpha")),
    ("b may use beta", keyed_post(KEY_B, "beta"), routed("beta")),
    ("b may use gamma", keyed_post(KEY_B, "gamma"), routed("gamma")),
    ("b, unknown model", keyed_post(KEY_B, "zeta"), refused(404, "model_not_found", "alpha, beta")),
    (
        "list, a",
        get("router.models", "/v1/models", **bearer(KEY_A)),
        Expect(200, models=("alpha",)),
    ),
    (
        "list, b",
        get("router.models", "/v1/models", **bearer(KEY_B)),
        Expect(200, models=ALL_MODELS),
    ),
    ("list, no key", get("router.models", "/v1/models"), refused(401, "invalid_api_key", DIDNT)),
    (
        "one, a",
        get("router.model", "/v1/models/alpha", **bearer(KEY_A)),
        Expect(200, models=("alpha",)),
    ),
    (
        "one hidden, a",
        get("router.model", "/v1/models/beta", **bearer(KEY_A)),
        refused(404, "model_not_found"),
    ),
    (
        "one, b",
        get("router.model", "/v1/models/beta", **bearer(KEY_B)),
        Expect(200, models=("beta",)),
    ),
    ("one, no key", get("router.model", "/v1/models/alpha"), refused(401, "invalid_api_key")),
    ("other GET, no key", get("router.routeAny", "/v1/other"), refused(401, "invalid_api_key")),
    (
        "other GET, key",
        get("router.routeAny", "/v1/other", **bearer(KEY_B)),
        refused(404, "not_found"),
    ),
    # The fast path (nginx's own map) checks keys after these redirects.
    ("route, no key", Request("router.route"), Expect(redirect="@phx_route")),
]

MULTIPART = "multipart/form-data; boundary=XyZ"


def form(model_field: str | None) -> str:
    parts = [
        '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n'
    ]
    if model_field is not None:
        parts.append(
            f'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model_field}\r\n'
        )
    return "".join(parts) + "--XyZ--\r\n"


# Gateway without keys: model extraction and errors.
OPEN: list[tuple[str, Request, Expect]] = [
    ("model", post('{"model": "alpha"}'), routed("alpha")),
    (
        "model among others",
        post('{"messages": [], "model": "beta", "stream": true}'),
        routed("beta"),
    ),
    ("nested only", post('{"metadata": {"model": "alpha"}}'), refused(400, "missing_model")),
    (
        "nested, then top-level",
        post('{"metadata": {"model": "alpha"}, "model": "beta"}'),
        routed("beta"),
    ),
    (
        "in tools, then top-level",
        post('{"tools": [{"model": "beta"}], "model": "alpha"}'),
        routed("alpha"),
    ),
    # A backend takes one of several top-level `model` keys (json, Go: the last; Go also
    # any case; every parser decodes escapes): the gateway cannot tell which, so refuses.
    ("duplicate", post('{"model": "alpha", "model": "beta"}'), refused(400, "ambiguous_model")),
    ("other case", post('{"model": "alpha", "Model": "beta"}'), refused(400, "ambiguous_model")),
    ("only Model", post('{"MODEL": "alpha"}'), refused(400, "ambiguous_model", "`MODEL`")),
    (
        "escaped key",
        post('{"model": "alpha", "mod\\u0065l": "beta"}'),
        refused(400, "ambiguous_model"),
    ),
    (
        "duplicate after nested",
        post('{"model": "alpha", "x": {"model": "gamma"}, "model": "beta"}'),
        refused(400, "ambiguous_model"),
    ),
    ("escaped name", post('{"model": "alph\\u0061"}'), routed("alpha")),
    (
        "escaped name, nested plain one",
        post('{"model": "b\\u0065ta", "metadata": {"model": "alpha"}}'),
        routed("beta"),
    ),
    ("escaped key alone", post('{"m\\u006fdel": "beta"}'), routed("beta")),
    ("trailing text", post('{"model": "alpha"} x'), refused(400, "invalid_json")),
    ("BOM", post('\ufeff{"model": "alpha"}'), refused(400, "invalid_json")),
    (
        "deeply nested",
        Request(
            "router.parse",
            requestText='{"a": ' + "[" * 100_000 + "]" * 100_000 + ', "model": "alpha"}',
            variables={"phx_json_object": "too_complex"},  # nginx's JIT match gave up
        ),
        refused(400, "body_too_complex"),
    ),
    (
        "form, model twice",
        post(form("alpha") + form("beta"), **{"Content-Type": MULTIPART}),
        refused(400, "ambiguous_model"),
    ),
    (
        "unknown model",
        post('{"model": "zeta"}'),
        refused(404, "model_not_found", "alpha, beta, gamma"),
    ),
    ("case matters", post('{"model": "Alpha"}'), refused(404, "model_not_found")),
    ("model a number", post('{"model": 5}'), refused(400, "missing_model")),
    ("model empty", post('{"model": ""}'), refused(400, "missing_model")),
    ("model null", post('{"model": null}'), refused(400, "missing_model")),
    ("no model", post("{}"), refused(400, "missing_model", "model parameter")),
    ("empty body", post(""), refused(400, "invalid_body", "empty")),
    ("no body", Request("router.parse"), refused(400, "invalid_body")),
    ("bad JSON", post('{"model": "alpha"'), refused(400, "invalid_json", "malformed JSON")),
    ("array", post('[{"model": "alpha"}]'), refused(400, "invalid_body", "JSON object")),
    ("string", post('"alpha"'), refused(400, "invalid_body")),
    ("null", post("null"), refused(400, "invalid_body")),
    ("body over the limit", Request("router.parse", tooLarge=True), refused(413, "body_too_large")),
    (
        "GET on a model endpoint",
        get("router.parse", "/v1/chat/completions"),
        Expect(405, code="method_not_allowed", headers=(("Allow", "POST"),)),
    ),
    ("form, model field", post(form("beta"), **{"Content-Type": MULTIPART}), routed("beta")),
    (
        "form, no model field",
        post(form(None), **{"Content-Type": MULTIPART}),
        refused(400, "missing_model"),
    ),
    (
        "form, unknown model",
        post(form("zeta"), **{"Content-Type": MULTIPART}),
        refused(404, "model_not_found"),
    ),
    ("route: POST", Request("router.route"), Expect(redirect="@phx_route")),
    ("route: GET", get("router.route", "/v1/embeddings"), Expect(405, code="method_not_allowed")),
    (
        "form route: multipart",
        Request("router.routeForm", headersIn={"Content-Type": MULTIPART}),
        Expect(redirect="@phx_route_form"),
    ),
    (
        "form route: JSON",
        Request("router.routeForm", headersIn={"Content-Type": "application/json"}),
        Expect(redirect="@phx_route"),
    ),
    ("other POST", Request("router.routeAny", uri="/v1/other"), Expect(redirect="@phx_route")),
    ("other GET", get("router.routeAny", "/v1/other"), refused(404, "not_found")),
    ("list", get("router.models", "/v1/models"), Expect(200, models=ALL_MODELS)),
    ("one", get("router.model", "/v1/models/gamma"), Expect(200, models=("gamma",))),
    ("one, unknown", get("router.model", "/v1/models/zeta"), refused(404, "model_not_found")),
    (
        "one, POST",
        Request("router.model", uri="/v1/models/alpha"),
        Expect(405, code="method_not_allowed", headers=(("Allow", "GET"),)),
    ),
]


def check(gateway: NjsGateway, answer: Answer, expect: Expect) -> None:
    assert answer.error is None, answer.error
    if expect.redirect is not None:
        target = expect.redirect
        assert answer.status is None, answer
        if target.startswith("model:"):
            model = target.removeprefix("model:")
            assert answer.redirect == gateway.table["models"][model]
            assert answer.variables is not None and answer.variables["phx_model"] == model
        else:
            assert answer.redirect == target
        return
    assert answer.redirect is None and answer.status == expect.status, answer
    assert answer.headers is not None
    assert answer.headers["Content-Type"] == "application/json"
    for name, value in expect.headers:
        assert answer.headers[name] == value
    body = answer.json()
    if expect.code is not None:
        error = body["error"]
        assert error["code"] == expect.code, error
        assert expect.message in error["message"], error
        if expect.not_in_message:
            assert expect.not_in_message not in error["message"] + ",", error
        assert set(error) == {"message", "type", "param", "code"}
    if expect.models is not None:
        ids = tuple(m["id"] for m in body["data"]) if "data" in body else (body["id"],)
        assert ids == expect.models


@pytest.mark.parametrize(("name", "request_", "expect"), KEYED, ids=[c[0] for c in KEYED])
def test_router_with_keys(keyed: NjsGateway, name: str, request_: Request, expect: Expect) -> None:
    check(keyed, keyed.one(request_), expect)


@pytest.mark.parametrize(("name", "request_", "expect"), OPEN, ids=[c[0] for c in OPEN])
def test_router_without_keys(
    open_gateway: NjsGateway, name: str, request_: Request, expect: Expect
) -> None:
    check(open_gateway, open_gateway.one(request_), expect)


def test_key_name_is_the_matching_keys_name(keyed: NjsGateway, open_gateway: NjsGateway) -> None:
    """keyName is `js_set $phx_key` (the harness evaluates it as nginx does): the name of
    the key the request carries, '' for none; the fast path's map and rate limits read it."""
    headers = [bearer(KEY_A), bearer(KEY_B), {AUTH: KEY_A}, {AUTH: "Bearer nope"}, {}]
    probe = [Request("router.health", headersIn=h) for h in headers]
    assert [a.variables and a.variables["phx_key"] for a in keyed.run(probe)] == [
        "a",
        "b",
        "",
        "",
        "",
    ]
    assert [a.variables and a.variables["phx_key"] for a in open_gateway.run(probe)] == [""] * 5


def test_health_names_the_config_and_models(open_gateway: NjsGateway) -> None:
    answer = open_gateway.one(get("router.health", "/phoenix/health"))
    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "ok" and body["config"] == open_gateway.table["config"]
    assert sorted(body["models"]) == list(ALL_MODELS)


def test_a_model_name_is_json_escaped_for_the_502_answer(tmp_path: Path) -> None:
    """$phx_model goes into a JSON error nginx writes itself: quotes must be escaped."""
    rendered, _ = render_gateway(
        _inventory_with_model(tmp_path, 'we"ird\\model'), 101, None, "derived"
    )
    gateway = NjsGateway(rendered, tmp_path / "njs")
    answer = gateway.one(post(json.dumps({"model": 'we"ird\\model'})))
    assert answer.error is None and answer.redirect == gateway.table["models"]['we"ird\\model']
    assert answer.variables is not None
    assert answer.variables["phx_model"] == 'we\\"ird\\\\model'


def _inventory_with_model(folder: Path, model: str) -> Any:
    config = folder / "etc"
    config.mkdir()
    configs = {
        "101": {"name": "gw", "network_config": net("10.9.0.2"), "gateway": {}},
        "201": {"name": "m1", "network_config": net("10.9.0.21"), **vllm_guest(model, 8001)},
    }
    (config / "phoenix_hypervisor_config.json").write_text("{}")
    (config / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))
    return load_inventory(config)


def _nginx_answer(conf: Path, location: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the `return` in the rendered named location."""
    parsed = crossplane.parse(str(conf), single=True, check_ctx=False, check_args=False)
    stack = list(parsed["config"][0]["parsed"])
    while stack:
        directive = stack.pop()
        if directive["directive"] == "location" and directive["args"] == [location]:
            (ret,) = [x for x in directive["block"] if x["directive"] == "return"]
            status, body = ret["args"]
            return int(status), json.JSONDecoder().raw_decode(body)[0]  # an escaped newline follows
        stack.extend(directive.get("block", []))
    raise AssertionError(f"no location {location} in {conf}")


def test_nginx_refuses_a_too_complex_or_too_large_body_as_clients_expect(tmp_path: Path) -> None:
    """nginx answers a body its JIT match gave up on with the very error njs gives one it
    finds too complex, and a body over the limit with `body_too_large`: clients key on the
    code."""
    gateway = njs_gateway(tmp_path / "gw", None)
    config = tmp_path / "gw" / "etc"
    rendered, _ = render_gateway(load_inventory(config), 101, None, "derived")
    (name,) = [n for n, data in rendered.files.items() if b"@too_large" in data]
    conf = tmp_path / "api.conf"
    conf.write_bytes(rendered.files[name])
    deep = Request(
        "router.parse",
        requestText='{"a": [[]], "model": "alpha"}',
        variables={"phx_json_object": "too_complex"},
    )
    (njs,) = gateway.run([deep])
    assert (njs.status, njs.json()) == _nginx_answer(conf, "@phx_too_complex")
    status, body = _nginx_answer(conf, "@too_large")
    assert status == 413 and body["error"]["code"] == "body_too_large", body
    assert "larger than the gateway's limit of" in body["error"]["message"], body

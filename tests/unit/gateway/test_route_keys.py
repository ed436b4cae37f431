"""With API keys, path and host routes: a route to a model server asks for a key (a path
or host route was a way around them), and no route passes the gateway's key on. Who may
read the status endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.keys import key_hash
from phoenix.gateway.nginx import Directive, parse_file
from tests.unit.gateway.nginx_t import render_and_check
from tests.unit.gateway.test_render import Make


def _keyed(lab_configs: dict[str, Any]) -> dict[str, Any]:
    gateway = lab_configs["101"]["gateway"]
    gateway["api_keys"] = [{"name": "a", "sha256": key_hash("phx-k"), "models": ["alpha"]}]
    gateway["path_routes"].append({"path": "/direct-alpha", "ctid": 201, "port": 8001})
    gateway["host_routes"].append({"hostname": "beta.lab.test", "ctid": 202, "port": 8000})
    return lab_configs


def _all(tmp_path: Path, text: bytes) -> list[Directive]:
    path = tmp_path / "conf"
    path.write_bytes(text)
    directives, errors = parse_file(path)
    assert errors == []
    return [x for top in directives for x in top.walk()]


def _guarded(location: Directive) -> bool:
    return any(x.name == "if" and x.args == ["$phx_key", "=", ""] for x in location.block or [])


def _auth(location: Directive) -> list[str]:
    return [
        x.args[1] for x in location.children("proxy_set_header") if x.args[0] == "Authorization"
    ]


def test_routes_to_model_servers_ask_for_a_key_and_none_passes_it_on(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    inventory = make_inventory(_keyed(lab_configs))
    rendered, _ = render_gateway(inventory, 101, tmp_path / "s", "derived")
    api = _all(tmp_path, rendered.files["sites-available/phoenix-api"])
    paths = {x.args[-1]: x for x in api if x.name == "location" and x.args[:1] == ["^~"]}
    assert _guarded(paths["/direct-alpha/"]) and not _guarded(paths["/qdrant/"])
    assert _auth(paths["/direct-alpha/"]) == _auth(paths["/qdrant/"]) == ["$phx_route_auth"]
    host = _all(tmp_path, rendered.files["sites-available/phoenix-host-beta.lab.test"])
    proxies = [x for x in host if x.name == "location" and x.args == ["/"]]
    assert proxies and all(_guarded(x) and _auth(x) == ["$phx_route_auth"] for x in proxies)
    n8n = _all(tmp_path, rendered.files["sites-available/phoenix-host-n8n.lab.test"])
    assert not any(_guarded(x) for x in n8n if x.name == "location")
    http = _all(tmp_path, rendered.files["conf.d/phoenix-http.conf"])
    auth_map = next(x for x in http if x.name == "map" and x.args[1] == "$phx_route_auth")
    assert {(x.name, *x.args) for x in auth_map.block or []} == {
        ("default", ""),  # one of the gateway's keys: never passed on
        ("", "$http_authorization"),  # the client's own credentials for the service
    }


def test_the_keyed_routes_pass_nginx_t(lab_configs: dict[str, Any], tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    configs = {"lxc_configs": _keyed(lab_configs)}
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps(configs))
    assert render_and_check(etc, 101) is None


def _status_access(api: list[Directive]) -> dict[str, list[tuple[str, ...]]]:
    uris = ("/metrics", "/phoenix/status", "/phoenix/", "/phoenix/health")
    return {
        x.args[-1]: [(y.name, *y.args) for y in x.block or [] if y.name in ("allow", "deny")]
        for x in api
        if x.name == "location" and x.args[-1] in uris
    }


def test_status_endpoints_default_to_the_gateways_own_subnet(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    access = _status_access(_all(tmp_path, rendered.files["sites-available/phoenix-api"]))
    want = [("allow", "127.0.0.1"), ("allow", "::1"), ("allow", "10.9.0.0/24"), ("deny", "all")]
    assert len(access) == 4 and all(rules == want for rules in access.values())
    lab_configs["101"]["gateway"]["status_allow"] = ["192.0.2.0/28"]
    rendered, _ = render_gateway(make_inventory(lab_configs, "b"), 101, tmp_path / "t", "derived")
    access = _status_access(_all(tmp_path, rendered.files["sites-available/phoenix-api"]))
    assert access["/metrics"][2:] == [("allow", "192.0.2.0/28"), ("deny", "all")]


def test_no_model_location_passes_the_clients_gateway_key_to_a_model_server(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    """Every location that proxies to a model server (the per-model ones and the fast
    body routes) clears Authorization when keys are set: a gateway key reaching a model
    server would leak it to whoever runs that server. Without keys it is left alone."""

    def proxies(configs: dict[str, Any], name: str) -> list[Directive]:
        rendered, _ = render_gateway(make_inventory(configs, name), 101, tmp_path / name, "derived")
        api = _all(tmp_path, rendered.files["sites-available/phoenix-api"])
        found = [
            x
            for x in api
            if x.name == "location"
            and x.args[0].startswith("@")
            and x.children("proxy_pass")
            and x.args[0] not in ("@phx_parse",)
        ]
        names = {x.args[0] for x in found}
        assert {"@phx_route", "@phx_route_form"} <= names and len(names) > 2
        return found

    open_gw = proxies(json.loads(json.dumps(lab_configs)), "open")
    assert all(_auth(x) == [] for x in open_gw)
    keyed = proxies(_keyed(lab_configs), "keyed")
    assert all(_auth(x) == [""] for x in keyed), [x.args for x in keyed if _auth(x) != [""]]


def test_the_form_route_sends_a_model_field_named_twice_to_njs(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    """A multipart body naming `model` twice is never routed natively (the two names
    could disagree): @phx_route_form returns 418 first, which error_page hands to njs."""
    from phoenix.gateway.api_site import nginx_token
    from phoenix.gateway.bodyrules import FORM_TWICE_RE

    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    api = _all(tmp_path, rendered.files["sites-available/phoenix-api"])
    form = next(x for x in api if x.name == "location" and x.args == ["@phx_route_form"])
    ifs = form.children("if")
    guard = ifs[0]
    assert guard.args[:2] == ["$request_body", "~"]
    assert guard.args[2] == nginx_token(FORM_TWICE_RE)
    assert guard.first_arg("return") == "418"
    assert ["418", "=", "@phx_parse"] in [x.args for x in form.children("error_page")]

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from phoenix.errors import GatewayError
from phoenix.gateway import render as render_mod
from phoenix.gateway.bundle import SCRIPT_NAME, gateway_bundle, render_gateway
from phoenix.gateway.nginx import Directive, parse_file
from phoenix.gateway.render import Layout
from phoenix.gateway.tls import cert_sans
from phoenix.inventory import Inventory, load_inventory
from tests.unit.gateway.conftest import FIXTURES, MakeInventory

Make = MakeInventory


def _parse(tmp_path: Path, text: bytes) -> list[Directive]:
    path = tmp_path / "parsed.conf"
    path.write_bytes(text)
    directives, errors = parse_file(path)
    assert errors == []
    return directives


def _all(directives: list[Directive]) -> list[Directive]:
    return [x for top in directives for x in top.walk()]


def test_render_is_byte_identical_when_nothing_changed(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    inventory = make_inventory(lab_configs)
    first, _ = render_gateway(inventory, 101, tmp_path / "state", "derived")
    second, _ = render_gateway(inventory, 101, tmp_path / "state", "derived")
    assert first.files == second.files and first.config_id == second.config_id
    one = gateway_bundle(inventory, 101, tmp_path / "state", "derived")
    two = gateway_bundle(inventory, 101, tmp_path / "state", "derived")
    assert one.digest == two.digest
    assert one.script_name == SCRIPT_NAME and one.script.startswith(b"#!/bin/bash")
    assert b"set -euo pipefail" in one.script
    assert "tree/nginx.conf" in one.files and "gateway.env" in one.files
    lab_configs["202"]["vllm_engine_config"]["ServerConfig"]["port"] = 9000
    changed = gateway_bundle(
        make_inventory(lab_configs, "etc2"), 101, tmp_path / "state", "derived"
    )
    assert changed.digest != one.digest


def test_the_body_buffer_holds_the_limit_and_its_chunk_framing(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    lab_configs["101"]["gateway"]["max_body_mb"] = 7
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    http = _parse(tmp_path, rendered.files["conf.d/phoenix-http.conf"])
    values = {x.name: x.args for x in http}
    assert values["client_max_body_size"] == ["7m"]
    # 7 MiB and 1/16 for a chunked body's framing (7,168 KiB + 448 KiB): in memory, whole
    assert values["client_body_buffer_size"] == ["7616k"]
    assert values["ssl_protocols"] == ["TLSv1.2", "TLSv1.3"]
    upgrade_map = next(x for x in http if x.name == "map")
    assert upgrade_map.args == ["$http_upgrade", "$connection_upgrade"]


def test_model_locations_stream_unbuffered(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    lab_configs["101"]["gateway"]["generation_timeout_s"] = 900
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    api = _all(_parse(tmp_path, rendered.files["sites-available/phoenix-api"]))
    named = [x for x in api if x.name == "location" and x.args[0].startswith("@model_")]
    assert len(named) == 2
    for loc in named:
        assert loc.first_arg("proxy_buffering") == "off"
        assert loc.first_arg("proxy_read_timeout") == "900s"
        assert not loc.children("js_content")
    routers = [x for x in api if x.name == "location" and x.children("js_content")]
    assert {x.args[-1] for x in routers} >= {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "@phx_parse",
    }
    assert all(not x.children("proxy_pass") for x in routers)
    fast = next(x for x in api if x.name == "location" and x.args == ["@phx_route"])
    assert fast.first_arg("proxy_pass") == "http://$phx_upstream"
    assert fast.first_arg("proxy_buffering") == "off"
    assert fast.first_arg("proxy_read_timeout") == "900s"
    assert not fast.children("js_content")


def test_never_forces_connection_upgrade(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    headers = []
    for name, data in rendered.files.items():
        if name.startswith(("sites-available/", "conf.d/")):
            headers += [
                x.args
                for x in _all(_parse(tmp_path, data))
                if x.name == "proxy_set_header" and x.args[0] == "Connection"
            ]
    assert ["Connection", "$connection_upgrade"] in headers  # websocket routes
    assert all(h[1] in ("", "$connection_upgrade") for h in headers)


def test_host_routes_tls_and_redirect(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(
        make_inventory(lab_configs),
        101,
        tmp_path / "s",
        "derived",
        Layout(listen_address="127.0.0.1"),
    )
    servers = [
        x for x in _parse(tmp_path, rendered.files["sites-available/phoenix-host-n8n.lab.test"])
    ]
    redirect, tls = servers
    assert redirect.first_arg("return") == "301"
    assert redirect.children("return")[0].args[1] == "https://$host$request_uri"
    assert tls.children("listen")[0].args == ["127.0.0.1:443", "ssl", "http2"]
    cert = x509.load_pem_x509_certificate(rendered.files["ssl/host-n8n.lab.test.crt"])
    assert cert_sans(cert) == {"n8n.lab.test"}
    api = x509.load_pem_x509_certificate(rendered.files["ssl/phoenix-api.crt"])
    assert cert_sans(api) == {"api.lab.test", "10.9.0.2"}
    plain = _parse(tmp_path, rendered.files["sites-available/phoenix-host-ext.lab.test"])
    assert len(plain) == 1 and plain[0].first_arg("listen") == "127.0.0.1:80"


def test_models_table_for_the_router(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    text = rendered.files["njs/phoenix_models.js"].decode()
    table = json.loads(text.split("export default ", 1)[1].rstrip().rstrip(";"))
    assert table["models"] == {"alpha": "@model_alpha", "beta": "@model_beta"}
    assert [m["id"] for m in table["list"]] == ["alpha", "beta"]
    assert table["routes"] == 6 and table["config"] == rendered.config_id
    assert b"import table from 'phoenix_models.js'" in rendered.files["njs/router.js"]


def _seed_copy(tmp_path: Path, fix: bool) -> Inventory:
    copy = tmp_path / "seed"
    shutil.copytree(FIXTURES / "phoenix-etc-seed", copy)
    copy.chmod(0o755)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    if fix:
        site = copy / "nginx" / "sites-available" / "vllm_gateway"
        site.write_text(site.read_text().replace("\n-\n", "\n", 1))
    return load_inventory(copy)


def test_compat_refuses_sites_nginx_would_reject(tmp_path: Path) -> None:
    inventory = _seed_copy(tmp_path, fix=False)
    with pytest.raises(GatewayError, match="vllm_gateway:4"):
        render_gateway(inventory, 101, tmp_path / "s")  # auto -> compat (sites exist)


def test_compat_ships_sites_as_they_are_with_san_certs(tmp_path: Path) -> None:
    inventory = _seed_copy(tmp_path, fix=True)
    rendered, findings = render_gateway(inventory, 101, tmp_path / "s")
    assert rendered.mode == "compat"
    sites = inventory.nginx_dir / "sites-available"
    for site in sites.iterdir():
        assert rendered.files[f"sites-available/{site.name}"] == site.read_bytes()
    assert set(rendered.system_ssl) == {
        "n8n.phoenix.local.crt",
        "n8n.phoenix.local.key",
        "portainer.phoenix.local.crt",
        "portainer.phoenix.local.key",
    }
    cert = x509.load_pem_x509_certificate(rendered.system_ssl["n8n.phoenix.local.crt"])
    assert cert_sans(cert) == {"n8n.phoenix.local"}
    assert any(f.code == "conflicting-server-name" for f in findings)
    derived, _ = render_gateway(inventory, 101, tmp_path / "s", "derived")
    assert derived.mode == "derived" and "sites-available/vllm_gateway" not in derived.files


def test_model_upstreams_balance_by_least_connections_with_passive_health(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    ups = _parse(tmp_path, rendered.files["conf.d/phoenix-upstreams.conf"])
    beta = next(x for x in ups if x.name == "upstream" and x.args == ["model_beta"])
    names = [x.name for x in beta.block or []]
    # least_conn counted across workers (zone), before keepalive as nginx requires
    assert names[:2] == ["zone", "least_conn"] and names.index("keepalive") > 2
    # As many idle connections as the clients a worker serves at once: with fewer (32), 256
    # concurrent clients opened a new upstream connection for most requests (0.60x the
    # req/s of plain proxying with the same keepalive, 1.5x its CPU per request).
    assert int(beta.first_arg("keepalive") or 0) >= 256
    servers = beta.children("server")
    assert [s.args for s in servers] == [
        ["10.9.0.22:8000", "max_fails=1", "fail_timeout=10s"],
        ["10.9.0.23:8002", "max_fails=1", "fail_timeout=10s"],
    ]
    # A lone backend gets a backup that refuses at once: nginx counts max_fails only in an
    # upstream of several servers, so without it a dead lone backend costs every request
    # the full connect timeout. Upstreams of several backends need none.
    models = [x for x in ups if x.name == "upstream" and x.args[0].startswith("model_")]
    lone = 0
    for upstream in models:
        args = [s.args for s in upstream.children("server")]
        primaries = [a for a in args if a[-1] != "backup"]
        assert all(a[1:] == ["max_fails=1", "fail_timeout=10s"] for a in primaries)
        backups = [a for a in args if a[-1] == "backup"]
        assert backups == ([["unix:/dev/null", "backup"]] if len(primaries) == 1 else [])
        lone += len(primaries) == 1
    assert lone, "the lab has models with one backend"
    assert not any(s.args[-1] == "backup" for s in servers)
    routes = [x for x in ups if x.name == "upstream" and not x.args[0].startswith("model_")]
    assert routes and all(len(x.children("server")) == 1 for x in routes)
    api = _all(_parse(tmp_path, rendered.files["sites-available/phoenix-api"]))
    proxies = [
        x
        for x in api
        if x.name == "location" and x.children("proxy_pass") and x.args[0].startswith("@")
    ]
    for loc in proxies:
        # retried only before a backend received it: never `non_idempotent`
        assert loc.children("proxy_next_upstream")[0].args == ["error", "timeout"]
        # The answer's token usage is read on its way out (usage.js), in this VM only.
        assert loc.first_arg("js_body_filter") == "usage.scan"
        assert [x.args for x in loc.children("js_import")] == [["usage", "from", "usage.js"]]
        assert loc.first_arg("proxy_connect_timeout") == "1s"
        assert loc.children("error_page")[-1].args == [
            "502",
            "503",
            "504",
            "=",
            "@phx_upstream_error",
        ]


def test_upstream_failures_are_told_apart_by_what_nginx_recorded(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    http = _parse(tmp_path, rendered.files["conf.d/phoenix-http.conf"])
    failure = next(x for x in http if x.name == "map" and x.args[1] == "$phx_upstream_failure")
    rules = [(x.name, x.args[0]) for x in failure.block or []]
    import re

    def kind(value: str) -> str:
        for pattern, result in rules[1:]:
            if re.search(pattern[1:], value):
                return result
        return rules[0][1]

    assert kind("502, 502|-, -") == "503"  # every connect refused
    assert kind("502|-") == "503"  # no live upstreams
    assert kind("504|-") == "503"  # connect timed out
    assert kind("504|0.001") == "504"  # took it, then timed out
    assert kind("502, 504|-, 0.000") == "504"
    assert kind("502|0.000") == "502"  # took it, then hung up


def test_host_and_path_routes_answer_errors_themselves(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    host = _all(_parse(tmp_path, rendered.files["sites-available/phoenix-host-n8n.lab.test"]))
    pages = [x.args for x in host if x.name == "error_page"]
    assert ["502", "503", "504", "=", "@phx_err_${phx_error_format}"] in pages
    assert ["413", "=", "@phx_413_${phx_error_format}"] in pages
    named = {x.args[0] for x in host if x.name == "location" and x.args[0].startswith("@")}
    assert {"@phx_err_json", "@phx_err_html", "@phx_413_json", "@phx_413_html"} <= named
    html = [x for x in host if x.name == "return" and x.args[0] == "503"]
    assert any("n8n.lab.test" in r.args[1] and "<html>" in r.args[1] for r in html)
    api = _all(_parse(tmp_path, rendered.files["sites-available/phoenix-api"]))
    qdrant = next(x for x in api if x.name == "location" and x.args[-1] == "/qdrant/")
    assert ["502", "503", "504", "=", "@phx_err_${phx_error_format}_p0"] in [
        x.args for x in qdrant.children("error_page")
    ]


def test_keys_render_a_keyed_fast_path_and_one_zone_per_rate(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    open_gw, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    assert b"js_set" not in open_gw.files["conf.d/phoenix-http.conf"]  # no keys: as before
    assert b"limit_req" not in open_gw.files["sites-available/phoenix-api"]
    lab_configs["101"]["gateway"]["api_keys"] = [
        {"name": "a", "sha256": "1" * 64, "models": ["alpha"], "rpm": 30},
        {"name": "b", "sha256": "2" * 64},
    ]
    rendered, _ = render_gateway(
        make_inventory(lab_configs, "etc2"), 101, tmp_path / "s", "derived"
    )
    http = _parse(tmp_path, rendered.files["conf.d/phoenix-http.conf"])
    zones = [x.args for x in http if x.name == "limit_req_zone"]
    assert zones == [["$phx_rl_30", "zone=phx_rpm_30:64k", "rate=30r/m"]]
    assert ["$phx_key", "router.keyName"] in [x.args for x in http if x.name == "js_set"]
    ups = _parse(tmp_path, rendered.files["conf.d/phoenix-upstreams.conf"])
    fast = next(x for x in ups if x.name == "map" and x.args[1] == "$phx_upstream")
    assert fast.args[0] == "$phx_key_class:$phx_model"
    classes = next(x for x in http if x.name == "map" and x.args[1] == "$phx_key_class")
    assert [[x.name, *x.args] for x in classes.block or []] == [
        ["default", ""],
        ["a", "c0"],
        ["b", "c1"],
    ]
    rules = {x.name: x.args[0] for x in fast.block or []}
    assert rules["~^(?:c0|c1):alpha\\\\z"] == "model_alpha"  # both keys may use alpha
    assert rules["~^(?:c1):beta\\\\z"] == "model_beta"  # only b may use beta
    api = _all(_parse(tmp_path, rendered.files["sites-available/phoenix-api"]))
    assert ["zone=phx_rpm_30", "burst=29", "nodelay"] in [
        x.args for x in api if x.name == "limit_req"
    ]
    assert ["429", "=", "@phx_rate_limited"] in [x.args for x in api if x.name == "error_page"]
    models_js = rendered.files["njs/phoenix_models.js"].decode()
    assert '"1111' in models_js and '"models": null' in models_js
    assert rendered.config_id != open_gw.config_id


def test_every_api_request_is_one_metrics_line_and_the_status_endpoints_are_not(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    layout = Layout(log_dir="/l", metrics_dir="/m")
    rendered, _ = render_gateway(
        make_inventory(lab_configs), 101, tmp_path / "s", "derived", layout
    )
    http = _parse(tmp_path, rendered.files["conf.d/phoenix-http.conf"])
    fmt = next(x for x in http if x.name == "log_format")
    assert fmt.args[0] == "phx_metrics" and fmt.args[1].count("\\t") == 8
    assert ["$phx_usage", "-"] in [x.args for x in http if x.name == "js_var"]
    api = _parse(tmp_path, rendered.files["sites-available/phoenix-api"])[0]
    assert ["/l/phoenix-requests.log", "phx_metrics", "buffer=32k", "flush=1s"] in [
        x.args for x in api.children("access_log")
    ]
    for uri in ("/phoenix/status", "/metrics", "/phoenix/"):
        loc = next(x for x in api.children("location") if x.args == ["=", uri])
        assert loc.first_arg("access_log") == "off"
    table = rendered.files["njs/phoenix_models.js"].decode()
    assert '"/m/checkpoint.json"' in table and '"10.9.0.22:8000"' in table
    assert "njs/metrics.js" in rendered.files
    assert rendered.env()["PHOENIX_GATEWAY_METRICS_DIR"] == "/m"
    assert rendered.env()["PHOENIX_GATEWAY_WORKER_USER"] == "www-data"


def test_the_main_config_loads_njs_and_bounds_a_reloads_drain() -> None:
    """The JS module first (every site needs it), PCRE JIT for the body scan, workers'
    descriptors, the old generation stopped after the drain time, temp files under the
    runtime dir when the host gives one, and the two include trees."""
    with_runtime = render_mod.main_conf(render_mod.Layout(runtime_dir="/run/x"), 30)
    assert with_runtime.splitlines()[1:] == [
        "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;",
        "user www-data;",
        "pcre_jit on;",
        "worker_processes auto;",
        "worker_rlimit_nofile 16384;",
        "worker_shutdown_timeout 30s;",
        "error_log /var/log/nginx/error.log;",
        "events {",
        "    worker_connections 4096;",
        "}",
        "http {",
        *(
            f"    {k}_temp_path /run/x/{k};"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        "    include conf.d/*.conf;",
        "    include sites-enabled/*;",
        "}",
    ]
    plain = render_mod.main_conf(render_mod.Layout(user=None))
    assert "worker_shutdown_timeout 600s;" in plain
    assert "user " not in plain and "_temp_path" not in plain


def test_the_http_settings_hide_the_version_and_allow_only_modern_tls() -> None:
    text = render_mod.http_conf(render_mod.Layout(access_log=False), 8)
    lines = text.splitlines()
    for line in [
        "default_type application/octet-stream;",
        "server_tokens off;",
        "sendfile on;",
        "tcp_nodelay on;",
        "keepalive_timeout 65s;",
        "keepalive_requests 10000;",
        "access_log off;",
        "client_max_body_size 8m;",
        "client_body_in_single_buffer on;",
        "server_names_hash_bucket_size 512;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_cache shared:phoenix_tls:10m;",
        "ssl_session_timeout 1d;",
        "js_path njs;",
        "js_import router from router.js;",
    ]:
        assert line in lines, line
    assert "map_hash_bucket_size" not in text and "log_format" not in text
    logged = render_mod.http_conf(render_mod.Layout(), 8, metrics=True)
    assert "access_log /var/log/nginx/access.log;" in logged.splitlines()
    assert "js_var $phx_usage -;" in logged.splitlines()
    assert "log_format phx_metrics " in logged

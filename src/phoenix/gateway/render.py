"""Render the gateway as a relocatable nginx tree (all paths relative to nginx.conf).

    nginx.conf                      main config: includes conf.d/*.conf and sites-enabled/*
    conf.d/phoenix-http.conf        http-level settings, upgrade map, njs import, TLS policy
    conf.d/phoenix-upstreams.conf   one upstream per model (passive health) and per route
    sites-available/phoenix-api     the API server: model routing, /v1/models, health, paths
    sites-available/phoenix-host-*  one per host route (TLS + HTTP->HTTPS redirect)
    njs/router.js, njs/usage.js, njs/phoenix_models.js
    ssl/<name>.crt|.key, ca.crt     leaf certificates from the local CA

Because every path is relative, `nginx -t -c <tree>/nginx.conf` checks a staged tree
exactly as it will run once it is switched live. This module assembles the tree; the API
server is api_site.py, upstreams and other services services.py, compatibility mode (the
operator's hand-written sites, shipped as they are) compat.py."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from phoenix import __version__
from phoenix.gateway.answers import failure_maps
from phoenix.gateway.api_site import (
    USAGE_VAR,
    api_site,
    json_object_map,
    metrics_log_format,
    model_map,
)
from phoenix.gateway.bodyrules import njs_rules
from phoenix.gateway.keys import MAP_BUCKET, njs_table
from phoenix.gateway.keys import http_directives as keys_http
from phoenix.gateway.layout import HEADER, METRICS_LOG, Layout, Mode, RenderedGateway, asset
from phoenix.gateway.limits import FILES_PER_WORKER, WORKER_CONNECTIONS, body_buffer_kib
from phoenix.gateway.limits import http_directives as limits_http
from phoenix.gateway.nginx import Directive, blk, build, d
from phoenix.gateway.routes import GatewayRoutes, Target, host_file_name
from phoenix.gateway.services import host_servers, upstream_block
from phoenix.gateway.status_access import njs_table as operators_table
from phoenix.gateway.tls import LocalCA
from phoenix.inventory.models import ApiKey

SERVER_NAMES_BUCKET = 512

__all__ = ["HEADER", "Layout", "Mode", "RenderedGateway", "asset", "render_derived", "write_tree"]


def main_conf(layout: Layout, drain_s: int = 600) -> str:
    top: list[Directive] = [d("load_module", layout.js_module)]
    if layout.user:
        top.append(d("user", layout.user))
    top += [
        # The model router's regex scans request bodies: JIT makes it memchr-fast.
        d("pcre_jit", "on"),
        d("worker_processes", layout.worker_processes),
        # Descriptors for every connection a worker may hold, twice over (limits.py).
        d("worker_rlimit_nofile", FILES_PER_WORKER),
        # A reload starts new workers; the old ones finish their open requests (streams,
        # websockets) and are stopped after at most this long: the generation timeout.
        d("worker_shutdown_timeout", f"{drain_s}s"),
        d("error_log", f"{layout.log_dir}/error.log"),
        blk("events", body=[d("worker_connections", WORKER_CONNECTIONS)]),
    ]
    http: list[Directive] = []
    if layout.runtime_dir:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            http.append(d(f"{kind}_temp_path", f"{layout.runtime_dir}/{kind}"))
    http += [d("include", "conf.d/*.conf"), d("include", "sites-enabled/*")]
    top.append(blk("http", body=http))
    return build(top, HEADER)


def http_conf(
    layout: Layout, max_body_mb: int, keys: list[ApiKey] | None = None, metrics: bool = False
) -> str:
    body = [
        d("default_type", "application/octet-stream"),
        d("server_tokens", "off"),
        d("sendfile", "on"),
        d("tcp_nodelay", "on"),
        d("keepalive_timeout", "65s"),
        d("keepalive_requests", 10000),
        d("access_log", f"{layout.log_dir}/access.log" if layout.access_log else "off"),
        # The router reads the whole body from memory: keep the buffer as large as the
        # limit and a chunked body's framing (limits.py), or a body would spill to a file.
        d("client_max_body_size", f"{max_body_mb}m"),
        d("client_body_buffer_size", f"{body_buffer_kib(max_body_mb)}k"),
        # One buffer: $request_body is then the buffer itself, never a copy.
        d("client_body_in_single_buffer", "on"),
        # A host name may be 253 characters (API hostnames, host routes): room for one.
        d("server_names_hash_bucket_size", SERVER_NAMES_BUCKET),
        # Before any map (nginx fixes the size at the first one): room for key names.
        *([d("map_hash_bucket_size", MAP_BUCKET)] if keys else []),
        blk(
            "map",
            "$http_upgrade",
            "$connection_upgrade",
            body=[d("default", "upgrade"), d("", "close")],
        ),
        d("ssl_protocols", "TLSv1.2", "TLSv1.3"),
        d("ssl_prefer_server_ciphers", "off"),
        d("ssl_session_cache", "shared:phoenix_tls:10m"),
        d("ssl_session_timeout", "1d"),
        *failure_maps(),
        d("js_path", "njs"),
        d("js_import", "router", "from", "router.js"),
        # One line per API request: what /metrics and /phoenix/status count (metrics.js).
        *(
            [
                d("js_var", USAGE_VAR, "-"),
                d("log_format", "phx_metrics", metrics_log_format(bool(keys))),
            ]
            if metrics
            else []
        ),
        *keys_http(keys or []),
        *(limits_http() if metrics else []),
    ]
    return build(body, HEADER)


def _upstreams(routes: GatewayRoutes) -> str:
    ups = [
        upstream_block(m.upstream, [b.hostport for b in m.backends], passive=True)
        for m in routes.models
    ]
    targets: list[Target] = [p.target for p in routes.paths] + [h.target for h in routes.hosts]
    for t in targets:
        if t.upstream is not None:
            ups.append(upstream_block(t.upstream, [b.hostport for b in t.backends], passive=False))
    ups.append(model_map(routes))
    ups.append(json_object_map())
    return build(ups, HEADER)


def _models_js(
    routes: GatewayRoutes | None, mode: Mode, config_id: str, route_count: int, layout: Layout
) -> bytes:
    models = {m.model: f"@{m.upstream}" for m in (routes.models if routes else ())}
    table = {
        "version": __version__,
        "mode": mode,
        "config": config_id,
        "routes": route_count,
        "models": models,
        "list": [
            {"id": name, "object": "model", "created": 0, "owned_by": "phoenix"} for name in models
        ],
        "keys": njs_table(routes.config.api_keys) if routes else None,
        "operators": operators_table(routes.config.operator_keys) if routes else None,
        "rules": njs_rules(),
        "backends": {
            m.model: [b.hostport for b in m.backends] for m in (routes.models if routes else ())
        },
        "metrics": {
            "log": f"{layout.log_dir}/{METRICS_LOG}",
            "state": f"{layout.metrics_dir}/checkpoint.json",
        },
    }
    text = "// " + HEADER + "\nexport default " + json.dumps(table, indent=1, sort_keys=True)
    return (text + ";\n").encode()


def _config_id(files: Mapping[str, bytes], extra: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + files[path] + b"\0")
    for path in sorted(extra):
        h.update(b"sys\0" + path.encode() + b"\0" + extra[path] + b"\0")
    return h.hexdigest()[:16]


def finish_tree(
    mode: Mode,
    files: dict[str, bytes],
    routes: GatewayRoutes | None,
    ca: LocalCA,
    health_port: int,
    system_ssl: dict[str, bytes],
    route_count: int,
    layout: Layout,
) -> RenderedGateway:
    files["njs/router.js"] = asset("router.js")
    files["njs/metrics.js"] = asset("metrics.js")
    files["njs/usage.js"] = asset("usage.js")
    page = json.dumps(asset("status.html").decode())
    files["njs/status_page.js"] = f"// {HEADER}\nexport default {page};\n".encode()
    files["ca.crt"] = ca.cert_pem
    keys = njs_table(routes.config.api_keys) if routes else None
    operators = operators_table(routes.config.operator_keys) if routes else None
    # The key tables live in phoenix_models.js (written after the id): hash them in too.
    extra = dict(system_ssl)
    if keys:
        extra["keys"] = json.dumps(keys, sort_keys=True).encode()
    if operators:
        extra["operators"] = json.dumps(operators, sort_keys=True).encode()
    config_id = _config_id(files, extra)
    files["njs/phoenix_models.js"] = _models_js(routes, mode, config_id, route_count, layout)
    return RenderedGateway(mode, files, health_port, config_id, system_ssl, route_count, layout)


def render_derived(
    routes: GatewayRoutes, ca: LocalCA, layout: Layout | None = None
) -> RenderedGateway:
    """The gateway derived from the inventory's routes."""
    layout = layout or Layout()
    files: dict[str, bytes] = {
        "nginx.conf": main_conf(layout, routes.config.generation_timeout_s).encode(),
        "conf.d/phoenix-http.conf": http_conf(
            layout, routes.config.max_body_mb, routes.config.api_keys, metrics=True
        ).encode(),
        "conf.d/phoenix-upstreams.conf": _upstreams(routes).encode(),
        "sites-available/phoenix-api": build(api_site(routes, layout), HEADER).encode(),
    }
    for host in routes.hosts:
        files[f"sites-available/phoenix-host-{host_file_name(host.hostname)}"] = build(
            host_servers(host, routes, layout), HEADER
        ).encode()
    for name, sans in routes.tls_sites().items():
        pair = ca.leaf(name, sans)
        files[f"ssl/{name}.crt"] = pair.cert_pem
        files[f"ssl/{name}.key"] = pair.key_pem
    return finish_tree(
        "derived", files, routes, ca, routes.config.http_port, {}, routes.route_count, layout
    )


def write_tree(rendered: RenderedGateway, out: Path, setup_script: bytes | None = None) -> None:
    """Write the bundle for inspection: tree/ (with sites-enabled links), system-ssl/,
    gateway.env and the setup script, laid out as in /tmp/phoenix_run."""
    for rel, data in {
        **{f"tree/{k}": v for k, v in rendered.files.items()},
        **{f"system-ssl/{k}": v for k, v in rendered.system_ssl.items()},
    }.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o600 if rel.endswith(".key") else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    enabled = out / "tree" / "sites-enabled"
    enabled.mkdir(parents=True, exist_ok=True)
    for site in sorted((out / "tree" / "sites-available").iterdir()):
        link = enabled / site.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"../sites-available/{site.name}")
    (out / "gateway.env").write_text(env_file(rendered.env()))
    if setup_script is not None:
        script = out / "setup_gateway.sh"
        script.write_bytes(setup_script)
        script.chmod(0o755)


def env_file(env: Mapping[str, str]) -> str:
    """KEY='value' lines the setup script sources (values are simple tokens, still quoted)."""
    import shlex

    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))

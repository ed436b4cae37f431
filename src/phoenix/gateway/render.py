"""Render the gateway as a relocatable nginx tree (all paths relative to nginx.conf).

    nginx.conf                      main config: includes conf.d/*.conf and sites-enabled/*
    conf.d/phoenix-http.conf        http-level settings, upgrade map, njs import, TLS policy
    conf.d/phoenix-upstreams.conf   one upstream per model (passive health) and per route
    sites-available/phoenix-api     the API server: model routing, /v1/models, health, paths
    sites-available/phoenix-host-*  one per host route (TLS + HTTP->HTTPS redirect)
    njs/router.js, njs/phoenix_models.js
    ssl/<name>.crt|.key, ca.crt     leaf certificates from the local CA

Because every path is relative, `nginx -t -c <tree>/nginx.conf` checks a staged tree
exactly as it will run once it is switched live. In compatibility mode the operator's
hand-written `nginx/sites-available/*` are shipped as they are instead of the derived sites.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from phoenix import __version__
from phoenix.errors import GatewayError
from phoenix.gateway.answers import (
    FAIL_TIMEOUT_S,
    MAX_FAILS,
    UPSTREAM_ERROR,
    failure_maps,
    json_return,
    model_upstream_error,
    service_error_locations,
    service_error_pages,
    upstream_retry,
)
from phoenix.gateway.keys import KEY_VAR, allowed_keys, njs_table, rate_limited_location
from phoenix.gateway.keys import http_directives as keys_http
from phoenix.gateway.keys import server_directives as keys_server
from phoenix.gateway.nginx import Directive, blk, build, d, parse_file
from phoenix.gateway.routes import GatewayRoutes, HostRouteSpec, Target
from phoenix.gateway.tls import LocalCA
from phoenix.inventory.models import ApiKey

Mode = Literal["derived", "compat"]
# JSON endpoints that name their model in the body, matched exactly (the fastest match):
# OpenAI's, and vLLM's own (some of which it serves at the root as well as under /v1).
# Any other POST under /v1/ is routed the same way by the /v1/ prefix location.
MODEL_ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/moderations",
    "/v1/audio/speech",
    "/v1/images/generations",
    "/v1/rerank",
    "/v1/score",
    "/v1/tokenize",
    "/v1/detokenize",
    "/v1/classify",
    "/v1/pooling",
    "/v2/rerank",
    "/rerank",
    "/score",
    "/tokenize",
    "/detokenize",
    "/classify",
    "/pooling",
)
# Multipart endpoints carry `model` as a form field; routed by that field.
FORM_ENDPOINTS = (
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/images/edits",
    "/v1/images/variations",
)
# Native model routing (see route_model_fast / README "Model routing"): the first object key
# "model" (not preceded by an escaped quote) whose value is a plain JSON string. PCRE text.
FAST_MODEL_RE = r'"(?<!\\")model"\s*+:\s*+"([^"\\]+)"'
# The multipart form field `model`: its part's headers, a blank line, the value, CRLF.
FORM_MODEL_RE = (
    r'(?i)content-disposition:[ \t]*+form-data;[ \t]*+name="model"\r\n(?:[^\r\n]++\r\n)*?'
    r"\r\n([^\r\n]++)\r\n"
)
# Model names the fast path's map may name verbatim; any other name is routed by njs alone.
FAST_MODEL_NAME = re.compile(r"[A-Za-z0-9._:/@+=-]+")
FAST_FALLBACK_STATUS = 418  # internal only: hands the request from @phx_route to @phx_parse
COMPAT_HEALTH_PORT = 8099
UPSTREAM_KEEPALIVE = 256
METRICS_LOG_FORMAT = "\\t".join(
    [
        "$msec",
        "$phx_model",
        "$status",
        "$upstream_addr",
        "$upstream_status",
        "$upstream_header_time",
        "$upstream_response_time",
    ]
)
# In the log dir, so Debian's logrotate keeps it bounded (a rotation restarts the counts).
METRICS_LOG = "phoenix-requests.log"
METRICS_BUFFER, METRICS_FLUSH_S = "32k", 1
HEADER = "Rendered by Phoenix from the inventory. Do not edit: re-render instead."


@dataclass(frozen=True)
class Layout:
    """Host-specific bits of the main config (the defaults are for the Debian guest)."""

    user: str | None = "www-data"
    worker_processes: str = "auto"
    log_dir: str = "/var/log/nginx"
    access_log: bool = True
    runtime_dir: str | None = None
    listen_address: str | None = None
    js_module: str = "/usr/lib/nginx/modules/ngx_http_js_module.so"
    # Where the workers keep the metrics checkpoint (owned by their user).
    metrics_dir: str = "/var/lib/phoenix-gateway"

    @property
    def worker_user(self) -> str:
        return self.user or "nobody"  # nginx's own default when the master runs as root

    def listen(self, port: int) -> str:
        return f"{self.listen_address}:{port}" if self.listen_address else str(port)


@dataclass
class RenderedGateway:
    """The tree (relative path -> bytes) plus what the setup script needs to know."""

    mode: Mode
    files: dict[str, bytes]
    health_port: int
    config_id: str
    system_ssl: dict[str, bytes] = field(default_factory=dict)
    route_count: int = 0
    layout: Layout = field(default_factory=lambda: Layout())

    def env(self) -> dict[str, str]:
        return {
            "PHOENIX_GATEWAY_MODE": self.mode,
            "PHOENIX_GATEWAY_CONFIG": self.config_id,
            "PHOENIX_GATEWAY_HEALTH_PORT": str(self.health_port),
            "PHOENIX_GATEWAY_METRICS_DIR": self.layout.metrics_dir,
            "PHOENIX_GATEWAY_WORKER_USER": self.layout.worker_user,
        }


def asset(name: str) -> bytes:
    return (resources.files("phoenix.gateway") / "assets" / name).read_bytes()


def _proxy_headers(websocket: bool, timeout: int | None) -> list[Directive]:
    out = [
        d("proxy_http_version", "1.1"),
        d("proxy_set_header", "Host", "$host"),
        d("proxy_set_header", "X-Real-IP", "$remote_addr"),
        d("proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for"),
        d("proxy_set_header", "X-Forwarded-Proto", "$scheme"),
    ]
    if websocket:
        out += [
            d("proxy_set_header", "Upgrade", "$http_upgrade"),
            d("proxy_set_header", "Connection", "$connection_upgrade"),
        ]
    else:
        out.append(d("proxy_set_header", "Connection", ""))
    if timeout is not None:
        out += [d("proxy_read_timeout", f"{timeout}s"), d("proxy_send_timeout", f"{timeout}s")]
    return out


def _upstream(name: str, servers: list[str], passive: bool) -> Directive:
    """A model's upstream balances by least connections (LLM requests last from
    milliseconds to minutes, so counting requests in flight beats taking turns), counted
    across workers in a shared `zone`; one failure skips a backend for FAIL_TIMEOUT_S."""
    body: list[Directive] = []
    if passive:
        body += [d("zone", f"phx_{name}", "64k"), d("least_conn")]
    body += [
        d("server", s, f"max_fails={MAX_FAILS}", f"fail_timeout={FAIL_TIMEOUT_S}s")
        if passive
        else d("server", s)
        for s in servers
    ]
    # Idle connections kept per worker: as many as the clients it serves at once, or most
    # requests of a busy gateway open a new connection (measured at 256 clients: 32 idle
    # gave 0.6x the req/s of plain proxying and 1.5x its CPU per request).
    body.append(d("keepalive", UPSTREAM_KEEPALIVE))
    # Drop idle connections before the server does (uvicorn, under vLLM, closes them after
    # 5 s): a POST written into a connection the server is closing is never resent.
    body.append(d("keepalive_timeout", "4s"))
    return blk("upstream", name, body=body)


def _main_conf(layout: Layout, drain_s: int = 600) -> str:
    top: list[Directive] = [d("load_module", layout.js_module)]
    if layout.user:
        top.append(d("user", layout.user))
    top += [
        # The model router's regex scans request bodies: JIT makes it memchr-fast.
        d("pcre_jit", "on"),
        d("worker_processes", layout.worker_processes),
        # A reload starts new workers; the old ones finish their open requests (streams,
        # websockets) and are stopped after at most this long: the generation timeout.
        d("worker_shutdown_timeout", f"{drain_s}s"),
        d("error_log", f"{layout.log_dir}/error.log"),
        blk("events", body=[d("worker_connections", 4096)]),
    ]
    http: list[Directive] = []
    if layout.runtime_dir:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            http.append(d(f"{kind}_temp_path", f"{layout.runtime_dir}/{kind}"))
    http += [d("include", "conf.d/*.conf"), d("include", "sites-enabled/*")]
    top.append(blk("http", body=http))
    return build(top, HEADER)


def _http_conf(
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
        # The njs router reads the whole body from memory: keep the buffer as large as
        # the limit, or r.requestText would throw for bodies spilled to a temp file.
        d("client_max_body_size", f"{max_body_mb}m"),
        d("client_body_buffer_size", f"{max_body_mb}m"),
        # One buffer: $request_body is then the buffer itself, never a copy.
        d("client_body_in_single_buffer", "on"),
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
        *([d("log_format", "phx_metrics", METRICS_LOG_FORMAT)] if metrics else []),
        *keys_http(keys or []),
    ]
    return build(body, HEADER)


def _path_locations(routes: GatewayRoutes) -> list[Directive]:
    out: list[Directive] = []
    timeout = routes.config.generation_timeout_s
    for i, p in enumerate(routes.paths):
        strip_to = "/" if p.strip_prefix else None
        suffix = f"_p{i}"
        body = [d("proxy_pass", p.target.proxy_pass(strip_to)), *service_error_pages(suffix)]
        body += _proxy_headers(p.websocket, timeout if p.websocket else None)
        out.append(blk("location", "^~", p.path, body=body))
        out.append(blk("location", "=", p.path.rstrip("/"), body=[d("return", 301, p.path)]))
        out += service_error_locations(f"the service at {p.path}", suffix)
    return out


def _api_server(routes: GatewayRoutes, layout: Layout) -> Directive:
    cfg = routes.config
    body: list[Directive] = [d("listen", layout.listen(cfg.http_port), "default_server")]
    if cfg.tls:
        body += [
            d("listen", layout.listen(cfg.https_port), "ssl", "http2", "default_server"),
            d("ssl_certificate", "ssl/phoenix-api.crt"),
            d("ssl_certificate_key", "ssl/phoenix-api.key"),
        ]
    body.append(d("server_name", *(routes.api_names() or ["_"])))
    body.append(d("error_page", 413, "@too_large"))
    body += keys_server(cfg.api_keys)
    # Every request is counted in the metrics log ($phx_model names its model, if any).
    body.append(d("set", "$phx_model", ""))
    # Buffered: one write() per 32 KB of lines instead of one per request; a worker flushes
    # its buffer within 1 s (and on exit), whole lines only, so a count lags at most 1 s.
    body.append(
        d(
            "access_log",
            f"{layout.log_dir}/{METRICS_LOG}",
            "phx_metrics",
            f"buffer={METRICS_BUFFER}",
            f"flush={METRICS_FLUSH_S}s",
        )
    )
    if layout.access_log:
        body.append(d("access_log", f"{layout.log_dir}/access.log"))
    body.append(blk("location", "=", "/phoenix/health", body=[d("js_content", "router.health")]))
    for uri, handler in (
        ("/phoenix/status", "metrics.status"),
        ("/metrics", "metrics.prometheus"),
        ("/phoenix/", "metrics.page"),
    ):
        # Imported here only: every njs module of the http level is set up again for each
        # request, so the hot path's VM carries the router and its table, nothing more.
        body.append(
            blk(
                "location",
                "=",
                uri,
                body=[
                    d("access_log", "off"),
                    d("js_import", "metrics", "from", "metrics.js"),
                    d("js_content", handler),
                ],
            )
        )
    body.append(blk("location", "=", "/v1/models", body=[d("js_content", "router.models")]))
    body.append(blk("location", "^~", "/v1/models/", body=[d("js_content", "router.model")]))
    for uri in MODEL_ENDPOINTS:
        body.append(blk("location", "=", uri, body=[d("js_content", "router.route")]))
    for uri in FORM_ENDPOINTS:
        body.append(blk("location", "=", uri, body=[d("js_content", "router.routeForm")]))
    body.append(blk("location", "/v1/", body=[d("js_content", "router.routeAny")]))
    body += _model_router(routes)
    for m in routes.models:
        body.append(
            blk(
                "location",
                f"@{m.upstream}",
                body=_model_proxy(
                    f"http://{m.upstream}", cfg.generation_timeout_s, bool(cfg.api_keys)
                ),
            )
        )
    too_large = f"request body is larger than the gateway's limit of {cfg.max_body_mb} MB"
    body.append(blk("location", "@too_large", body=json_return(413, too_large, "body_too_large")))
    body.append(model_upstream_error())
    if cfg.api_keys:
        body.append(rate_limited_location())
    body += _path_locations(routes)
    body.append(blk("location", "/", body=json_return(404, "no route for this path", "not_found")))
    return blk("server", body=body)


def _model_proxy(target: str, timeout: int, keys: bool = False) -> list[Directive]:
    # Streams (SSE) pass through as they are produced. A model whose servers fail is
    # answered by the gateway in OpenAI's error format (answers.py), never nginx's HTML.
    # With API keys, the client's key is the gateway's business: it is not passed on.
    return [
        d("proxy_pass", target),
        *_proxy_headers(False, timeout),
        *([d("proxy_set_header", "Authorization", "")] if keys else []),
        *upstream_retry(),
        d("proxy_buffering", "off"),
        d("proxy_cache", "off"),
        d("error_page", 502, 503, 504, "=", UPSTREAM_ERROR),
    ]


def nginx_token(pcre: str) -> str:
    """A PCRE pattern as an nginx config token: nginx turns `\\\\` into `\\` (and keeps
    other escapes such as `\\s` as they are), so every backslash is doubled."""
    return pcre.replace("\\", "\\\\")


def fast_model_names(routes: GatewayRoutes) -> list[tuple[str, str]]:
    """(model, upstream) pairs the native fast path routes; other names go through njs."""
    return [(m.model, m.upstream) for m in routes.models if FAST_MODEL_NAME.fullmatch(m.model)]


def _model_map(routes: GatewayRoutes) -> Directive:
    """$phx_model -> upstream name. Regex keys, because nginx compares plain map keys
    case-insensitively and model names are case-sensitive."""
    keys = routes.config.api_keys
    body = [d("default", "")]
    for model, upstream in fast_model_names(routes):
        exact = re.sub(r"([^A-Za-z0-9])", r"\\\1", model) + "\\z"
        if keys:
            # With API keys: "$phx_key:$phx_model", only the pairs the key may use.
            names = allowed_keys(keys, model)
            if not names:
                continue
            exact = "(?:" + "|".join(re.escape(n) for n in names) + "):" + exact
        body.append(d(nginx_token("~^" + exact), upstream))
    source = f"{KEY_VAR}:$phx_model" if keys else "$phx_model"
    return blk("map", source, "$phx_upstream", body=body)


def _model_router(routes: GatewayRoutes) -> list[Directive]:
    """The model endpoints' njs handler (router.route) only hands a POST to @phx_route,
    once nginx has read the body into memory. There, without njs, the body's first
    string-valued "model" key picks the upstream (@phx_route_form: the multipart field
    `model`). Anything else (no such key, an unknown or unusual name, an empty body) goes
    to @phx_parse: njs parses the whole body and answers the precise 400/404, or routes
    the name itself."""

    def route(rule: str) -> list[Directive]:
        return [
            d("error_page", FAST_FALLBACK_STATUS, "=", "@phx_parse"),
            d("set", "$phx_model", ""),
            blk("if", "$request_body", "~", nginx_token(rule), body=[d("set", "$phx_model", "$1")]),
            blk("if", "$phx_upstream", "=", "", body=[d("return", FAST_FALLBACK_STATUS)]),
            *_model_proxy(
                "http://$phx_upstream",
                routes.config.generation_timeout_s,
                bool(routes.config.api_keys),
            ),
        ]

    return [
        blk("location", "@phx_route", body=route(FAST_MODEL_RE)),
        blk("location", "@phx_route_form", body=route(FORM_MODEL_RE)),
        blk("location", "@phx_parse", body=[d("js_content", "router.parse")]),
    ]


def _host_servers(host: HostRouteSpec, routes: GatewayRoutes, layout: Layout) -> list[Directive]:
    cfg = routes.config
    name = host.hostname.lower()
    proxy = blk(
        "location",
        "/",
        body=[
            d("proxy_pass", host.target.proxy_pass()),
            *_proxy_headers(host.websocket, cfg.generation_timeout_s if host.websocket else None),
        ],
    )
    errors = [*service_error_pages(), *service_error_locations(name)]
    out: list[Directive] = []
    http_body = [d("listen", layout.listen(cfg.http_port)), d("server_name", name)]
    if host.tls and host.redirect_http:
        port = "" if cfg.https_port == 443 else f":{cfg.https_port}"
        http_body.append(d("return", 301, f"https://$host{port}$request_uri"))
    else:
        http_body += [proxy, *errors]
    out.append(blk("server", body=http_body))
    if host.tls:
        out.append(
            blk(
                "server",
                body=[
                    d("listen", layout.listen(cfg.https_port), "ssl", "http2"),
                    d("server_name", name),
                    d("ssl_certificate", f"ssl/{name}.crt"),
                    d("ssl_certificate_key", f"ssl/{name}.key"),
                    proxy,
                    *errors,
                ],
            )
        )
    return out


def _upstreams(routes: GatewayRoutes) -> str:
    ups = [
        _upstream(m.upstream, [b.hostport for b in m.backends], passive=True) for m in routes.models
    ]
    targets: list[Target] = [p.target for p in routes.paths] + [h.target for h in routes.hosts]
    for t in targets:
        if t.upstream is not None:
            ups.append(_upstream(t.upstream, [b.hostport for b in t.backends], passive=False))
    ups.append(_model_map(routes))
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


def _finish(
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
    page = json.dumps(asset("status.html").decode())
    files["njs/status_page.js"] = f"// {HEADER}\nexport default {page};\n".encode()
    files["ca.crt"] = ca.cert_pem
    keys = njs_table(routes.config.api_keys) if routes else None
    # The key table lives in phoenix_models.js (written after the id): hash it in too.
    extra = (
        {**system_ssl, "keys": json.dumps(keys, sort_keys=True).encode()} if keys else system_ssl
    )
    config_id = _config_id(files, extra)
    files["njs/phoenix_models.js"] = _models_js(routes, mode, config_id, route_count, layout)
    return RenderedGateway(mode, files, health_port, config_id, system_ssl, route_count, layout)


def render_derived(
    routes: GatewayRoutes, ca: LocalCA, layout: Layout | None = None
) -> RenderedGateway:
    """The gateway derived from the inventory's routes."""
    layout = layout or Layout()
    files: dict[str, bytes] = {
        "nginx.conf": _main_conf(layout, routes.config.generation_timeout_s).encode(),
        "conf.d/phoenix-http.conf": _http_conf(
            layout, routes.config.max_body_mb, routes.config.api_keys, metrics=True
        ).encode(),
        "conf.d/phoenix-upstreams.conf": _upstreams(routes).encode(),
        "sites-available/phoenix-api": build([_api_server(routes, layout)], HEADER).encode(),
    }
    for host in routes.hosts:
        files[f"sites-available/phoenix-host-{host.hostname.lower()}"] = build(
            _host_servers(host, routes, layout), HEADER
        ).encode()
    for name, sans in routes.tls_sites().items():
        pair = ca.leaf(name, sans)
        files[f"ssl/{name}.crt"] = pair.cert_pem
        files[f"ssl/{name}.key"] = pair.key_pem
    return _finish(
        "derived", files, routes, ca, routes.config.http_port, {}, routes.route_count, layout
    )


def compat_sites(nginx_dir: Path) -> list[Path]:
    """The operator's hand-written sites (`<config dir>/nginx/sites-available/*`)."""
    folder = nginx_dir / "sites-available"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _compat_certs(sites: list[Path]) -> dict[str, list[str]]:
    """Absolute certificate path -> server names of the servers that use it."""
    wanted: dict[str, list[str]] = {}
    for site in sites:
        directives, _ = parse_file(site)
        for top in directives:
            for server in (x for x in top.walk() if x.name == "server"):
                cert = server.first_arg("ssl_certificate")
                if cert is None:
                    continue
                names = [
                    a
                    for sn in server.children("server_name")
                    for a in sn.args
                    if a not in ("_", "") and not a.startswith("~")
                ]
                wanted.setdefault(cert, [])
                wanted[cert] += [n for n in names if n not in wanted[cert]]
    return wanted


def render_compat(
    nginx_dir: Path,
    ca: LocalCA,
    layout: Layout | None = None,
    system_ssl_dir: str = "/etc/nginx/ssl",
) -> RenderedGateway:
    """The operator's hand-written sites, shipped as they are, with certificates (with
    SANs, from the local CA) at the paths they name under `system_ssl_dir`."""
    layout = layout or Layout()
    sites = compat_sites(nginx_dir)
    if not sites:
        raise GatewayError(f"{nginx_dir}/sites-available has no sites")
    files: dict[str, bytes] = {
        "nginx.conf": _main_conf(layout).encode(),
        "conf.d/phoenix-http.conf": _http_conf(layout, 16).encode(),
        "conf.d/phoenix-health.conf": build(
            [
                blk(
                    "server",
                    body=[
                        d("listen", f"127.0.0.1:{COMPAT_HEALTH_PORT}"),
                        blk(
                            "location",
                            "=",
                            "/phoenix/health",
                            body=[d("js_content", "router.health")],
                        ),
                    ],
                )
            ],
            HEADER,
        ).encode(),
    }
    for site in sites:
        files[f"sites-available/{site.name}"] = site.read_bytes()
    scripts = nginx_dir / "scripts"
    if scripts.is_dir():
        for script in sorted(scripts.iterdir()):
            if script.is_file():
                files[f"scripts/{script.name}"] = script.read_bytes()
    system_ssl: dict[str, bytes] = {}
    prefix = system_ssl_dir.rstrip("/") + "/"
    for cert_path, names in sorted(_compat_certs(sites).items()):
        if not cert_path.startswith(prefix) or not cert_path.endswith(".crt") or not names:
            continue
        base = cert_path[len(prefix) : -len(".crt")]
        if "/" in base:
            continue
        pair = ca.leaf(f"compat-{base}", names)
        system_ssl[f"{base}.crt"] = pair.cert_pem
        system_ssl[f"{base}.key"] = pair.key_pem
    return _finish("compat", files, None, ca, COMPAT_HEALTH_PORT, system_ssl, len(sites), layout)


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

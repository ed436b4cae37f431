"""Upstreams and the proxying of path and host routes (other services behind the gateway)."""

from __future__ import annotations

from phoenix.gateway.answers import (
    FAIL_TIMEOUT_S,
    MAX_FAILS,
    service_error_locations,
    service_error_pages,
)
from phoenix.gateway.keys import ROUTE_AUTH
from phoenix.gateway.layout import Layout
from phoenix.gateway.limits import UNAUTHORIZED, key_guard, unauthorized_location
from phoenix.gateway.nginx import Directive, blk, d
from phoenix.gateway.routes import GatewayRoutes, HostRouteSpec, Target, host_cert

UPSTREAM_KEEPALIVE = 256
# The backup server of a one-backend model upstream: a path that is never a socket, so a
# connect to it fails at once. nginx counts max_fails only in an upstream of more than
# one server (a lone server is never marked down, so each request would wait the full
# connect timeout of a dead backend); with this backup, a dead backend is skipped for
# FAIL_TIMEOUT_S and requests meanwhile get the gateway's 503 in well under a millisecond.
FAIL_FAST_BACKUP = "unix:/dev/null"


def proxy_headers(websocket: bool, timeout: int | None) -> list[Directive]:
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


def upstream_block(name: str, servers: list[str], passive: bool) -> Directive:
    """A model's upstream balances by least connections (LLM requests last from
    milliseconds to minutes, so counting requests in flight beats taking turns), counted
    across workers in a shared `zone`; one failure skips a backend for FAIL_TIMEOUT_S
    (a lone backend too: it gets FAIL_FAST_BACKUP)."""
    body: list[Directive] = []
    if passive:
        body += [d("zone", f"phx_{name}", "64k"), d("least_conn")]
    body += [
        d("server", s, f"max_fails={MAX_FAILS}", f"fail_timeout={FAIL_TIMEOUT_S}s")
        if passive
        else d("server", s)
        for s in servers
    ]
    if passive and len(servers) == 1:
        body.append(d("server", FAIL_FAST_BACKUP, "backup"))
    # Idle connections kept per worker: as many as the clients it serves at once, or most
    # requests of a busy gateway open a new connection (measured at 256 clients: 32 idle
    # gave 0.6x the req/s of plain proxying and 1.5x its CPU per request).
    body.append(d("keepalive", UPSTREAM_KEEPALIVE))
    # Drop idle connections before the server does (uvicorn, under vLLM, closes them after
    # 5 s): a POST written into a connection the server is closing is never resent.
    body.append(d("keepalive_timeout", "4s"))
    return blk("upstream", name, body=body)


def leads_to_a_model_server(routes: GatewayRoutes, target: Target) -> bool:
    models = {b.hostport for m in routes.models for b in m.backends}
    return bool(routes.config.api_keys) and bool(models & {b.hostport for b in target.backends})


def key_rules(routes: GatewayRoutes, target: Target) -> list[Directive]:
    """With API keys: a route never passes the gateway's key on, and a route that leads to
    a model server (a guest serving a model) asks for a key like the API does."""
    if not routes.config.api_keys:
        return []
    out = [d("proxy_set_header", "Authorization", ROUTE_AUTH)]
    if leads_to_a_model_server(routes, target):
        out += key_guard(True)
    return out


def path_locations(routes: GatewayRoutes) -> list[Directive]:
    out: list[Directive] = []
    timeout = routes.config.generation_timeout_s
    for i, p in enumerate(routes.paths):
        suffix = f"_p{i}"
        target = p.target.proxy_pass(p.path, p.strip_prefix)
        body = [d("proxy_pass", target), *service_error_pages(suffix)]
        body += proxy_headers(p.websocket, timeout if p.websocket else None)
        body += key_rules(routes, p.target)
        if leads_to_a_model_server(routes, p.target):
            body.append(d("error_page", 401, "=", UNAUTHORIZED))
        out.append(blk("location", "^~", p.path, body=body))
        out.append(blk("location", "=", p.path.rstrip("/"), body=[d("return", 301, p.path)]))
        out += service_error_locations(f"the service at {p.path}", suffix)
    return out


def host_servers(host: HostRouteSpec, routes: GatewayRoutes, layout: Layout) -> list[Directive]:
    cfg = routes.config
    name = host.hostname.lower()
    proxy = blk(
        "location",
        "/",
        body=[
            d("proxy_pass", host.target.proxy_pass()),
            *proxy_headers(host.websocket, cfg.generation_timeout_s if host.websocket else None),
            *key_rules(routes, host.target),
        ],
    )
    errors = [*service_error_pages(), *service_error_locations(name)]
    if leads_to_a_model_server(routes, host.target):
        errors += [d("error_page", 401, "=", UNAUTHORIZED), unauthorized_location()]
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
                    d("ssl_certificate", f"ssl/{host_cert(name)}.crt"),
                    d("ssl_certificate_key", f"ssl/{host_cert(name)}.key"),
                    proxy,
                    *errors,
                ],
            )
        )
    return out

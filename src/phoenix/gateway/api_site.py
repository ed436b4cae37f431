"""The API server: model routing (natively by the body's `model`, njs for the rest),
/v1/models, health, status and metrics endpoints, the metrics log line, and path routes."""

from __future__ import annotations

import re

from phoenix.gateway.answers import (
    UPSTREAM_ERROR,
    json_return,
    model_upstream_error,
    upstream_retry,
)
from phoenix.gateway.bodyrules import (
    FAST_MODEL_RE,
    FORM_MODEL_RE,
    FORM_TWICE_RE,
    JSON_OBJECT_RE,
)
from phoenix.gateway.keys import KEY_CLASS_VAR, KEY_VAR, classes_for, rate_limited_location
from phoenix.gateway.keys import server_directives as keys_server
from phoenix.gateway.layout import METRICS_LOG, Layout
from phoenix.gateway.limits import key_guard
from phoenix.gateway.limits import locations as limit_locations
from phoenix.gateway.limits import server_directives as limits_server
from phoenix.gateway.nginx import Directive, blk, d
from phoenix.gateway.routes import GatewayRoutes
from phoenix.gateway.services import path_locations, proxy_headers
from phoenix.gateway.status_access import guard as status_guard
from phoenix.gateway.status_access import http_directives as status_http

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
# Model names the fast path's map may name verbatim; any other name is routed by njs alone.
FAST_MODEL_NAME = re.compile(r"[A-Za-z0-9._:/@+=-]+")
FAST_FALLBACK_STATUS = 418  # internal only: hands the request from @phx_route to @phx_parse
TOO_COMPLEX = "@phx_too_complex"  # nginx's body match failed with an error (PCRE's limits)
USAGE_VAR = "$phx_usage"  # "<prompt> <completion>" tokens, set by usage.js; '-' without


def metrics_log_format(keys: bool) -> str:
    """One metrics log line: the request, its model, its attempts, the API key's name
    ('-' on a gateway without keys) and the model server's own token usage."""
    return "\\t".join(
        [
            "$msec",
            "$phx_model",
            "$status",
            "$upstream_addr",
            "$upstream_status",
            "$upstream_header_time",
            "$upstream_response_time",
            KEY_VAR if keys else "-",
            USAGE_VAR,
        ]
    )


METRICS_BUFFER, METRICS_FLUSH_S = "32k", 1
# Key classes in one map pattern of the fast path (each `c<N>|`: far below 4 KB a token).
CLASSES_PER_PATTERN = 200


def api_site(routes: GatewayRoutes, layout: Layout) -> list[Directive]:
    """The API site's file: its http-level variables, then its server."""
    cfg = routes.config
    return [
        *status_http(cfg.status_allow, routes.subnet, cfg.operator_keys),
        api_server(routes, layout),
    ]


def api_server(routes: GatewayRoutes, layout: Layout) -> Directive:
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
    body += limits_server(cfg.max_body_mb)
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
    access = status_guard(cfg.status_allow, routes.subnet, cfg.operator_keys)
    body.append(
        blk("location", "=", "/phoenix/health", body=[*access, d("js_content", "router.health")])
    )
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
                    *access,
                    d("access_log", "off"),
                    d("js_import", "metrics", "from", "metrics.js"),
                    d("js_content", handler),
                ],
            )
        )
    body.append(blk("location", "=", "/v1/models", body=[d("js_content", "router.models")]))
    body.append(blk("location", "^~", "/v1/models/", body=[d("js_content", "router.model")]))
    guard = key_guard(bool(cfg.api_keys))
    for uri in MODEL_ENDPOINTS:
        body.append(blk("location", "=", uri, body=[*guard, d("js_content", "router.route")]))
    for uri in FORM_ENDPOINTS:
        body.append(blk("location", "=", uri, body=[*guard, d("js_content", "router.routeForm")]))
    body.append(blk("location", "/v1/", body=[*guard, d("js_content", "router.routeAny")]))
    body += model_router(routes)
    for m in routes.models:
        body.append(
            blk(
                "location",
                f"@{m.upstream}",
                body=model_proxy(
                    f"http://{m.upstream}", cfg.generation_timeout_s, bool(cfg.api_keys)
                ),
            )
        )
    too_large = f"request body is larger than the gateway's limit of {cfg.max_body_mb} MB"
    body.append(blk("location", "@too_large", body=json_return(413, too_large, "body_too_large")))
    body.append(model_upstream_error())
    body += limit_locations()
    if cfg.api_keys:
        body.append(rate_limited_location())
    body += path_locations(routes)
    body.append(blk("location", "/", body=json_return(404, "no route for this path", "not_found")))
    return blk("server", body=body)


def model_proxy(target: str, timeout: int, keys: bool = False) -> list[Directive]:
    # Streams (SSE) pass through as they are produced. A model whose servers fail is
    # answered by the gateway in OpenAI's error format (answers.py), never nginx's HTML.
    # With API keys, the client's key is the gateway's business: it is not passed on.
    return [
        d("proxy_pass", target),
        *proxy_headers(False, timeout),
        *([d("proxy_set_header", "Authorization", "")] if keys else []),
        *upstream_retry(),
        d("proxy_buffering", "off"),
        d("proxy_cache", "off"),
        d("error_page", 502, 503, 504, "=", UPSTREAM_ERROR),
        # The answer's token usage for the metrics log, and a model server's error page
        # (HTML, text) answered as JSON (usage.js); imported here only, so other requests'
        # VMs do not carry it.
        d("js_import", "usage", "from", "usage.js"),
        d("js_header_filter", "usage.headers"),
        d("js_body_filter", "usage.scan"),
    ]


def nginx_token(pcre: str) -> str:
    """A PCRE pattern as an nginx config token: nginx turns `\\\\` into `\\` (and keeps
    other escapes such as `\\s` as they are), so every backslash is doubled."""
    return pcre.replace("\\", "\\\\")


def fast_model_names(routes: GatewayRoutes) -> list[tuple[str, str]]:
    """(model, upstream) pairs the native fast path routes; other names go through njs."""
    return [(m.model, m.upstream) for m in routes.models if FAST_MODEL_NAME.fullmatch(m.model)]


def model_map(routes: GatewayRoutes) -> Directive:
    """$phx_model -> upstream name. Regex keys, because nginx compares plain map keys
    case-insensitively and model names are case-sensitive."""
    keys = routes.config.api_keys
    body = [d("default", "")]
    for model, upstream in fast_model_names(routes):
        exact = re.sub(r"([^A-Za-z0-9])", r"\\\1", model) + "\\z"
        if not keys:
            body.append(d(nginx_token("~^" + exact), upstream))
            continue
        # With API keys: "$phx_key_class:$phx_model", only the classes of keys that may
        # use the model; a long list is split so no token nears nginx's 4 KB limit.
        classes = classes_for(keys, model)
        for start in range(0, len(classes), CLASSES_PER_PATTERN):
            group = "|".join(classes[start : start + CLASSES_PER_PATTERN])
            body.append(d(nginx_token(f"~^(?:{group}):{exact}"), upstream))
    source = f"{KEY_CLASS_VAR}:$phx_model" if keys else "$phx_model"
    return blk("map", source, "$phx_upstream", body=body)


def json_object_map() -> Directive:
    """$phx_json_object for njs: "1" for a valid JSON object, "0" for anything else, and
    the default when PCRE gives up (nesting deeper than ~400 levels, or too complex):
    matched with JIT by nginx, only when njs asks (the bodies it answers), so njs never
    walks a body too deep for it."""
    return blk(
        "map",
        "$request_body",
        "$phx_json_object",
        body=[d("default", "too_complex"), d(nginx_token("~" + JSON_OBJECT_RE), 1), d("~", 0)],
    )


def model_router(routes: GatewayRoutes) -> list[Directive]:
    """The model endpoints' njs handler (router.route) only hands a POST to @phx_route,
    once nginx has read the body into memory. There, without njs, the body's top-level
    `model` picks the upstream when the body names it exactly once and plainly
    (bodyrules.py; @phx_route_form: the multipart field `model`, named once). Anything
    else (no such key, an unknown or unusual name, a key named twice, invalid JSON, an
    empty body) goes to @phx_parse: njs reads the body with the same rules and answers the
    precise 400/404, or routes a name that only needed decoding itself."""

    def route(rule: str, twice: str | None = None) -> list[Directive]:
        guard = (
            [blk("if", "$request_body", "~", nginx_token(twice), body=[d("return", 418)])]
            if twice
            else []
        )
        return [
            d("error_page", FAST_FALLBACK_STATUS, "=", "@phx_parse"),
            d("error_page", 500, "=", TOO_COMPLEX),
            d("set", "$phx_model", ""),
            *guard,
            blk("if", "$request_body", "~", nginx_token(rule), body=[d("set", "$phx_model", "$1")]),
            blk("if", "$phx_upstream", "=", "", body=[d("return", FAST_FALLBACK_STATUS)]),
            *model_proxy(
                "http://$phx_upstream",
                routes.config.generation_timeout_s,
                bool(routes.config.api_keys),
            ),
        ]

    return [
        blk("location", "@phx_route", body=route(FAST_MODEL_RE)),
        blk("location", "@phx_route_form", body=route(FORM_MODEL_RE, FORM_TWICE_RE)),
        blk("location", "@phx_parse", body=[d("js_content", "router.parse")]),
        blk(
            "location",
            TOO_COMPLEX,
            body=json_return(
                400,
                "request body is nested too deeply or too complex for the gateway to read",
                "body_too_complex",
            ),
        ),
    ]

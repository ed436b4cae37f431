"""Errors in one voice: what the gateway itself answers when a request cannot be served.

Every 502/503/504 and 413 nginx would produce is answered by Phoenix instead of nginx's
default page: OpenAI-style JSON on the API (and for clients whose `Accept` asks for JSON),
a short HTML page naming the service for browsers on host and path routes.

Which of 502/503/504 is told from nginx's own record of the attempt, not guessed:
    503 + Retry-After  no backend ever received the request (every connect failed or timed
                       out, or all backends are marked down): safe to send again
    504                a backend took the request and did not answer in time
    502                a backend took the request and then failed (reset, bad header)
A backend's own error responses (a model server's 503 when it is overloaded, say) pass
through untouched: only nginx's own failures are answered here.
"""

from __future__ import annotations

import json

from phoenix.gateway.nginx import Directive, blk, d

# Passive health: one failure marks a backend down for FAIL_TIMEOUT_S (then one request
# probes it again); clients told to come back when it will be probed.
MAX_FAILS = 1
FAIL_TIMEOUT_S = 10
RETRY_AFTER_S = FAIL_TIMEOUT_S
# Guests share a LAN with the gateway: a connect that takes longer means the guest is gone.
CONNECT_TIMEOUT_S = 1

UPSTREAM_ERROR = "@phx_upstream_error"
FAILURE_VAR = "$phx_upstream_failure"
FORMAT_VAR = "$phx_error_format"


def failure_maps() -> list[Directive]:
    """http-level maps: the kind of upstream failure, and the format a client wants.

    `$upstream_connect_time` ends in "-" when the last attempt never connected (or no
    backend was live): the request never reached a backend. Otherwise the last attempt's
    status says whether it timed out (504) or failed (502)."""
    return [
        blk(
            "map",
            "$upstream_status|$upstream_connect_time",
            FAILURE_VAR,
            body=[
                d("default", "502"),
                d("~-$", "503"),
                d("~504\\|", "504"),
            ],
        ),
        blk(
            "map",
            "$http_accept",
            FORMAT_VAR,
            body=[
                d("default", "html"),
                d("~*application/json", "json"),
                d("", "json"),  # no Accept: a program, not a browser
            ],
        ),
    ]


def openai_error(message: str, type_: str, code: str, param: str | None = None) -> str:
    """An OpenAI-format error body (one line)."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body, separators=(",", ":")) + "\n"


def json_return(
    status: int, message: str, code: str, type_: str = "invalid_request_error"
) -> list[Directive]:
    return [
        d("default_type", "application/json"),
        d("return", status, openai_error(message, type_, code)),
    ]


def _html(status: int, title: str, service: str, detail: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{status} {title}</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;"
        "color:#222}h1{font-size:1.4em}p{color:#555}</style></head><body>"
        f"<h1>{status} {title}</h1><p>{service}: {detail}</p>"
        "<p><small>Phoenix gateway</small></p></body></html>\n"
    )


_TEXT = {
    503: (
        "Service Unavailable",
        "is not answering right now (no server took the request); try again in a few seconds",
        "upstream_unavailable",
    ),
    504: ("Gateway Timeout", "took the request but did not answer in time", "upstream_timeout"),
    502: ("Bad Gateway", "took the request but failed before answering", "upstream_error"),
}


def _status_ifs(render: dict[int, list[Directive]]) -> list[Directive]:
    """`if ($phx_upstream_failure = N) {...}` for 503 and 504; 502 is the fall-through."""
    out: list[Directive] = []
    for status in (503, 504):
        out.append(blk("if", FAILURE_VAR, "=", str(status), body=render[status]))
    out += render[502]
    return out


def _retry_after(status: int) -> list[Directive]:
    return [d("add_header", "Retry-After", RETRY_AFTER_S, "always")] if status == 503 else []


def model_upstream_error() -> Directive:
    """The API's answer when a model's servers fail; `$phx_model` names the model (set by
    the native route, or by njs before it hands a request over)."""
    render: dict[int, list[Directive]] = {}
    for status, (_, detail, code) in _TEXT.items():
        text = openai_error(
            f"the server for model '$phx_model' {detail}",
            "server_error",
            code,
            "model",
        )
        render[status] = [*_retry_after(status), d("return", status, text)]
    return blk(
        "location",
        UPSTREAM_ERROR,
        body=[d("default_type", "application/json"), *_status_ifs(render)],
    )


def service_error_locations(service: str, suffix: str = "") -> list[Directive]:
    """Named locations for a host or path route naming `service`: @phx_err_json and
    @phx_err_html (picked by `$phx_error_format`), plus the 413 pair; `suffix` keeps the
    names of several routes in one server apart."""
    json_render: dict[int, list[Directive]] = {}
    html_render: dict[int, list[Directive]] = {}
    for status, (title, detail, code) in _TEXT.items():
        json_render[status] = [
            *_retry_after(status),
            d("return", status, openai_error(f"{service} {detail}", "server_error", code)),
        ]
        html_render[status] = [
            *_retry_after(status),
            d("return", status, _html(status, title, service, detail)),
        ]
    too_large = "the request body is larger than the gateway allows"
    return [
        blk(
            "location",
            f"@phx_err_json{suffix}",
            body=[d("default_type", "application/json"), *_status_ifs(json_render)],
        ),
        blk(
            "location",
            f"@phx_err_html{suffix}",
            body=[d("default_type", "text/html"), *_status_ifs(html_render)],
        ),
        blk(
            "location", f"@phx_413_json{suffix}", body=json_return(413, too_large, "body_too_large")
        ),
        blk(
            "location",
            f"@phx_413_html{suffix}",
            body=[
                d("default_type", "text/html"),
                d("return", 413, _html(413, "Payload Too Large", service, too_large)),
            ],
        ),
    ]


def service_error_pages(suffix: str = "") -> list[Directive]:
    """error_page directives that send nginx's own failures to the locations above (the
    variable picks the JSON or the HTML one)."""
    return [
        d("error_page", 502, 503, 504, "=", f"@phx_err_${{{FORMAT_VAR[1:]}}}{suffix}"),
        d("error_page", 413, "=", f"@phx_413_${{{FORMAT_VAR[1:]}}}{suffix}"),
    ]


def upstream_retry() -> list[Directive]:
    """Passive failover for a model's upstream.

    `proxy_next_upstream error timeout` without `non_idempotent`: nginx passes a POST to
    the next backend only while the request has not been sent (connection refused, connect
    timeout, no live backend); once a backend may have started work it never resends it."""
    return [
        d("proxy_connect_timeout", f"{CONNECT_TIMEOUT_S}s"),
        d("proxy_next_upstream", "error", "timeout"),
    ]

"""What abuse can cost the gateway, bounded: open files, connections and request-body
memory, and nginx's own errors answered in the API's voice.

- Open files: every proxied request holds two descriptors (client and model server) and
  the upstream keepalive caches more, so each worker may open FILES_PER_WORKER, well over
  twice `worker_connections` (nginx's default keeps the 1,024 it inherits, and ~2,100
  idle clients then ran it out of descriptors: probes timed out, completions got HTML 500).
- One client address may have PER_ADDRESS requests in flight (limit_conn, shared across
  workers); more are answered 503 JSON with Retry-After.
- Request bodies are read into memory whole (the native router matches them there), so
  the bodies of BIG_BODY_BYTES or more (or chunked, whose size nginx learns only as it
  reads) the whole gateway holds at once are capped so that together they take at most
  BODY_MEMORY_MB; more are refused with the same 503 before their body is read.
- Idle connections that never send a request are closed after HEADER_TIMEOUT_S.
- With API keys, a model request without a valid key is answered 401 before its body is
  read (njs still checks the key against the model once the body is in).
"""

from __future__ import annotations

from phoenix.gateway.answers import json_return, openai_error
from phoenix.gateway.keys import KEY_VAR
from phoenix.gateway.nginx import Directive, blk, d

WORKER_CONNECTIONS = 4096
FILES_PER_WORKER = 4 * WORKER_CONNECTIONS
PER_ADDRESS = 512
BODY_MEMORY_MB = 192
BIG_BODY_DIGITS = 7  # a Content-Length of 7 digits or more: 1,000,000 bytes and over
HEADER_TIMEOUT_S = 10
RETRY_AFTER_S = 1
OVERLOADED = "@phx_overloaded"
FORBIDDEN = "@phx_forbidden"
UNAUTHORIZED = "@phx_unauthorized"
# nginx's own errors on the API server, answered as JSON (status, location, message, code).
# URI locations, not named ones: nginx cannot redirect a request whose URI it could not
# read (a 400 or 414) to a named location, and answers 500 instead.
NGINX_ERRORS = (
    (
        400,
        "/phoenix/error/400",
        "the request could not be read (malformed, or headers too large)",
        "bad_request",
    ),
    (414, "/phoenix/error/414", "the request URI is too long", "uri_too_long"),
    (500, "/phoenix/error/500", "the gateway failed to handle the request", "gateway_error"),
)


# A chunked body is read with its framing ("1f40\r\n...\r\n": nginx compacts only chunks of
# 128 bytes or less), so the one in-memory buffer is larger than the limit by that much: a
# body of 129-byte chunks carries 6 bytes of framing each (4.7%). Without the margin, a
# chunked body under the limit spilled to a file and was refused 413, while the same body
# with a Content-Length passed. nginx still checks the decoded size against the limit.
FRAMING_MARGIN = 16  # 1/16 more


def body_buffer_kib(max_body_mb: int) -> int:
    """client_body_buffer_size: the limit plus room for chunk framing."""
    return max_body_mb * 1024 * (FRAMING_MARGIN + 1) // FRAMING_MARGIN


def big_bodies(max_body_mb: int) -> int:
    """How many large bodies the gateway holds at once (each up to a whole buffer)."""
    return max(2, BODY_MEMORY_MB * 1024 // body_buffer_kib(max_body_mb))


def http_directives() -> list[Directive]:
    return [
        d("client_header_timeout", f"{HEADER_TIMEOUT_S}s"),
        d("limit_conn_zone", "$binary_remote_addr", "zone=phx_per_address:10m"),
        blk(
            "map",
            "$content_length:$http_transfer_encoding",
            "$phx_big_body",
            body=[
                d("default", ""),
                d(f"~^[0-9]{{{BIG_BODY_DIGITS},}}:", 1),
                d("~:.", 1),  # chunked: its size is known only once read
            ],
        ),
        d("limit_conn_zone", "$phx_big_body", "zone=phx_big_bodies:1m"),
        blk(
            "map",
            "$http_authorization",
            "$phx_no_key",
            body=[
                d("default", "Incorrect API key provided."),
                d(
                    "",
                    "You didn't provide an API key. Use the header 'Authorization: Bearer <key>'.",
                ),
            ],
        ),
    ]


def server_directives(max_body_mb: int) -> list[Directive]:
    out = [
        d("limit_conn", "phx_per_address", PER_ADDRESS),
        d("limit_conn", "phx_big_bodies", big_bodies(max_body_mb)),
        d("limit_conn_status", 503),
        d("limit_conn_log_level", "warn"),
        d("error_page", 503, "=", OVERLOADED),
        d("error_page", 401, "=", UNAUTHORIZED),
        d("error_page", 403, "=", FORBIDDEN),
    ]
    out += [d("error_page", status, "=", name) for status, name, _, _ in NGINX_ERRORS]
    return out


def key_guard(keys: bool) -> list[Directive]:
    """In a model endpoint's location: no valid key, no body read."""
    if not keys:
        return []
    return [blk("if", KEY_VAR, "=", "", body=[d("return", 401)])]


def unauthorized_location() -> Directive:
    return blk("location", UNAUTHORIZED, body=json_return(401, "$phx_no_key", "invalid_api_key"))


def locations() -> list[Directive]:
    overloaded = openai_error(
        "the gateway is at its limit of requests for your address or of large bodies "
        f"in flight; retry in {RETRY_AFTER_S} s",
        "server_error",
        "overloaded",
    )
    out = [
        blk(
            "location",
            OVERLOADED,
            body=[
                d("default_type", "application/json"),
                d("add_header", "Retry-After", RETRY_AFTER_S, "always"),
                d("return", 503, overloaded),
            ],
        ),
        unauthorized_location(),
        blk(
            "location",
            FORBIDDEN,
            body=json_return(
                403,
                "this address may not read the gateway's status: read it from a network in "
                "gateway.status_allow, or send an operator key",
                "forbidden",
            ),
        ),
    ]
    for status, name, message, code in NGINX_ERRORS:
        type_ = "server_error" if status >= 500 else "invalid_request_error"
        body = [d("internal"), *json_return(status, message, code, type_)]
        out.append(blk("location", "=", name, body=body))
    return out

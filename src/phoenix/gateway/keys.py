"""API keys and per-key limits, without a database.

Keys live in the inventory as hashes (`gateway.api_keys`: name, sha256, models, rpm); the
key itself is printed once by `phoenix gateway key add` and never stored. In the gateway:

- `js_set $phx_key router.keyName`: njs hashes the request's bearer token (SHA-256) and
  looks it up in the rendered table; the variable is the key's name, or empty.
- The native fast path routes only `"$phx_key:$phx_model"` pairs the key may use; every
  other request falls to njs, which answers 401 `invalid_api_key` or 404
  `model_not_found` (as OpenAI does for a model a key may not see).
- Per-key requests-per-minute: one `limit_req_zone` per limited key, keyed by a map that
  is non-empty only for that key. limit_req zones are shared memory, so the limit holds
  across nginx workers. The bucket holds `rpm` requests and refills at `rpm` a minute;
  over it: 429 `rate_limit_exceeded` with `Retry-After` (the seconds one request takes to
  refill).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from phoenix.errors import GatewayError
from phoenix.gateway.answers import openai_error
from phoenix.gateway.nginx import Directive, blk, d
from phoenix.inventory.models import ApiKey

KEY_VAR = "$phx_key"
KEY_PREFIX = "phx-"
RATE_LIMITED = "@phx_rate_limited"


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, with a recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def retry_after(rpm: int) -> int:
    """Seconds until the bucket holds one request again."""
    return max(1, math.ceil(60 / rpm))


def _zone(key: ApiKey) -> str:
    return f"phx_key_{key.name}"


def http_directives(keys: list[ApiKey]) -> list[Directive]:
    """http-level: the key variable, one zone per limited key, the Retry-After map."""
    if not keys:
        return []
    out: list[Directive] = [d("js_set", KEY_VAR, "router.keyName")]
    retry = [d("default", 60)]
    for i, key in enumerate(k for k in keys if k.rpm is not None):
        assert key.rpm is not None
        var = f"$phx_rl_{i}"
        out.append(blk("map", KEY_VAR, var, body=[d("default", ""), d(key.name, 1)]))
        out.append(d("limit_req_zone", var, f"zone={_zone(key)}:1m", f"rate={key.rpm}r/m"))
        retry.append(d(key.name, retry_after(key.rpm)))
    out.append(blk("map", KEY_VAR, "$phx_retry_after", body=retry))
    return out


def server_directives(keys: list[ApiKey]) -> list[Directive]:
    """API-server level: the limits (checked once per request, before any handler) and the
    429 answer."""
    if not keys:
        return []
    out: list[Directive] = []
    for key in keys:
        if key.rpm is not None:
            # burst = rpm - 1 with nodelay: exactly `rpm` requests pass at once.
            out.append(d("limit_req", f"zone={_zone(key)}", f"burst={key.rpm - 1}", "nodelay"))
    if out:
        out += [
            d("limit_req_status", 429),
            d("limit_req_log_level", "warn"),
            d("error_page", 429, "=", RATE_LIMITED),
        ]
    return out


def rate_limited_location() -> Directive:
    text = openai_error(
        f"Rate limit reached for key '{KEY_VAR}': retry after $phx_retry_after s",
        "requests",
        "rate_limit_exceeded",
    )
    return blk(
        "location",
        RATE_LIMITED,
        body=[
            d("default_type", "application/json"),
            d("add_header", "Retry-After", "$phx_retry_after", "always"),
            d("return", 429, text),
        ],
    )


def njs_table(keys: list[ApiKey]) -> dict[str, dict[str, object]] | None:
    """sha256 -> {name, models (None: all)} for the njs router; None when the API is open."""
    if not keys:
        return None
    return {
        k.sha256: {"name": k.name, "models": None if "*" in k.models else sorted(k.models)}
        for k in keys
    }


def allowed_keys(keys: list[ApiKey], model: str) -> list[str]:
    return [k.name for k in keys if "*" in k.models or model in k.models]


def edit_keys(text: str, ctid: int, change: Callable[[list[dict[str, Any]]], None]) -> str:
    """The inventory file `text` with guest `ctid`'s `gateway.api_keys` changed in place by
    `change` (other content kept, in its order); raises GatewayError on an unusable file."""
    try:
        data = json.loads(text)
        guest = data["lxc_configs"][str(ctid)]
    except (ValueError, KeyError, TypeError) as exc:
        raise GatewayError(f"cannot find guest {ctid} in the inventory file: {exc}") from exc
    gateway = guest.setdefault("gateway", {})
    if not isinstance(gateway, dict):
        raise GatewayError(f"guest {ctid}: 'gateway' is not an object")
    keys = gateway.setdefault("api_keys", [])
    if not isinstance(keys, list):
        raise GatewayError(f"guest {ctid}: 'gateway.api_keys' is not a list")
    change(keys)
    indent = 4 if '\n    "' in text else 2
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def add_entry(
    keys: list[dict[str, Any]], name: str, models: list[str], rpm: int | None
) -> tuple[str, dict[str, Any]]:
    """Append a new key named `name` to `keys`; return (the key, its entry)."""
    if any(isinstance(k, dict) and k.get("name") == name for k in keys):
        raise GatewayError(f"a key named {name!r} exists already (remove it first)")
    key = new_key()
    entry: dict[str, Any] = {"name": name, "sha256": key_hash(key), "models": models}
    if rpm is not None:
        entry["rpm"] = rpm
    try:
        ApiKey.model_validate(entry)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GatewayError(f"invalid key: {problems}") from None
    keys.append(entry)
    return key, entry


def remove_entry(keys: list[dict[str, Any]], name: str) -> None:
    kept = [k for k in keys if not (isinstance(k, dict) and k.get("name") == name)]
    if len(kept) == len(keys):
        raise GatewayError(f"no key named {name!r}")
    keys[:] = kept

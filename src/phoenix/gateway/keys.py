"""API keys and per-key limits, without a database.

Keys live in the inventory as hashes (`gateway.api_keys`: name, sha256, models, rpm); the
key itself is printed once by `phoenix gateway key add` and never stored. In the gateway:

- `js_set $phx_key router.keyName`: njs hashes the request's bearer token (SHA-256) and
  looks it up in the rendered table; the variable is the key's name, or empty.
- The native fast path routes only `"$phx_key_class:$phx_model"` pairs the key may use; every
  other request falls to njs, which answers 401 `invalid_api_key` or 404
  `model_not_found` (as OpenAI does for a model a key may not see).
- Per-key requests-per-minute: one `limit_req_zone` per distinct `rpm`, keyed by a map
  that holds the key's name only for the keys with that rate (each key its own bucket).
  limit_req zones are shared memory, so the limit holds across nginx workers. The bucket
  holds `rpm` requests and refills at `rpm` a minute; over it: 429 `rate_limit_exceeded`
  with `Retry-After` (the seconds one request takes to refill).

Key names are data to nginx, never syntax, at any length and count: they appear only as
exact keys of hash maps (a name such as `default` or `include` escaped with a backslash,
the bucket size set for the longest name a key may have), never in a regex, a zone
name or one long token; the fast path's map sees a key's class (the set of models it may
use), not its name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from phoenix.errors import GatewayError
from phoenix.gateway.answers import openai_error
from phoenix.gateway.nginx import Directive, blk, d
from phoenix.inventory.models import ApiKey, OperatorKey

KEY_VAR = "$phx_key"
KEY_PREFIX = "phx-"
RATE_LIMITED = "@phx_rate_limited"
ROUTE_AUTH = "$phx_route_auth"


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, with a recognisable prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def retry_after(rpm: int) -> int:
    """Seconds until the bucket holds one request again."""
    return max(1, math.ceil(60 / rpm))


KEY_CLASS_VAR = "$phx_key_class"
# nginx map parameters a source value must be escaped from (with a leading backslash).
MAP_WORDS = frozenset({"default", "hostnames", "include", "volatile"})
# A map's hash bucket holds names and pointers: room for the longest key name (48); the
# http block sets it (before its first map) whenever there are keys.
MAP_BUCKET = 128


def map_key(name: str) -> str:
    """A key name as an exact source value of an nginx map, never one of its parameters."""
    return "\\" + name if name in MAP_WORDS else name


def key_classes(keys: list[ApiKey]) -> dict[str, str]:
    """Key name -> its class (`c<N>`), one class per distinct set of allowed models."""
    classes: dict[frozenset[str], str] = {}
    out: dict[str, str] = {}
    for key in keys:
        models = frozenset(["*"] if "*" in key.models else key.models)
        out[key.name] = classes.setdefault(models, f"c{len(classes)}")
    return out


def classes_for(keys: list[ApiKey], model: str) -> list[str]:
    """The classes of the keys that may use `model`, in order, each once."""
    names = set(allowed_keys(keys, model))
    return list(dict.fromkeys(c for name, c in key_classes(keys).items() if name in names))


def _rates(keys: list[ApiKey]) -> dict[int, list[str]]:
    rates: dict[int, list[str]] = {}
    for key in keys:
        if key.rpm is not None:
            rates.setdefault(key.rpm, []).append(key.name)
    return rates


def _zone(rpm: int) -> str:
    return f"phx_rpm_{rpm}"


def http_directives(keys: list[ApiKey]) -> list[Directive]:
    """http-level: the key variable and its class, one zone per rate, the Retry-After map."""
    if not keys:
        return []
    out: list[Directive] = [
        d("js_set", KEY_VAR, "router.keyName"),
        blk(
            "map",
            KEY_VAR,
            KEY_CLASS_VAR,
            body=[d("default", ""), *(d(map_key(n), c) for n, c in key_classes(keys).items())],
        ),
    ]
    retry = [d("default", 60)]
    for rpm, names in sorted(_rates(keys).items()):
        var = f"$phx_rl_{rpm}"
        out.append(
            blk(
                "map",
                KEY_VAR,
                var,
                body=[d("default", ""), *(d(map_key(n), KEY_VAR) for n in names)],
            )
        )
        # About 128 bytes of state per key: 64 KB (nginx's smallest useful zone) and up.
        size = 64 + len(names) // 4
        out.append(d("limit_req_zone", var, f"zone={_zone(rpm)}:{size}k", f"rate={rpm}r/m"))
        retry += [d(map_key(n), retry_after(rpm)) for n in names]
    out.append(blk("map", KEY_VAR, "$phx_retry_after", body=retry))
    # What a path or host route passes on as Authorization: the client's own header,
    # unless it is one of the gateway's keys (those are the gateway's business).
    out.append(
        blk("map", KEY_VAR, ROUTE_AUTH, body=[d("default", ""), d("", "$http_authorization")])
    )
    return out


def server_directives(keys: list[ApiKey]) -> list[Directive]:
    """API-server level: the limits (checked once per request, before any handler) and the
    429 answer."""
    if not keys:
        return []
    out: list[Directive] = []
    for rpm in sorted(_rates(keys)):
        # burst = rpm - 1 with nodelay: exactly `rpm` requests pass at once (nginx refuses
        # `burst=0`: a key of one request a minute has no burst at all).
        burst = [f"burst={rpm - 1}"] if rpm > 1 else []
        out.append(d("limit_req", f"zone={_zone(rpm)}", *burst, "nodelay"))
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


KEY_LISTS = ("api_keys", "operator_keys")


def edit_keys(text: str, ctid: int, change: Callable[[dict[str, Any]], None]) -> str:
    """The inventory file `text` with guest `ctid`'s `gateway` block (its key lists)
    changed in place by `change` (other content kept, in its order); raises GatewayError on
    an unusable file."""
    try:
        data = json.loads(text)
        guest = data["lxc_configs"][str(ctid)]
    except (ValueError, KeyError, TypeError) as exc:
        raise GatewayError(f"cannot find guest {ctid} in the inventory file: {exc}") from exc
    gateway = guest.setdefault("gateway", {})
    if not isinstance(gateway, dict):
        raise GatewayError(f"guest {ctid}: 'gateway' is not an object")
    for field in KEY_LISTS:
        if not isinstance(gateway.get(field, []), list):
            raise GatewayError(f"guest {ctid}: 'gateway.{field}' is not a list")
    change(gateway)
    # the file's own indent (its first indented line's), so an edit changes only the keys
    first = re.search(r"\n( +)\S", text)
    indent = len(first.group(1)) if first else 2
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def _names(gateway: dict[str, Any]) -> set[object]:
    return {k.get("name") for f in KEY_LISTS for k in gateway.get(f, []) if isinstance(k, dict)}


def add_entry(
    gateway: dict[str, Any],
    name: str,
    models: list[str],
    rpm: int | None,
    operator: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Add a new key named `name` to the gateway block (an operator key to
    `operator_keys`, else a client key to `api_keys`); return (the key, its entry)."""
    if name in _names(gateway):
        raise GatewayError(f"a key named {name!r} exists already (remove it first)")
    key = new_key()
    entry: dict[str, Any] = {"name": name, "sha256": key_hash(key)}
    if not operator:
        entry["models"] = models
        if rpm is not None:
            entry["rpm"] = rpm
    try:
        (OperatorKey if operator else ApiKey).model_validate(entry)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GatewayError(f"invalid key: {problems}") from None
    gateway.setdefault("operator_keys" if operator else "api_keys", []).append(entry)
    return key, entry


def remove_entry(gateway: dict[str, Any], name: str) -> None:
    """Remove the client or operator key named `name`."""
    for field in KEY_LISTS:
        keys = gateway.get(field, [])
        kept = [k for k in keys if not (isinstance(k, dict) and k.get("name") == name)]
        if len(kept) != len(keys):
            gateway[field] = kept
            return
    raise GatewayError(f"no key named {name!r}")

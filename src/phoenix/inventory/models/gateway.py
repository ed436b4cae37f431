"""The `gateway` block that makes a guest the Phoenix API gateway: routes and client keys."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from phoenix.inventory.models.fields import Ctid, HostName, Model
from phoenix.inventory.models.urls import RouteUrl


class RouteTarget(Model):
    """Where a gateway route sends traffic: a guest by CTID (and port), or a URL."""

    ctid: Ctid | None = None
    port: StrictInt | None = Field(default=None, ge=1, le=65535)
    url: RouteUrl | None = None
    scheme: Literal["http", "https"] = "http"

    @model_validator(mode="after")
    def _one_target(self) -> RouteTarget:
        if (self.ctid is None) == (self.url is None):
            raise ValueError("a route needs exactly one of 'ctid' (with 'port') or 'url'")
        if self.ctid is not None and self.port is None:
            raise ValueError("a route to a guest ('ctid') needs its 'port'")
        return self


# The gateway's own locations on the API server. A path route may not take one (nginx
# refuses a duplicate location, or the route would hide the gateway's endpoint): the exact
# ones, and everything under the API's prefixes.
GATEWAY_EXACT_PATHS = frozenset(
    {"/metrics", "/phoenix/health", "/phoenix/status", "/v1/models"}
    | {"/rerank", "/score", "/tokenize", "/detokenize", "/classify", "/pooling"}
)
GATEWAY_PREFIXES = ("/v1/", "/v2/", "/phoenix/")


def reserved_path_reason(location: str) -> str | None:
    """Why a path route's location (ending in '/') is the gateway's own, or None."""
    if location == "/":
        return "is the whole API server: give the route a prefix of its own"
    if location.rstrip("/") in GATEWAY_EXACT_PATHS:
        return f"is the gateway's own endpoint {location.rstrip('/')}"
    for prefix in GATEWAY_PREFIXES:
        if location.startswith(prefix) or location == prefix.rstrip("/") + "/":
            return f"is under {prefix}, which the gateway serves itself"
    return None


def _plain_path(value: str) -> str:
    if any(seg in ("", ".", "..") for seg in value.strip("/").split("/")) and value != "/":
        raise ValueError(
            f"{value!r}: write the path plainly (no '//', '.' or '..' segments); nginx "
            "normalises request paths, so such a location would never match"
        )
    return value


class PathRoute(RouteTarget):
    """`/prefix/...` on the gateway's main server, proxied to a guest or URL."""

    path: Annotated[StrictStr, Field(pattern=r"^/[A-Za-z0-9._~/-]*$"), AfterValidator(_plain_path)]
    strip_prefix: StrictBool = True
    websocket: StrictBool = False
    name: StrictStr | None = Field(default=None, pattern=r"^[a-z0-9_]+$")


class HostRoute(RouteTarget):
    """A whole virtual host (`server_name`), optionally TLS with an HTTP->HTTPS redirect."""

    hostname: HostName
    tls: StrictBool = True
    redirect_http: StrictBool = True
    websocket: StrictBool = False


class ApiKey(Model):
    """A client key of the gateway. Only a hash of the key is kept: `phoenix gateway key
    add NAME` creates a key, prints it once and adds this entry."""

    name: StrictStr = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$", description="Key name")
    sha256: StrictStr = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex (never the key)"
    )
    models: list[StrictStr] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Models this key may use ('*': all)",
    )
    rpm: StrictInt | None = Field(
        default=None, ge=1, le=1_000_000, description="Requests per minute (absent: no limit)"
    )


class OperatorKey(Model):
    """A key that reads the gateway's status endpoints (/metrics, /phoenix/status,
    /phoenix/, /phoenix/health) from any address, and nothing else: `phoenix gateway key
    add NAME --operator`. It opens no model endpoint and does not close the API."""

    name: StrictStr = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$", description="Key name")
    sha256: StrictStr = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex (never the key)"
    )


class GatewayConfig(Model):
    """Additive block that makes a guest the Phoenix API gateway (container 101's role).

    Model routes are derived from the inventory (every non-template guest with a vLLM
    config); this block adds the other services and the gateway's own settings.
    """

    hostnames: list[HostName] = Field(
        default_factory=list,
        description="Names of the API server; a TLS certificate is issued for them.",
    )
    tls: StrictBool = Field(default=True, description="Serve the API on HTTPS too.")
    http_port: StrictInt = Field(default=80, ge=1, le=65535)
    https_port: StrictInt = Field(default=443, ge=1, le=65535)
    max_body_mb: StrictInt = Field(default=16, ge=1, le=1024)
    generation_timeout_s: StrictInt = Field(default=600, ge=1, le=86400)
    path_routes: list[PathRoute] = Field(default_factory=list)
    host_routes: list[HostRoute] = Field(default_factory=list)
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="Client keys of the API (none: the API is open to whoever reaches it)",
    )
    status_allow: list[StrictStr] | None = Field(
        default=None,
        description=(
            "Networks (CIDR) that may read /metrics, /phoenix/status, /phoenix/ and "
            "/phoenix/health, besides the gateway itself; default: the gateway's own "
            "subnet (the host's bridge). ['0.0.0.0/0', '::/0'] opens them to everyone."
        ),
    )
    operator_keys: list[OperatorKey] = Field(
        default_factory=list,
        description=(
            "Keys that read the status endpoints from any address (Authorization: Bearer)"
        ),
    )

    @field_validator("status_allow")
    @classmethod
    def _networks(cls, nets: list[str] | None) -> list[str] | None:
        for net in nets or []:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(
                    f"status_allow: {net!r} is not a network like 10.0.0.0/24"
                ) from None
        return nets

    @field_validator("api_keys")
    @classmethod
    def _unique_keys(cls, keys: list[ApiKey]) -> list[ApiKey]:
        for attr in ("name", "sha256"):
            values = [getattr(k, attr) for k in keys]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"api_keys: {attr} repeated: {', '.join(dup)}")
        return keys

    @model_validator(mode="after")
    def _unique_operator_keys(self) -> GatewayConfig:
        """One name, one key: `key remove NAME` must know which it removes, and a key is
        either a client's or an operator's."""
        for attr in ("name", "sha256"):
            values = [getattr(k, attr) for k in self.operator_keys]
            clients = {getattr(k, attr) for k in self.api_keys}
            dup = sorted({v for v in values if values.count(v) > 1 or v in clients})
            if dup:
                raise ValueError(f"operator_keys: {attr} repeated: {', '.join(dup)}")
        return self

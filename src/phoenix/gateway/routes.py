"""What the gateway routes, derived from the inventory (never from hand-kept IPs).

Models: every guest that is not a clone source (template) and says what it serves
(`vllm_engine_config.ServerConfig` or the flat `vllm_*` keys, or an Ollama guest's
`ollama_models`) is a backend of that model;
several guests serving one model form one load-balanced upstream. Other services come from
the gateway guest's additive `gateway` block (path and host routes to a CTID or a URL).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from phoenix.errors import GatewayError
from phoenix.inventory import Inventory
from phoenix.inventory.models import GATEWAY_COMPAT_SCRIPT, GatewayConfig, RouteTarget
from phoenix.inventory.served import served_models


@dataclass(frozen=True)
class Backend:
    """One `server` of an upstream: a guest's address and port."""

    address: str
    port: int
    ctid: int | None = None

    @property
    def hostport(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class ModelRoute:
    """A model name and the upstream (one or more guests) that serves it."""

    model: str
    upstream: str
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class Target:
    """Where a path or host route goes: an upstream of guests, or a literal URL."""

    scheme: str
    upstream: str | None = None
    backends: tuple[Backend, ...] = ()
    url: str | None = None

    def proxy_pass(self, location: str = "/", strip: bool = True) -> str:
        """The proxy_pass argument of a `location` (a prefix ending in '/'): the request
        path after the prefix is joined to the URL's path with a '/', and the prefix is
        kept (`strip` false) or dropped. nginx replaces the matched prefix with the URI
        given here, so `/keep/x` goes to `<path>/keep/x`, never `<path>x`."""
        if self.url is not None:
            parts = urlsplit(self.url)
            base, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        else:
            assert self.upstream is not None
            base, path = f"{self.scheme}://{self.upstream}", ""
        uri = path + ("/" if strip else location)
        return base if uri == location else base + uri


# Room for the name in a file name (NAME_MAX is 255) with a prefix and a suffix.
MAX_NAME_IN_FILE = 120


def host_file_name(hostname: str) -> str:
    """A host route's name in file names (its site, its certificate): the lowercased name,
    shortened with a digest when it would not fit a file name (a name may be 253 long)."""
    name = hostname.lower()
    if len(name) <= MAX_NAME_IN_FILE:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_NAME_IN_FILE - 17]}-{digest}"


def host_cert(hostname: str) -> str:
    """A host route's certificate name: never the API server's (`phoenix-api`), whatever
    the host route is called."""
    return f"host-{host_file_name(hostname)}"


@dataclass(frozen=True)
class PathRouteSpec:
    path: str
    strip_prefix: bool
    websocket: bool
    target: Target


@dataclass(frozen=True)
class HostRouteSpec:
    hostname: str
    tls: bool
    redirect_http: bool
    websocket: bool
    target: Target


@dataclass(frozen=True)
class GatewayRoutes:
    """Everything the renderer needs to know about one gateway guest."""

    ctid: int
    address: str | None
    config: GatewayConfig
    models: tuple[ModelRoute, ...]
    paths: tuple[PathRouteSpec, ...]
    hosts: tuple[HostRouteSpec, ...]
    subnet: str | None = None  # the gateway's own network (its bridge), when static

    @property
    def route_count(self) -> int:
        return len(self.models) + len(self.paths) + len(self.hosts)

    def api_names(self) -> list[str]:
        """Names the API server answers to (and its certificate covers)."""
        names = list(self.config.hostnames)
        if self.address is not None:
            names.append(self.address)
        return names

    def tls_sites(self) -> dict[str, list[str]]:
        """Certificate name -> SANs, for every TLS server of this gateway."""
        sites: dict[str, list[str]] = {}
        if self.config.tls:
            names = self.api_names() or ["localhost"]
            sites["phoenix-api"] = names
        for host in self.hosts:
            if host.tls:
                sites[host_cert(host.hostname)] = [host.hostname.lower()]
        return sites


def find_gateway(inventory: Inventory) -> int | None:
    """The gateway guest (`LxcGuest.runs_gateway`; the checks allow only one): one with a
    `gateway` block before one running the original 101 script."""
    gateways = [(g.gateway is None, c) for c, g in inventory.guests.items() if g.runs_gateway]
    return min(gateways)[1] if gateways else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "x"


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _address(inventory: Inventory, ctid: int, overrides: Mapping[int, str]) -> str | None:
    if ctid in overrides:
        return overrides[ctid]
    guest = inventory.guests.get(ctid)
    if guest is None or guest.network_config is None:
        return None
    return guest.network_config.address


def model_routes(
    inventory: Inventory, overrides: Mapping[int, str] | None = None
) -> tuple[list[ModelRoute], list[str]]:
    """Model upstreams and the problems met (model guests with no address)."""
    overrides = overrides or {}
    by_model: dict[str, list[Backend]] = {}
    problems: list[str] = []
    for ctid, guest in sorted(inventory.guests.items()):
        served = served_models(guest)
        if not served or guest.is_clone_source:
            continue
        address = _address(inventory, ctid, overrides)
        if address is None:
            problems.append(f"guest {ctid} serves {served[0][0]!r} but has no IP address")
            continue
        for model, port in served:
            by_model.setdefault(model, []).append(Backend(address, port, ctid))
    taken: set[str] = set()
    routes = [
        ModelRoute(model, _unique("model_" + _slug(model), taken), tuple(backends))
        for model, backends in sorted(by_model.items())
    ]
    return routes, problems


def _target(
    inventory: Inventory,
    route: RouteTarget,
    name: str,
    taken: set[str],
    overrides: Mapping[int, str],
    problems: list[str],
    where: str,
) -> Target | None:
    if route.url is not None:
        return Target(urlsplit(route.url).scheme, url=route.url)
    assert route.ctid is not None and route.port is not None
    if route.ctid not in inventory.guests and route.ctid not in overrides:
        problems.append(f"{where}: route target {route.ctid} is not a container in the inventory")
        return None
    address = _address(inventory, route.ctid, overrides)
    if address is None:
        problems.append(f"{where}: route target {route.ctid} has no IP address")
        return None
    if route.ctid in inventory.guests and inventory.guests[route.ctid].is_clone_source:
        problems.append(f"{where}: route target {route.ctid} is a template; it serves nothing")
        return None
    upstream = _unique(name, taken)
    return Target(route.scheme, upstream, (Backend(address, route.port, route.ctid),))


def derive_routes(
    inventory: Inventory,
    ctid: int | None = None,
    addresses: Mapping[int, str] | None = None,
    strict: bool = True,
) -> tuple[GatewayRoutes, list[str]]:
    """The gateway's routes; `addresses` overrides guest IPs (tests, benchmarks).

    With `strict`, any unroutable target raises GatewayError; otherwise the problems are
    returned beside the routes that could be resolved (for lint)."""
    overrides = dict(addresses or {})
    if ctid is None:
        ctid = find_gateway(inventory)
        if ctid is None:
            raise GatewayError(
                "no gateway guest: give one guest a 'gateway' block "
                f"(or the application_script {GATEWAY_COMPAT_SCRIPT!r})"
            )
    if ctid not in inventory.guests or not inventory.guests[ctid].runs_gateway:
        raise GatewayError(f"guest {ctid} is not a gateway (no 'gateway' block)")
    guest = inventory.guests[ctid]
    config = guest.gateway or GatewayConfig()
    models, problems = model_routes(inventory, overrides)
    taken = {m.upstream for m in models}
    paths: list[PathRouteSpec] = []
    for i, p in enumerate(config.path_routes):
        path = p.path if p.path.endswith("/") else p.path + "/"
        name = "route_" + (p.name or _slug(path))
        target = _target(
            inventory, p, name, taken, overrides, problems, f"gateway.path_routes[{i}]"
        )
        if target is not None:
            paths.append(PathRouteSpec(path, p.strip_prefix, p.websocket, target))
    hosts: list[HostRouteSpec] = []
    for i, h in enumerate(config.host_routes):
        name = "host_" + _slug(h.hostname)
        target = _target(
            inventory, h, name, taken, overrides, problems, f"gateway.host_routes[{i}]"
        )
        if target is not None:
            hosts.append(HostRouteSpec(h.hostname, h.tls, h.redirect_http, h.websocket, target))
    if strict and problems:
        raise GatewayError(f"gateway {ctid}: " + "; ".join(problems))
    routes = GatewayRoutes(
        ctid,
        _address(inventory, ctid, overrides),
        config,
        tuple(models),
        tuple(paths),
        tuple(hosts),
        _subnet(inventory, ctid),
    )
    return routes, problems


def _subnet(inventory: Inventory, ctid: int) -> str | None:
    guest = inventory.guests.get(ctid)
    net = guest.network_config if guest is not None else None
    if net is None or net.address is None:
        return None
    return str(ipaddress.ip_interface(net.ip).network)

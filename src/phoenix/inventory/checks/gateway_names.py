"""What nginx would reject or silently ignore in a gateway block, found at validate: two
path routes that are one location once normalised, a path the gateway serves itself, the
HTTP and HTTPS ports on one number, and a host route that the API server already answers
(its hostname, in any case, or the gateway's address)."""

from __future__ import annotations

from phoenix.inventory.core import LXC_FILE
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.models.gateway import reserved_path_reason
from phoenix.inventory.problems import Problem, lxc_at


def location_of(path: str) -> str:
    """The prefix location a path route becomes (`/x` and `/x/` are one location)."""
    return path if path.endswith("/") else path + "/"


def gateway_block_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    gateway = guest.gateway
    if gateway is None:
        return []
    out: list[Problem] = []

    def problem(message: str, *where: str | int) -> None:
        out.append(Problem(LXC_FILE, lxc_at(ctid, "gateway", *where), message))

    seen: dict[str, int] = {}
    for index, route in enumerate(gateway.path_routes):
        location = location_of(route.path)
        reason = reserved_path_reason(location)
        if reason is not None:
            problem(f"path {route.path!r} {reason}", "path_routes", index, "path")
        elif location in seen:
            problem(
                f"path {route.path!r} is already routed by path_routes[{seen[location]}] "
                f"(both are the location {location})",
                "path_routes",
                index,
                "path",
            )
        seen.setdefault(location, index)
    uses_tls = gateway.tls or any(h.tls for h in gateway.host_routes)
    if uses_tls and gateway.http_port == gateway.https_port:
        problem(
            f"http_port and https_port are both {gateway.http_port}: one port cannot serve "
            "plain HTTP and TLS (give them different ports, or set tls: false everywhere)",
            "https_port",
        )
    api_names = {name.lower(): f"gateway.hostnames ({name})" for name in gateway.hostnames}
    net = guest.network_config
    if net is not None and net.address is not None:
        api_names[net.address] = f"the gateway's address ({net.address})"
    for index, host in enumerate(gateway.host_routes):
        taken = api_names.get(host.hostname.lower())
        if taken is not None:
            problem(
                f"hostname {host.hostname!r} is already the API server's name, from {taken}: "
                "nginx would never reach this route",
                "host_routes",
                index,
                "hostname",
            )
    return out

"""Status data for `phoenix status`: what each guest is right now (the CLI renders it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from phoenix.drivers.base import Driver, GuestState
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import LxcGuest, VmGuest
from phoenix.plan.health import probe
from phoenix.recipes.gateway_app import GatewayApp


@dataclass(frozen=True)
class GuestStatus:
    """One guest: observed state, addresses, boot settings, snapshots, health.

    `health` is "ok", "failing", "not running", "no check" or "not checked".
    """

    ctid: int
    name: str
    state: GuestState
    ip: str | None
    ips: tuple[str, ...]
    desired_ip: str | None
    start_at_boot: bool
    boot_order: int
    is_template: bool
    snapshots: tuple[str, ...]
    health: str
    health_output: str = ""
    kind: str = "container"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ips"] = list(self.ips)
        out["snapshots"] = list(self.snapshots)
        return out


def gather_status(
    inventory: Inventory,
    driver: Driver,
    ids: Iterable[int] | None = None,
    check_health: bool = True,
) -> list[GuestStatus]:
    """Observe each guest, containers and VMs (in start order), and if asked run its
    health check once."""
    known: dict[int, LxcGuest | VmGuest] = {**inventory.guests, **inventory.vms}
    wanted = list(known) if ids is None else [c for c in ids if c in known]
    out: list[GuestStatus] = []
    for ctid in sorted(wanted, key=lambda c: (known[c].boot_order, c)):
        guest = known[ctid]
        observed = driver.observe(ctid)
        desired_ip = guest.network_config.address if guest.network_config else None
        health, output = "no check", ""
        if guest.health_check is not None:
            if not observed.running:
                health = "not running"
            elif not check_health:
                health = "not checked"
            else:
                single = guest.health_check.model_copy(update={"retries": 1})
                result = probe(driver, ctid, single)
                health = "ok" if result.ok else "failing"
                output = (result.stdout + result.stderr).strip()[-500:]
        ips = observed.ip_addresses
        out.append(
            GuestStatus(
                ctid=ctid,
                name=guest.name,
                state=observed.state,
                ip=ips[0] if ips else None,
                ips=ips,
                desired_ip=desired_ip,
                start_at_boot=guest.start_at_boot,
                boot_order=guest.boot_order,
                is_template=observed.is_template,
                snapshots=observed.snapshots,
                health=health,
                health_output=output,
                kind="vm" if ctid in inventory.vms else "container",
            )
        )
    return out


@dataclass(frozen=True)
class BackendStatus:
    """One upstream server as the gateway sees it."""

    target: str
    ctid: int | None
    health: str  # "ok", "failing", "unreachable", "unknown"
    detail: str = ""


@dataclass(frozen=True)
class RouteStatus:
    """One gateway route (model, path or host) and the health of each of its backends."""

    kind: str
    match: str
    backends: tuple[BackendStatus, ...]

    @property
    def health(self) -> str:
        states = {b.health for b in self.backends}
        if states == {"ok"}:
            return "ok"
        if "ok" in states:
            return "degraded"
        if not states or states == {"unknown"}:
            return "unknown"
        return "down"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "match": self.match,
            "health": self.health,
            "backends": [asdict(b) for b in self.backends],
        }


def _gateway_answers(driver: Driver, gateway: int, inventory: Inventory) -> str | None:
    """None when the gateway's nginx answers its own health check (the inventory's, else
    `/phoenix/health` on loopback), else what went wrong."""
    check = inventory.guests[gateway].health_check
    if check is not None:
        result = probe(driver, gateway, check.model_copy(update={"retries": 1}))
    else:
        argv = ["curl", "-fsS", "-m", "3", "-o", "/dev/null", "http://127.0.0.1/phoenix/health"]
        result = driver.exec(gateway, argv, timeout=10)
    if result.ok:
        return None
    said = result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}"
    return said.splitlines()[-1][-200:]


def _probe_from_gateway(driver: Driver, gateway: int, url: str, expect_ok: bool) -> tuple[str, str]:
    """Ask the gateway guest itself (it is the one the firewall lets through) with curl."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-m", "3", "-w", "%{http_code}", url]
    result = driver.exec(gateway, argv, timeout=10)
    if result.returncode == 127:
        return "unknown", "curl is not installed in the gateway"
    code = result.stdout.strip()
    if not result.ok or code in ("", "000"):
        return "unreachable", (result.stderr.strip() or f"exit {result.returncode}")[-200:]
    if expect_ok and not code.startswith("2"):
        return "failing", f"HTTP {code}"
    return "ok", f"HTTP {code}"


def gather_route_status(
    inventory: Inventory, driver: Driver, app: GatewayApp, check_health: bool = True
) -> tuple[int | None, list[RouteStatus]]:
    """The gateway's routes with each backend's health, probed from inside the gateway
    (model servers answer `/health`; other services only need to answer HTTP at all).
    `app` derives the routes: the gateway application, handed in by the CLI."""
    found = app.routes(inventory)
    if found is None:
        return None, []
    gateway, routes = found
    running = check_health and driver.observe(gateway).running
    # A route is only as good as the gateway in front of it: when its own check fails
    # (nginx stopped, a broken config), every route is down, whatever the backends say.
    front = _gateway_answers(driver, gateway, inventory) if running else None

    def backends(items: Iterable[Any], path: str, expect_ok: bool) -> tuple[BackendStatus, ...]:
        out = []
        for backend in items:
            if not running:
                health, detail = "unknown", "gateway not running"
            elif front is not None:
                health, detail = "unreachable", f"the gateway does not answer: {front}"
            else:
                url = f"http://{backend.hostport}{path}"
                health, detail = _probe_from_gateway(driver, gateway, url, expect_ok)
            out.append(BackendStatus(backend.hostport, backend.ctid, health, detail))
        return tuple(out)

    def service(target: Any) -> tuple[BackendStatus, ...]:
        """A path or host route: a guest's service answers HTTP at all; a URL is not probed."""
        if target.backends:
            return backends(target.backends, "/", False)
        return (BackendStatus(target.url or "", None, "unknown", "external URL, not probed"),)

    rows = [
        RouteStatus("model", m.model, backends(m.backends, "/health", True)) for m in routes.models
    ]
    rows += [RouteStatus("path", p.path, service(p.target)) for p in routes.paths]
    rows += [RouteStatus("host", h.hostname, service(h.target)) for h in routes.hosts]
    return gateway, rows

"""The built-in gateway as the planner and the recipes use it (`phoenix.recipes.gateway_app`'s
shape): the CLI hands `GATEWAY` in, so the layers below never import `phoenix.gateway`.

It imports `phoenix.gateway` only when a method runs: a plan without a gateway guest or a
`trusted_ca` feature does not pay for crossplane and cryptography.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phoenix.inventory.loader import Inventory
    from phoenix.recipes.bundle import Bundle


@functools.lru_cache(maxsize=1)
def _ephemeral_ca_pem() -> bytes:
    """One in-memory CA per process for planners without a state dir (tests, benches), so
    the bundle's digest stays the same from one plan to the next."""
    from phoenix.gateway.tls import LocalCA

    return LocalCA.ephemeral().cert_pem


class BuiltinGateway:
    """phoenix.gateway's bundle, routes and CA behind the planner's `GatewayApp`."""

    def bundle(
        self, inventory: Inventory, ctid: int, state_dir: Path | None, *, persist: bool
    ) -> Bundle:
        from phoenix.gateway.bundle import gateway_bundle

        return gateway_bundle(inventory, ctid, state_dir, persist=persist)

    def routed_guests(self, inventory: Inventory, ctid: int) -> frozenset[int]:
        from phoenix.errors import PhoenixError
        from phoenix.gateway.routes import derive_routes

        try:
            routes, _problems = derive_routes(inventory, ctid, strict=False)
        except PhoenixError:
            return frozenset()
        targets = [m.backends for m in routes.models]
        targets += [r.target.backends for r in routes.paths]
        targets += [r.target.backends for r in routes.hosts]
        return frozenset(b.ctid for group in targets for b in group if b.ctid is not None)

    def routes(self, inventory: Inventory) -> tuple[int, Any] | None:
        from phoenix.gateway.routes import derive_routes, find_gateway

        gateway = find_gateway(inventory)
        if gateway is None:
            return None
        routes, _problems = derive_routes(inventory, gateway, strict=False)
        return gateway, routes

    def ca_pem(self, state_dir: Path | None, *, persist: bool) -> bytes:
        from phoenix.gateway.tls import LocalCA, default_ca_dir

        if state_dir is None:
            return _ephemeral_ca_pem()
        return LocalCA.open(default_ca_dir(state_dir), persist).cert_pem


GATEWAY = BuiltinGateway()

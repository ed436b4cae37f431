"""What recipes, the planner and `phoenix status` use of the built-in gateway application,
named by shape.

`phoenix.gateway` sits above both (it renders from the inventory and packages a recipe
bundle), so neither imports it: the CLI hands `phoenix.cli.gateway_app.GATEWAY` to the planner
(`PlanOptions.gateway`), which passes it on. Without one, a gateway guest's application
and the `trusted_ca` feature cannot be built, and the plan says so for that step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from phoenix.inventory.loader import Inventory
from phoenix.recipes.bundle import Bundle

NOT_HANDED = "the built-in gateway application was not handed to the planner"


class GatewayApp(Protocol):
    def bundle(
        self, inventory: Inventory, ctid: int, state_dir: Path | None, *, persist: bool
    ) -> Bundle:
        """The bundle that makes guest `ctid` the gateway (raises a PhoenixError if it
        cannot). `persist=False`: its CA and keys are not written."""
        ...

    def routed_guests(self, inventory: Inventory, ctid: int) -> frozenset[int]:
        """The guests gateway `ctid` routes to (none when its routes cannot be derived)."""
        ...

    def routes(self, inventory: Inventory) -> tuple[int, Any] | None:
        """The gateway guest and its `GatewayRoutes` (unroutable targets left out), or None
        when no guest is the gateway (for `phoenix status`)."""
        ...

    def ca_pem(self, state_dir: Path | None, *, persist: bool) -> bytes:
        """The certificate of the CA that signs the gateway's certificates; with no state
        dir, one in-memory CA per process (the same digest from one plan to the next)."""
        ...

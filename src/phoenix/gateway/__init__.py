"""The Phoenix API gateway (container 101's role), derived from the inventory.

routes (what to route) -> render (nginx tree + njs router + certificates from tls) ->
lint (checks rendered and hand-written sites) -> bundle (what converging the guest runs).
"""

from phoenix.gateway.bundle import choose_mode, gateway_bundle, render_gateway
from phoenix.gateway.lint import Finding, lint_paths, lint_tree
from phoenix.gateway.render import Layout, RenderedGateway, write_tree
from phoenix.gateway.routes import GatewayRoutes, derive_routes, find_gateway
from phoenix.gateway.tls import LocalCA

__all__ = [
    "Finding",
    "GatewayRoutes",
    "Layout",
    "LocalCA",
    "RenderedGateway",
    "choose_mode",
    "derive_routes",
    "find_gateway",
    "gateway_bundle",
    "lint_paths",
    "lint_tree",
    "render_gateway",
    "write_tree",
]

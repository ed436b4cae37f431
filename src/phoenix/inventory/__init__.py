"""The inventory: a config dir loaded into typed, validated models."""

from phoenix.inventory.loader import (
    Inventory,
    load_inventory,
    resolve_config_dir,
    validate_config_dir,
)
from phoenix.inventory.models import GatewayConfig, LxcGuest
from phoenix.inventory.ordering import build_graph, creation_order, start_order
from phoenix.inventory.problems import Problem

__all__ = [
    "GatewayConfig",
    "Inventory",
    "LxcGuest",
    "Problem",
    "build_graph",
    "creation_order",
    "load_inventory",
    "resolve_config_dir",
    "start_order",
    "validate_config_dir",
]

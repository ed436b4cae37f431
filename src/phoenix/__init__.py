"""Phoenix: a declarative, idempotent provisioner for a self-hosted AI lab on LXC."""

from phoenix.errors import (
    CommandFailed,
    DriverError,
    GatewayError,
    InventoryError,
    LockBusy,
    PhoenixError,
    PlanError,
)

__version__ = "0.1.0"

__all__ = [
    "CommandFailed",
    "DriverError",
    "GatewayError",
    "InventoryError",
    "LockBusy",
    "PhoenixError",
    "PlanError",
    "__version__",
]

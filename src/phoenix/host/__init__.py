"""Host preparation for the local LXC driver (`phoenix setup`)."""

from phoenix.host.setup import BridgeSpec, HostSetup, SetupError, bridges_from_inventory

__all__ = ["BridgeSpec", "HostSetup", "SetupError", "bridges_from_inventory"]

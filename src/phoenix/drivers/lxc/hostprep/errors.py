"""The error host preparation raises (a DriverError: it is the LXC driver's host)."""

from __future__ import annotations

from phoenix.errors import DriverError


class SetupError(DriverError):
    """The host cannot be prepared as asked (missing packages, overlapping subnet...)."""

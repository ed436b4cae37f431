"""A request to stop a run (SIGINT/SIGTERM, or a broken reporter): set once, read anywhere.

The executor launches no step once it is set, and work that waits (an in-guest recipe)
stops waiting; what already changed stays journaled, so the next run resumes from it.
"""

from __future__ import annotations

import threading

from phoenix.errors import Interrupted

__all__ = ["Interrupted", "StopRequest"]


class StopRequest:
    """Thread-safe "please stop" flag with the reason that set it first."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True as soon as a stop is requested."""
        return self._event.wait(timeout)

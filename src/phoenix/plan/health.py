"""Health checks: `health_check.command` run inside the guest with retries.

The command is split like a shell would split it (shlex) but never run by a shell on the
host; the driver runs the argv inside the guest.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable

from phoenix.drivers.base import Driver
from phoenix.errors import CommandFailed
from phoenix.inventory.models import HealthCheck
from phoenix.runners.base import CommandResult


def health_argv(check: HealthCheck) -> list[str]:
    return shlex.split(check.command)


def probe(
    driver: Driver,
    ctid: int,
    check: HealthCheck,
    sleep: Callable[[float], None] = time.sleep,
) -> CommandResult:
    """Run the check up to `retries` times, `interval` seconds apart; the last result."""
    argv = health_argv(check)
    result = CommandResult(1, "", "not run")
    for attempt in range(check.retries):
        if attempt:
            sleep(check.interval)
        result = driver.exec(ctid, argv, timeout=max(30.0, float(check.interval)))
        if result.ok:
            return result
    return result


def run_health_check(
    driver: Driver,
    ctid: int,
    check: HealthCheck,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Raise CommandFailed (with the check's output) if the guest is not healthy."""
    result = probe(driver, ctid, check, sleep)
    if not result.ok:
        raise CommandFailed(
            health_argv(check),
            result.returncode,
            result.stdout,
            result.stderr,
            f"guest {ctid}: health check failed after {check.retries} attempt(s)",
        )

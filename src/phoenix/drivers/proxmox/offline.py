"""Recording what a driver would run on a fresh node, and printing it for people.

`phoenix plan --driver proxmox --offline` performs the planner's driver calls on an offline
`ProxmoxDriver`: nothing is observed or run, every mutating command is recorded. These
helpers turn such a recording into shell-quoted lines (files written via stdin shown as the
content that would be written) so an administrator can review them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from phoenix.drivers.proxmox import files
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.runners.recorded import RecordedRunner


def offline_driver(node: str) -> ProxmoxDriver:
    """A driver that runs nothing (its runner would answer every command with success)."""
    return ProxmoxDriver(RecordedRunner(), node, offline=True)


def record(node: str, steps: Callable[[ProxmoxDriver], object]) -> ProxmoxDriver:
    """Run `steps` (a sequence of driver calls) on an offline driver and return it."""
    driver = offline_driver(node)
    steps(driver)
    return driver


def command_lines(driver: ProxmoxDriver, kinds: tuple[str, ...] = ("mutate", "exec")) -> list[str]:
    """The recorded commands as shell-quoted lines; a file write is followed by its content
    as `#   | ` comment lines."""
    writes = {w.log_index: w for w in driver.file_writes}
    lines: list[str] = []
    for index, (kind, argv) in enumerate(driver.log.entries):
        if kind not in kinds:
            continue
        lines.append(shlex.join(files.display(argv)))
        write = writes.get(index)
        if write is not None:
            what = "raw keys of its main section become" if write.partial else "will contain"
            lines.append(f"#   {write.path} {what}:")
            lines.extend(f"#   | {line}" for line in write.content.splitlines())
    return lines

"""What the LXC driver's parts share: the runner, the command log and the LXC path.

The driver sequences its parts (rootfs, snapshots, firewall, readiness); each part runs
its host commands and makes its file changes through one `LxcContext`, so everything
lands in the same command log: commands as "observe"/"mutate"/"exec" entries, files
Phoenix changes in-process as "file" entries (see `CommandLog`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.drivers.base import CommandKind, CommandLog
from phoenix.files import write_atomic
from phoenix.runners.base import CommandResult, Runner, Stdin

log = logging.getLogger(__name__)


@dataclass
class LxcContext:
    """One LXC path on one host, with the runner and log every part uses."""

    lxc_path: Path
    runner: Runner
    log: CommandLog = field(default_factory=CommandLog)
    warnings: list[str] = field(default_factory=list)

    def run(
        self,
        kind: CommandKind,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.log.add(kind, argv)
        return self.runner.run(argv, input=input, timeout=timeout)

    def lxc(self, tool: str, ctid: int, *args: str) -> list[str]:
        """argv of an `lxc-*` tool for one guest of this LXC path."""
        return [tool, "-P", str(self.lxc_path), "-n", str(ctid), *args]

    def dir(self, ctid: int) -> Path:
        return self.lxc_path / str(ctid)

    def write(self, path: Path, text: str, mode: int = 0o640) -> None:
        """Atomic write of a driver-owned file, logged as a file change."""
        self.log.file("write", path)
        write_atomic(path, text, mode)

    def remove_tree(self, path: Path, context: str) -> None:
        """`rm -rf` one dir (never crossing into a mount), failing with `context`."""
        self.run("mutate", ["rm", "-rf", "--one-file-system", "--", str(path)]).check(context)

    def state(self, ctid: int) -> str:
        """lxc-info's state (RUNNING, STOPPED...); STOPPED when it cannot tell."""
        res = self.run("observe", self.lxc("lxc-info", ctid, "-s", "-H"))
        return res.stdout.strip().upper() if res.ok else "STOPPED"

    def running(self, ctid: int) -> bool:
        return self.state(ctid) == "RUNNING"

    def ips(self, ctid: int) -> tuple[str, ...]:
        res = self.run("observe", self.lxc("lxc-info", ctid, "-i", "-H"))
        return tuple(line.strip() for line in res.stdout.splitlines() if line.strip())

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

"""The Runner contract: argv in, exit code and output out. Never a shell string.

Drivers run every host command through a Runner so the same driver code works on the node
itself (LocalRunner), over SSH (SshRunner) and in unit tests (RecordedRunner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from phoenix.errors import CommandFailed


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self, context: str = "") -> CommandResult:
        """Raise CommandFailed unless the command succeeded."""
        if self.returncode != 0:
            raise CommandFailed(self.argv, self.returncode, self.stdout, self.stderr, context)
        return self


class Runner(Protocol):
    """Runs one argv and reports how it ended. Implementations never use a shell."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult: ...

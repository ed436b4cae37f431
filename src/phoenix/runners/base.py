"""The Runner contract: argv in, exit code and output out. Never a shell string.

Drivers run every host command through a Runner so the same driver code works on the node
itself (LocalRunner), over SSH (SshRunner) and in unit tests (RecordedRunner); a driver's
`exec` in a guest answers with the same CommandResult.

The contract, the same for every runner:

- `run` returns a CommandResult for every command it could hand to the host, however the
  command ended: a non-zero exit, a program that is not there (127, as a shell says it) and
  a command stopped at its timeout (124, as `timeout(1)` says it; stderr says so too) all
  come back as results. The caller decides what a failure means: `.ok` to branch,
  `.check(context)` to raise CommandFailed.
- It raises CommandFailed only when the command never reached the host, so no exit code
  is the command's own (SshRunner: the ssh connection or login failed). A result there
  would pose as the command's answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from phoenix.errors import CommandFailed

NOT_FOUND = 127
TIMED_OUT = 124


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned (on the host or inside a guest)."""

    returncode: int
    stdout: str
    stderr: str
    argv: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self, context: str = "") -> CommandResult:
        """Raise CommandFailed unless the command succeeded."""
        if self.returncode != 0:
            raise CommandFailed(self.argv, self.returncode, self.stdout, self.stderr, context)
        return self


# What a command reads on stdin: text or bytes held in memory, or a file on this machine
# that is streamed to it (an NVIDIA runfile is ~400 MB: never read whole into memory).
Stdin = bytes | str | Path | None


def stdin_bytes(value: Stdin) -> bytes:
    """The whole input as bytes, for runners and fakes that hold it in memory anyway."""
    if isinstance(value, Path):
        return value.read_bytes()
    return value.encode() if isinstance(value, str) else (value or b"")


class Runner(Protocol):
    """Runs one argv and reports how it ended (see the module docstring). Implementations
    never use a shell."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult: ...

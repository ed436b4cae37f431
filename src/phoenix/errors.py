"""Phoenix's exception tree: one root, so callers (and the CLI) catch one thing.

    PhoenixError
    ├── InventoryError      the config dir cannot be loaded or is invalid (carries problems)
    ├── CommandFailed       a host/guest command exited non-zero (argv, exit code, output tail)
    ├── DriverError         a driver cannot do what was asked (missing template, locked guest…)
    ├── PlanError           the requested change is refused (e.g. needs --recreate)
    ├── LockBusy            another Phoenix run holds the host lock
    ├── GatewayError        the gateway cannot be rendered, certified or deployed
    └── ParseError          a file or a tool's output is not what Phoenix reads (also a
                            ValueError: a pure parser's caller may catch it to add context)

Every message is written for the operator: it names the guest, the command or the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Problem(Protocol):
    """What InventoryError carries: `phoenix.inventory.problems.Problem` (named by shape,
    as the error tree sits below the inventory)."""

    @property
    def severity(self) -> str: ...

    def render(self) -> str: ...

    def as_dict(self) -> dict[str, str]: ...


class PhoenixError(Exception):
    """Root of every error Phoenix raises on purpose."""


class InventoryError(PhoenixError):
    """The inventory could not be loaded or failed validation."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class CommandFailed(PhoenixError):
    """A command exited non-zero; keeps argv and the tail of its output for the message."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str = "",
        stderr: str = "",
        context: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.context = context
        shown = " ".join(self.argv)
        head = f"{context}: " if context else ""
        detail = _tail(stderr) or _tail(stdout)
        msg = f"{head}command failed (exit {returncode}): {shown}"
        if detail:
            msg += "\n" + detail
        super().__init__(msg)


class DriverError(PhoenixError):
    """A driver could not observe or change a guest."""


class PlanError(PhoenixError):
    """A change the planner refuses to make (it says what would allow it)."""


class LockBusy(PhoenixError):
    """Another Phoenix run holds the host lock."""


class GatewayError(PhoenixError):
    """The gateway could not be rendered, linted, certified or deployed."""


class ParseError(PhoenixError, ValueError):
    """Text Phoenix reads (a state file, a tool's JSON) is malformed; the message names it.

    A ValueError as well, the convention of the pure parsers: a caller that knows more
    (which guest, which node) catches ValueError and re-raises with that context; one
    that does not still hands the CLI a PhoenixError, not a traceback."""


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM) while a step waited; the step was left, not
    failed, and the next run resumes it. Deliberately not a PhoenixError: nothing went
    wrong with the guest."""

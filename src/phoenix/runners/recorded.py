"""A test double for Runner: records every argv and answers from canned responses."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from phoenix.runners.base import CommandResult

Responder = Callable[[tuple[str, ...]], CommandResult | None]


@dataclass
class RecordedRunner:
    """Records calls; the first responder that returns a result answers, else exit 0."""

    responders: list[Responder] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    inputs: list[bytes | str | None] = field(default_factory=list)

    def respond(
        self, prefix: Sequence[str], stdout: str = "", returncode: int = 0, stderr: str = ""
    ) -> None:
        """Answer commands starting with `prefix` (most recent registration wins)."""
        want = tuple(prefix)

        def responder(argv: tuple[str, ...]) -> CommandResult | None:
            if argv[: len(want)] == want:
                return CommandResult(returncode, stdout, stderr, argv)
            return None

        self.responders.insert(0, responder)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        key = tuple(argv)
        self.calls.append(key)
        self.inputs.append(input)
        for responder in self.responders:
            result = responder(key)
            if result is not None:
                return result
        return CommandResult(0, "", "", key)

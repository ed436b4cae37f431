"""A test double for Runner: records every argv and answers from canned responses.

A command nothing answers is an error, not a success: a double that said yes to anything
let a test pass while the code ran a command nobody expected (a typo, a flag that moved).
The error names the argv and the closest answered prefix. A test that means "every other
command succeeds" says so with `respond([])`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from phoenix.runners.base import CommandResult, Stdin

Responder = Callable[[tuple[str, ...]], CommandResult | None]


class UnrecordedCommand(AssertionError):
    """A command the test did not record an answer for (a test bug or a code bug)."""


@dataclass
class RecordedRunner:
    """Records calls; the first responder that returns a result answers, else it raises."""

    responders: list[Responder] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    inputs: list[Stdin] = field(default_factory=list)
    prefixes: list[tuple[str, ...]] = field(default_factory=list)

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
        self.prefixes.insert(0, want)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
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
        raise UnrecordedCommand(self._unanswered(key))

    def _unanswered(self, key: tuple[str, ...]) -> str:
        """The error text: the argv, and the recorded prefix sharing most of its leading
        words (then the most similar text)."""
        shown = " ".join(key)

        def likeness(prefix: tuple[str, ...]) -> tuple[int, float]:
            same = next(
                (i for i, (a, b) in enumerate(zip(key, prefix, strict=False)) if a != b), None
            )
            lead = min(len(key), len(prefix)) if same is None else same
            return lead, difflib.SequenceMatcher(None, shown, " ".join(prefix)).ratio()

        if not self.prefixes:
            return f"RecordedRunner: no answer recorded for {list(key)}; nothing recorded"
        best: tuple[str, ...] = max(self.prefixes, key=likeness)
        closest = " ".join(best)
        return f"RecordedRunner: no answer recorded for {list(key)}; closest: {closest!r}"

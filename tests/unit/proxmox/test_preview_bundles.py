"""The preview lists a recipe's in-guest commands without packing its bundle: they must be
exactly what `run_bundle` sends to a fresh guest (every command succeeds, no output)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from phoenix.recipes import runner
from phoenix.recipes.bundle import Bundle
from phoenix.runners.base import CommandResult


class FreshGuest:
    """Answers every exec with success and no output; keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], dict[str, str] | None, bool]] = []

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.sent.append((list(argv), None if env is None else dict(env), stdin is not None))
        return CommandResult(0, "", "")


@pytest.mark.parametrize("env", [{}, {"PHOENIX_CTID": "101", "PHOENIX_TIMEZONE": "UTC"}])
def test_bundle_commands_are_what_run_bundle_sends(env: dict[str, str]) -> None:
    bundle = Bundle(
        name="feature-base_setup",
        script_name="feature_base_setup.sh",
        script=b"#!/bin/sh\ntrue\n",
        files={"a.txt": b"a"},
        entry={"name": "web"},
        env=env,
    )
    guest = FreshGuest()
    runner.run_bundle(guest, 101, bundle)  # type: ignore[arg-type]
    sent = [(argv, env_) for argv, env_, _ in guest.sent]
    assert sent == runner.bundle_commands(bundle)
    # only the unpack carries the tarball; the preview shows argv, never stdin
    assert [argv[:3] == ["sh", "-c", runner.UNPACK_SCRIPT] for argv, _, _ in guest.sent] == [
        with_stdin for _, _, with_stdin in guest.sent
    ]

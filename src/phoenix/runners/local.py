"""Run commands on this machine with subprocess (no shell), each in its own session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from phoenix.errors import PhoenixError
from phoenix.runners.base import NOT_FOUND, TIMED_OUT, CommandResult, Stdin


class LocalRunner:
    """Subprocess runner; `env` is added to the current environment. Never raises for how
    a command ended (runners/base.py)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        if isinstance(input, Path):
            # Streamed from the file by the child itself: never read into our memory.
            try:
                with input.open("rb") as stream:
                    return self._run(argv, None, stream, env, timeout)
            except OSError as exc:
                raise PhoenixError(f"cannot read {input} to send to {argv[0]}: {exc}") from exc
        data = input.encode() if isinstance(input, str) else input
        # No input: /dev/null, never our stdin (a tty there makes `pct exec` give the
        # command a pty, and a command would read what was typed for Phoenix).
        return self._run(argv, data, subprocess.DEVNULL if data is None else None, env, timeout)

    def _run(
        self,
        argv: Sequence[str],
        data: bytes | None,
        stdin: IO[bytes] | int | None,
        env: Mapping[str, str] | None,
        timeout: float | None,
    ) -> CommandResult:
        full_env = {**os.environ, **env} if env else None
        try:
            proc = subprocess.run(
                list(argv),
                input=data,
                stdin=stdin,
                capture_output=True,
                env=full_env,
                timeout=timeout,
                check=False,
                # Its own session: a Ctrl-C in the terminal goes to Phoenix, which lets the
                # running step end cleanly, instead of killing it half-way (tar, lxc-attach).
                start_new_session=True,
            )
        except FileNotFoundError:
            return CommandResult(NOT_FOUND, "", f"{argv[0]}: command not found", tuple(argv))
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if exc.stdout else ""
            err = exc.stderr.decode(errors="replace") if exc.stderr else ""
            err += f"\ntimed out after {timeout}s"
            return CommandResult(TIMED_OUT, out, err, tuple(argv))
        return CommandResult(
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
            tuple(argv),
        )

"""Run commands on this machine with subprocess (no shell), each in its own session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from phoenix.errors import CommandFailed
from phoenix.runners.base import CommandResult


class LocalRunner:
    """Subprocess runner; `env` is added to the current environment."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        data = input.encode() if isinstance(input, str) else input
        full_env = {**os.environ, **env} if env else None
        try:
            # No input: /dev/null, never our stdin (a tty there makes `pct exec` give the
            # command a pty, and a command would read what was typed for Phoenix).
            proc = subprocess.run(
                list(argv),
                input=data,
                stdin=subprocess.DEVNULL if data is None else None,
                capture_output=True,
                env=full_env,
                timeout=timeout,
                check=False,
                # Its own session: a Ctrl-C in the terminal goes to Phoenix, which lets the
                # running step end cleanly, instead of killing it half-way (tar, lxc-attach).
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandFailed(argv, 127, "", f"{argv[0]}: command not found") from exc
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if exc.stdout else ""
            err = exc.stderr.decode(errors="replace") if exc.stderr else ""
            raise CommandFailed(argv, 124, out, err + f"\ntimed out after {timeout}s") from exc
        return CommandResult(
            tuple(argv),
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

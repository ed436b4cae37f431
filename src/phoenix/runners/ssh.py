"""Run commands on another host (a Proxmox node) with the OpenSSH client.

The local side is an argv (`ssh -o BatchMode=yes ... -- host <command>`), never a shell.
The remote side is a shell (sshd runs the command through the user's login shell), so the
remote argv is quoted with `shlex.join`: every element arrives as one word, whatever it
contains. Authentication is by key only (BatchMode: no password prompt can hang a run) and
the host key is checked against known_hosts (StrictHostKeyChecking=yes) unless the caller
deliberately relaxes it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from phoenix.errors import CommandFailed
from phoenix.runners.base import NOT_FOUND, CommandResult, Runner, Stdin
from phoenix.runners.local import LocalRunner

# ssh itself exits 255 on these; a remote command's own 255 does not print them.
_SSH_FAILURE = re.compile(
    r"^(ssh: |Host key verification failed|Permission denied \(|"
    r"Connection (closed|timed out|refused)|kex_exchange_identification|"
    r"No ECDSA host key|No ED25519 host key|No RSA host key|"
    r"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@)",
    re.MULTILINE,
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class SshRunner:
    """Runs argv on `host` (`user@host` or an ssh_config alias) over OpenSSH."""

    host: str
    identity_file: str | None = None
    port: int | None = None
    known_hosts_file: str | None = None
    strict_host_key_checking: str = "yes"
    connect_timeout: int = 10
    extra_options: Sequence[str] = ()
    local: Runner = field(default_factory=LocalRunner)

    def __post_init__(self) -> None:
        if not self.host or self.host.startswith("-") or any(c.isspace() for c in self.host):
            raise ValueError(f"{self.host!r} is not an ssh destination (user@host)")
        if self.strict_host_key_checking not in ("yes", "accept-new", "no"):
            raise ValueError("strict_host_key_checking must be 'yes', 'accept-new' or 'no'")

    def ssh_argv(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, stdin: bool = True
    ) -> list[str]:
        """The local argv that runs `argv` (with `env`) on the host; `stdin=False` adds
        `-n` so the remote command reads nothing (and no pty is ever asked for)."""
        if not argv:
            raise ValueError("nothing to run")
        remote = list(argv)
        if env:
            for name in env:
                if not _ENV_NAME.match(name):
                    raise ValueError(f"{name!r} is not an environment variable name")
            remote = ["env", *(f"{k}={v}" for k, v in env.items()), *remote]
        cmd = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"StrictHostKeyChecking={self.strict_host_key_checking}",
        ]
        cmd += ["-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.known_hosts_file is not None:
            cmd += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
        if self.identity_file is not None:
            cmd += ["-o", "IdentitiesOnly=yes", "-i", self.identity_file]
        if self.port is not None:
            cmd += ["-p", str(self.port)]
        if not stdin:
            cmd.append("-n")
        cmd += list(self.extra_options)
        cmd += ["--", self.host, shlex.join(remote)]
        return cmd

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run on the host; the result carries the remote argv. An ssh failure (no route,
        bad key, unknown host key, no ssh client here) raises CommandFailed instead of
        posing as the command's (runners/base.py: the command never reached the host)."""
        local_argv = self.ssh_argv(argv, env, stdin=input is not None)
        result = self.local.run(local_argv, input=input, timeout=timeout)
        no_client = result.returncode == NOT_FOUND and result.stderr.startswith("ssh: ")
        if no_client or (result.returncode == 255 and _SSH_FAILURE.search(result.stderr)):
            raise CommandFailed(
                result.argv,
                255,
                result.stdout,
                result.stderr,
                f"cannot run commands on {self.host} over ssh (key-based login and a known "
                "host key are required: ssh-copy-id, then ssh once to check the key)",
            )
        return CommandResult(result.returncode, result.stdout, result.stderr, tuple(argv))

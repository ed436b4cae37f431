"""SshRunner: the exact OpenSSH argv, remote quoting, and ssh's own failures."""

from __future__ import annotations

import shlex

import pytest

from phoenix.errors import CommandFailed
from phoenix.runners.recorded import RecordedRunner
from phoenix.runners.ssh import SshRunner


def test_argv_is_key_based_with_host_key_checking() -> None:
    local = RecordedRunner()
    local.respond(["ssh"])
    runner = SshRunner("root@pve", identity_file="/root/.ssh/id_ed25519", port=2222, local=local)
    runner.run(["pct", "exec", "101", "--", "sh", "-c", "echo 'a b'; rm -rf /"])
    (call,) = local.calls
    assert list(call) == [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
        "-o", "IdentitiesOnly=yes", "-i", "/root/.ssh/id_ed25519", "-p", "2222", "-n",
        "--", "root@pve",
        "pct exec 101 -- sh -c 'echo '\"'\"'a b'\"'\"'; rm -rf /'",
    ]  # fmt: skip
    # The remote shell splits the command back into exactly the argv we meant.
    assert shlex.split(call[-1]) == ["pct", "exec", "101", "--", "sh", "-c", "echo 'a b'; rm -rf /"]


def test_env_and_result_argv() -> None:
    local = RecordedRunner()
    local.respond(["ssh"], "out\n")
    result = SshRunner("pve", local=local).run(["pveversion"], env={"LC_ALL": "C"})
    assert local.calls[0][-1] == "env LC_ALL=C pveversion"
    assert result.argv == ("pveversion",) and result.stdout == "out\n"


def test_ssh_failure_is_not_mistaken_for_the_command() -> None:
    local = RecordedRunner()
    local.respond(["ssh"], returncode=255, stderr="Host key verification failed.\n")
    with pytest.raises(CommandFailed, match="cannot run commands on root@pve over ssh"):
        SshRunner("root@pve", local=local).run(["pct", "list"])


def test_no_ssh_client_here_is_not_mistaken_for_a_missing_remote_command() -> None:
    local = RecordedRunner()
    local.respond(["ssh"], returncode=127, stderr="ssh: command not found")
    with pytest.raises(CommandFailed, match="cannot run commands on root@pve over ssh"):
        SshRunner("root@pve", local=local).run(["pct", "list"])
    remote = RecordedRunner()
    remote.respond(["ssh"], returncode=127, stderr="bash: line 1: pct: command not found\n")
    result = SshRunner("root@pve", local=remote).run(["pct", "list"])
    assert result.returncode == 127 and result.argv == ("pct", "list")


def test_remote_exit_255_from_pct_is_a_result() -> None:
    local = RecordedRunner()
    local.respond(["ssh"], returncode=255, stderr="CT 101 is locked (backup)\n")
    result = SshRunner("root@pve", local=local).run(["pct", "start", "101"])
    assert result.returncode == 255 and "locked" in result.stderr


@pytest.mark.parametrize("host", ["", "-oProxyCommand=evil", "root@pve extra"])
def test_bad_destinations(host: str) -> None:
    with pytest.raises(ValueError):
        SshRunner(host)


def test_bad_env_name() -> None:
    with pytest.raises(ValueError):
        SshRunner("pve", local=RecordedRunner()).run(["true"], env={"A;B": "1"})

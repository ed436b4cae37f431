"""The docker feature's package choice, run by a real `sh` with stand-in commands: in a VM
whose kernel has AppArmor enabled, Docker loads its `docker-default` profile with
`apparmor_parser` at every `docker run`, so the feature installs `apparmor` there (a VM of
the vm-lab example could not run a container without it); a container's Docker does not
use AppArmor (it runs under its host's profile) and gets no `apparmor` package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from phoenix.recipes.registry import builtin_scripts_dir

SCRIPT = builtin_scripts_dir() / "feature_docker.sh"
LOGGING = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
STANDINS = {
    "apt-get": LOGGING,
    "systemctl": LOGGING,
    "docker": LOGGING + '[ "$1" = version ] && echo 20.10.24\nexit 0\n',
    # exit 0: this is a container (systemd-detect-virt --container --quiet)
    "systemd-detect-virt": '#!/bin/sh\n[ "$IN_CONTAINER" = yes ]\n',
}


def run(tmp_path: Path, *, have: tuple[str, ...], apparmor: str, container: bool) -> list[str]:
    """The script's apt-get and systemctl calls in a guest with the commands `have`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sh = shutil.which("sh")
    basename = shutil.which("basename")
    assert sh and basename
    for name, body in STANDINS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    for name in have:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "basename").symlink_to(basename)
    enabled = tmp_path / "apparmor-enabled"
    enabled.write_text(apparmor + "\n")
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {
        "PATH": str(bin_dir),
        "CALLS": str(calls),
        "IN_CONTAINER": "yes" if container else "no",
        "PHOENIX_APPARMOR_ENABLED": str(enabled),
    }
    done = subprocess.run(
        [sh, str(SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in calls.read_text().splitlines() if line.startswith("apt-get ")]


def installed(calls: list[str]) -> set[str]:
    """The packages of every `apt-get ... install ...` call."""
    words = [call.split() for call in calls if " install " in call]
    return {w for argv in words for w in argv[argv.index("install") + 1 :] if w[:1] != "-"}


def test_a_vm_with_apparmor_gets_the_parser_docker_needs(tmp_path: Path) -> None:
    calls = run(tmp_path, have=(), apparmor="Y", container=False)
    assert {"docker.io", "apparmor"} <= installed(calls)


def test_a_container_gets_no_apparmor(tmp_path: Path) -> None:
    calls = run(tmp_path, have=(), apparmor="Y", container=True)
    assert "docker.io" in installed(calls) and "apparmor" not in installed(calls)


def test_a_vm_without_apparmor_gets_no_apparmor(tmp_path: Path) -> None:
    calls = run(tmp_path, have=(), apparmor="N", container=False)
    assert "apparmor" not in installed(calls)


@pytest.mark.parametrize("parser", [False, True])
def test_docker_already_there_gets_only_what_is_missing(tmp_path: Path, parser: bool) -> None:
    have = ("dockerd", "apparmor_parser") if parser else ("dockerd",)
    calls = run(tmp_path, have=have, apparmor="Y", container=False)
    assert installed(calls) == (set() if parser else {"apparmor"})

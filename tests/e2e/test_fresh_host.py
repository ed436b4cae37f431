"""The README's quick start on a truly fresh Debian 12 machine.

A fresh Debian 12 system container (see freshhost.py) receives the project's tracked files
and runs the README's main command exactly as written: `./demo`, then every curl command
the demo prints (each must answer 200), `./demo` again (nothing changes), `./demo --clean`
(the host is back as it was, packages aside; the template cache is kept and named), and
`./demo --clean --purge` (the cache goes too). Then the README's test command,
`./run-tests`, with its end-to-end half left out (that half is this suite, run on the
outer machine): its install step, ruff, mypy and every fast test. Nothing installed on
this machine leaks in: a missing install step fails here as it fails for a new user.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LxcHost
from tests.e2e.freshhost import FreshHost, project_tarball, start_fresh_host

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAME = "phxfresh"
HOST_NUMBER = 250  # the fresh host's address on the test bridge: .250
WORKDIR = "/root/phoenix"

# What must be as it was after `./demo --clean`: one labelled section per fact.
HOST_STATE = r"""
echo "== subuid"; cat /etc/subuid 2>/dev/null
echo "== subgid"; cat /etc/subgid 2>/dev/null
echo "== var-lib"; ls -d /var/lib/phoenix* 2>/dev/null
echo "== nft"; if command -v nft >/dev/null; then nft list tables; fi
echo "== links"; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
echo "== enabled"; systemctl list-unit-files --state=enabled --no-legend --no-pager | awk '{print $1}' | sort
echo "== lxc-locks"; find /run/lxc/lock -mindepth 1 2>/dev/null | sort
echo "== forward"; cat /proc/sys/net/ipv4/ip_forward
echo "== root-home"; ls -A /root | grep -v '^phoenix$'
echo "== cache"; find /var/cache/phoenix -maxdepth 1 -mindepth 1 2>/dev/null | sort
"""


def sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for block in text.split("== ")[1:]:
        name, _, body = block.partition("\n")
        out[name.strip()] = body.strip()
    return out


@pytest.fixture(scope="module")
def fresh_host(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshHost]:
    resolv = Path("/etc/resolv.conf").read_text()
    host = start_fresh_host(
        NAME,
        lxc_host.lxc_path,
        lxc_host.bridge,
        lxc_host.address(HOST_NUMBER),
        lxc_host.gateway,
        resolv,
    )
    try:
        tarball = project_tarball(REPO, tmp_path_factory.mktemp("fresh") / "phoenix.tar")
        (host.rootfs / WORKDIR.lstrip("/")).mkdir(parents=True)
        subprocess.run(
            ["tar", "-xf", str(tarball), "-C", str(host.rootfs / WORKDIR.lstrip("/"))], check=True
        )
        yield host
    finally:
        host.destroy()


def demo(host: FreshHost, *args: str, log: Path) -> str:
    """Run `./demo ARGS` in the fresh host as a user would; fail with the log's tail."""
    res = host.sh(f"cd {WORKDIR} && ./demo {' '.join(args)}", timeout=2400)
    out = res.stdout + res.stderr
    log.write_text(out)
    assert res.returncode == 0, f"./demo {' '.join(args)} failed ({res.returncode}):\n{out[-6000:]}"
    assert "Traceback" not in out, out[-6000:]
    return out


def printed_curls(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]


@pytest.mark.timeout(3600)
def test_quick_start_on_a_fresh_debian_12(fresh_host: FreshHost, tmp_path: Path) -> None:
    before = sections(fresh_host.sh(HOST_STATE).stdout)

    first = demo(fresh_host, log=tmp_path / "demo-1.log")
    curls = printed_curls(first)
    assert len(curls) >= 5, first[-3000:]
    for curl in curls:
        # the command exactly as printed, with its status code written after the body
        res = fresh_host.sh(f"cd {WORKDIR} && {curl} -o /dev/null -w '%{{http_code}}'")
        assert res.stdout.strip() == "200", f"{curl}\n-> {res.stdout} {res.stderr}"

    again = demo(fresh_host, log=tmp_path / "demo-2.log")
    assert "(0 guest(s) changed)" in again, again[-3000:]

    cleaned = demo(fresh_host, "--clean", log=tmp_path / "clean.log")
    assert "clients that trust it should drop it" in cleaned
    assert "kept the template cache /var/cache/phoenix/templates" in cleaned
    after = sections(fresh_host.sh(HOST_STATE).stdout)
    cache = after.pop("cache")
    assert cache == "/var/cache/phoenix/templates", cache
    before.pop("cache")
    assert after == before

    demo(fresh_host, "--clean", "--purge", log=tmp_path / "purge.log")
    assert sections(fresh_host.sh(HOST_STATE).stdout)["cache"] == ""


@pytest.mark.timeout(3600)
def test_the_test_command_installs_and_passes_its_fast_tests(
    fresh_host: FreshHost, tmp_path: Path
) -> None:
    """`./run-tests -m "not e2e"` (a later -m replaces the script's own): install-deps.sh
    --tests (chromium, njs, the dev extras), ruff, ruff format, mypy, then every non-e2e
    test, as root with skips forbidden, as CI runs them."""
    command = f"cd {WORKDIR} && ./run-tests -m 'not e2e' -q -p no:cacheprovider"
    res = fresh_host.sh(command, timeout=3000)
    out = res.stdout + res.stderr
    (tmp_path / "run-tests.log").write_text(out)
    assert res.returncode == 0, f"./run-tests failed ({res.returncode}):\n{out[-6000:]}"
    for step in ("==> ruff", "==> mypy", "==> pytest"):
        assert step in out, out[-3000:]
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary

"""Crash consistency, for real: the `phoenix` CLI is killed during every kind of step of a
first converge and of a delete, and the next `LetsGo` (or `delete`) must carry on without
any manual action; at the end the lab is healthy and one more run changes nothing.

The lab is small on purpose (CI time): a template 7760 made from the cached debootstrap
tarball, whose application installs a local .deb whose postinst takes 2 s (real dpkg work
to interrupt, no network), snapshotted as `golden`, and a linked clone 7761 of it. Three
ways to stop a run, each aimed with the `--json` events at a step's start:

- `kill9-start`: SIGKILL as soon as the step starts;
- `kill9-later`: SIGKILL a moment into the step (mid-copy, mid-dpkg);
- `sigint-group`: SIGINT to the process group a moment into the step (Ctrl-C in a terminal):
  the run must end the running step, print its JSON result and exit 130.

Each mode runs as one chain: every run is aimed at the first step kind not covered yet
that it meets; the run after a kill is itself the next kill's target, so each run proves
that the previous interruption was resumed (no `step_failed` is allowed in any run). Then a
clean run must succeed and the next must change nothing; a configure (memory change) and the
two destroys of a delete are interrupted the same way. The matrix (step x mode -> outcome)
is printed (`-s`) and written to `<state>/crash-matrix.txt`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.lxc import config as lxcconf
from phoenix.drivers.lxc.hostprep import BridgeSpec, HostSetup
from phoenix.files import OWNED_MARKER
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import run_bundle
from phoenix.runners.local import LocalRunner
from tests.e2e.conftest import LxcHost
from tests.e2e.crashmatrix import matrix_problems

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

BASE, CLONE = 7760, 7761
MODES = ("kill9-start", "kill9-later", "sigint-group")
# (guest, step kind) of a first converge, in the order they run; then configure, destroy.
CONVERGE_STEPS = [
    (BASE, "create"),
    (BASE, "start"),
    (BASE, "application"),
    (BASE, "health_check"),
    (BASE, "snapshot"),
    (CLONE, "clone"),
    (CLONE, "start"),
    (CLONE, "application"),
    (CLONE, "health_check"),
]
DELETE_STEPS = [(CLONE, "destroy"), (BASE, "destroy")]
# how long "a moment into the step" is, per kind (long enough to land mid-work)
LATER = {
    "create": 1.5,
    "clone": 0.1,
    "start": 0.3,
    "application": 0.5,
    "health_check": 0.05,
    "snapshot": 1.5,
    "configure": 0.05,
    "destroy": 0.1,
}

APP_SH = """#!/bin/sh
# Crash-test application: real dpkg work (a local package whose postinst takes 2 s).
set -eu
if [ "$(dpkg-query -W -f='${Status}' phxt-crash 2>/dev/null || true)" != "install ok installed" ]
then
    work=$(mktemp -d)
    mkdir -p "$work/DEBIAN" "$work/usr/local/bin"
    printf 'Package: phxt-crash\\nVersion: 1\\nArchitecture: all\\nMaintainer: t <root@localhost>\\nDescription: phoenix crash test\\n' > "$work/DEBIAN/control"
    printf '#!/bin/sh\\nsleep 2\\n' > "$work/DEBIAN/postinst"
    printf '#!/bin/sh\\n[ -z "$(dpkg --audit)" ] && [ -s /var/lib/phxt-crash/app-ran ]\\n' \\
        > "$work/usr/local/bin/phxt-healthy"
    chmod 0755 "$work/DEBIAN/postinst" "$work/usr/local/bin/phxt-healthy"
    dpkg-deb --root-owner-group -b "$work" /tmp/phxt-crash.deb >/dev/null
    dpkg -i /tmp/phxt-crash.deb
    rm -rf "$work" /tmp/phxt-crash.deb
fi
mkdir -p /var/lib/phxt-crash
printf '%s\\n' "$PHOENIX_CTID" > /var/lib/phxt-crash/app-ran
"""


@dataclass
class Run:
    """One CLI run: exit code, its JSON events, where the signal landed."""

    rc: int
    events: list[dict[str, Any]]
    aimed: tuple[int, str] | None = None  # the step the signal was aimed at
    hit: tuple[int, str] | None = None  # the step running when the signal was sent
    stderr: str = ""

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] in ("step_failed", "guest_failed")]

    @property
    def result(self) -> dict[str, Any] | None:
        last = self.events[-1] if self.events else None
        return last if last and last["event"] == "result" else None


@dataclass
class CrashLab:
    host: LxcHost
    etc: Path
    state: Path
    memory: int = 512
    matrix: list[tuple[str, str, str, str]] = field(default_factory=list)

    def write(self) -> None:
        def net(n: int) -> dict[str, str]:
            host = self.host
            return {
                "name": "eth0",
                "bridge": host.bridge,
                "ip": host.address(n),
                "gw": host.gateway,
            }

        common = {
            "swap_mb": 128,
            "cores": 1,
            "storage_size_gb": 4,
            "unprivileged": True,
            "application_script": "crash_app.sh",
            "health_check": {"command": "phxt-healthy", "retries": 2, "interval": 1},
        }
        guests = {
            str(BASE): {
                **common,
                "name": "phxt-crash-base",
                "memory_mb": 512,
                "template": self.host.template,
                "network_config": net(160),
                "template_snapshot_name": "golden",
            },
            str(CLONE): {
                **common,
                "name": "phxt-crash-clone",
                "memory_mb": self.memory,
                "clone_from_ctid": str(BASE),
                "network_config": net(161),
                "boot_order": 1,
            },
        }
        hyp = {
            "timezone": "Etc/UTC",
            "phoenix": {
                "driver": "lxc",
                "lxc_path": str(self.host.lxc_path),
                "template_cache": str(self.host.template_cache),
                "state_dir": str(self.state),
                "parallel": 2,
            },
        }
        (self.etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
        (self.etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": guests}))

    def cli(self, *args: str, aim: set[tuple[int, str]] | None = None, mode: str = "") -> Run:
        """Run `phoenix ARGS --json`; with `aim`, send `mode`'s signal at the first step
        whose (guest, kind) is in `aim`."""
        argv = [sys.executable, "-m", "phoenix", "--config-dir", str(self.etc), *args, "--json"]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a shell job has
        )
        assert proc.stdout is not None and proc.stderr is not None
        events: list[dict[str, Any]] = []
        running: dict[int, str] = {}  # ctid -> kind of the step running now
        hit: list[tuple[int, str]] = []
        aimed: list[tuple[int, str]] = []
        lock = threading.Lock()

        def fire(target: tuple[int, str]) -> None:
            with lock:
                if proc.poll() is not None or hit:
                    return
                # record the step actually running when the signal goes out
                hit.append((target[0], running.get(target[0], "")))
                if mode == "sigint-group":
                    os.killpg(proc.pid, signal.SIGINT)
                else:
                    os.kill(proc.pid, signal.SIGKILL)

        err_lines: list[str] = []
        reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr or []))
        reader.start()
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            events.append(event)
            ctid, kind = event.get("ctid"), event.get("step_kind")
            with lock:
                if event["event"] == "step_started":
                    running[ctid] = kind
                elif event["event"] in ("step_done", "step_skipped", "step_failed"):
                    running.pop(ctid, None)
            if aim and not aimed and event["event"] == "step_started" and (ctid, kind) in aim:
                aimed.append((ctid, kind))
                delay = 0.0 if mode == "kill9-start" else LATER[kind]
                threading.Timer(delay, fire, args=((ctid, kind),)).start()
        rc = proc.wait(timeout=900)
        reader.join(timeout=30)
        return Run(
            rc, events, aimed[0] if aimed else None, hit[0] if hit else None, "".join(err_lines)
        )

    def chain(self, mode: str, steps: list[tuple[int, str]], *args: str, resets: int = 0) -> None:
        """Interrupt runs of `args` until every step of `steps` was aimed at once. A run
        that meets none of them (a signal that landed late let the step finish) ends the
        chain, unless a reset is left: then the lab is deleted and the chain goes on."""
        left = list(steps)
        for _ in range(3 * len(steps) + 3):
            if not left:
                return
            run = self.cli(*args, aim=set(left), mode=mode)
            assert not run.failures, f"{mode}: a resumed run failed: {run.failures}\n{run.stderr}"
            if run.aimed is None:  # the run reached none of them: they were done already
                assert run.rc == 0, run.stderr
                if resets > 0:
                    resets -= 1
                    self.settle("delete", "--all", "--yes")
                    continue
                for guest, kind in left:
                    self.matrix.append((f"{guest} {kind}", mode, "not reached", "not reached"))
                return
            left.remove(run.aimed)
            ended = run.result is not None and not run.result.get("interrupted")
            if run.hit is None or ended:  # the run had finished when the signal went out
                assert run.result is not None and run.result["ok"], run.stderr
                landed = "after the run ended"
            else:
                self.check_signal_outcome(mode, run)
                landed = f"{run.hit[0]} {run.hit[1] or 'between steps'}"
            aimed = f"{run.aimed[0]} {run.aimed[1]}"
            self.matrix.append((aimed, mode, landed, "pending"))
        raise AssertionError(f"{mode}: could not aim at {left}")

    def check_signal_outcome(self, mode: str, run: Run) -> None:
        if mode == "sigint-group":
            assert run.rc in (130, 0), run.stderr  # 0: the run ended before the signal
            if run.rc == 130:
                assert run.result is not None and run.result["interrupted"] == "SIGINT"
        else:
            assert run.rc == -signal.SIGKILL, (run.rc, run.stderr)

    def settle(self, *args: str) -> None:
        """The run after the interruptions succeeds; the next changes nothing."""
        run = self.cli(*args)
        assert run.rc == 0 and not run.failures, run.stderr
        again = self.cli(*args)
        assert again.rc == 0 and again.result is not None, again.stderr
        assert again.result["done"] == [], f"a second run changed {again.result['done']}"
        self.matrix[:] = [
            (step, mode, landed, "recovered" if outcome == "pending" else outcome)
            for step, mode, landed, outcome in self.matrix
        ]


def healthy(driver: LxcDriver, ctid: int) -> None:
    res = driver.exec(ctid, ["phxt-healthy"], timeout=60)
    assert res.ok, f"guest {ctid} is not healthy: {res.stdout}{res.stderr}"
    audit = driver.exec(ctid, ["dpkg", "--audit"], timeout=60)
    assert audit.ok and audit.stdout.strip() == "", audit.stdout


def no_guest_dirs(host: LxcHost) -> list[str]:
    if not host.lxc_path.is_dir():
        return []
    return sorted(
        p.name
        for p in host.lxc_path.iterdir()
        if p.name[:1] in "0123456789." and p.name != OWNED_MARKER  # the marker is no guest
    )


@pytest.fixture(scope="module")
def crash_lab(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashLab]:
    root = tmp_path_factory.mktemp("crash")
    etc = root / "etc"
    (etc / "scripts").mkdir(parents=True)
    (etc / "scripts" / "crash_app.sh").write_text(APP_SH)
    lab = CrashLab(lxc_host, etc, lxc_host.state_dir)  # where the slot's `setup` record is
    lab.write()
    try:
        yield lab
    finally:
        lab.cli("delete", "--all", "--yes")


def test_every_interruption_resumes_without_a_hand(crash_lab: CrashLab) -> None:
    lab, driver = crash_lab, crash_lab.host.driver()
    started = time.monotonic()
    for mode in MODES:
        # a first converge (from nothing), interrupted at each kind of step
        lab.chain(mode, CONVERGE_STEPS, "LetsGo", resets=1)
        lab.settle("LetsGo")
        healthy(driver, CLONE)
        if mode == MODES[0]:
            drift_is_repaired_or_reported(lab, driver)
        # a configure (the clone's memory changes)
        lab.memory = 384 if lab.memory == 512 else 512
        lab.write()
        lab.chain(mode, [(CLONE, "configure")], "LetsGo")
        lab.settle("LetsGo")
        if mode == MODES[-1]:
            dpkg_is_repaired_by_the_next_recipe(driver, CLONE)
        # a delete, interrupted at each destroy; LetsGo makes the lab whole again from
        # what it left, and the next delete finishes
        lab.chain(mode, DELETE_STEPS, "delete", "--all", "--yes")
        lab.settle("LetsGo")
        healthy(driver, CLONE)
        lab.chain(mode, DELETE_STEPS, "delete", "--all", "--yes")
        lab.settle("delete", "--all", "--yes")
        assert no_guest_dirs(lab.host) == [], "an interrupted delete left guest dirs"
    seconds = time.monotonic() - started
    lines = [f"{'step':<22} {'mode':<13} {'signal landed in':<22} outcome"]
    lines += [f"{s:<22} {m:<13} {h:<22} {o}" for s, m, h, o in lab.matrix]
    lines.append(f"({seconds:.0f} s)")
    (lab.state / "crash-matrix.txt").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    steps = [f"{g} {k}" for g, k in [*CONVERGE_STEPS, (CLONE, "configure"), *DELETE_STEPS]]
    cells = [c for c in lab.matrix if c[0] != "drift"]
    assert matrix_problems(cells, steps, MODES) == [], lines
    assert [c[3] for c in lab.matrix if c[0] == "drift"] == ["recovered"], lines


def dpkg_is_repaired_by_the_next_recipe(driver: LxcDriver, ctid: int) -> None:
    """A dpkg killed by something else than Phoenix (or by an older Phoenix) is left
    half-configured ("dpkg was interrupted"); the next recipe starts by repairing it."""
    make_broken = (
        "set -e; work=$(mktemp -d); mkdir -p $work/DEBIAN; "
        "printf 'Package: phxt-slow\\nVersion: 1\\nArchitecture: all\\n"
        "Maintainer: t <root@localhost>\\nDescription: t\\n' > $work/DEBIAN/control; "
        "printf '#!/bin/sh\\n[ -e /tmp/phxt-fast ] || sleep 30\\n' > $work/DEBIAN/postinst; "
        "chmod 755 $work/DEBIAN/postinst; "
        "dpkg-deb --root-owner-group -b $work /tmp/s.deb >/dev/null; "
        "(setsid dpkg -i /tmp/s.deb >/dev/null 2>&1 &); sleep 3; pkill -9 -x dpkg; "
        "pkill -9 -x sleep || true; touch /tmp/phxt-fast"
    )
    assert driver.exec(ctid, ["sh", "-c", make_broken], timeout=120).ok
    audit = driver.exec(ctid, ["dpkg", "--audit"], timeout=60)
    assert "phxt-slow" in audit.stdout, f"the test did not break dpkg: {audit.stdout}"
    check = Bundle("phxt-check", "check.sh", b'#!/bin/sh\n[ -z "$(dpkg --audit)" ]\n')
    output = run_bundle(driver, ctid, check)
    assert "dpkg --configure -a" in output
    assert driver.exec(ctid, ["dpkg", "--audit"], timeout=60).stdout.strip() == ""


def drift_is_repaired_or_reported(lab: CrashLab, driver: LxcDriver) -> None:
    """Things changed by hand behind Phoenix's back, each followed by one `LetsGo`."""
    host = lab.host
    veth = lxcconf.veth_name(CLONE)

    def master() -> str | None:
        out = subprocess.run(
            ["ip", "-j", "link", "show", "dev", veth], capture_output=True, text=True, check=True
        ).stdout
        found = json.loads(out)[0].get("master")
        return None if found is None else str(found)

    def setup() -> None:  # what `phoenix setup` does for this slot
        gateway = ipaddress.IPv4Interface(f"{host.gateway}/{host.subnet.prefixlen}")
        HostSetup(LocalRunner(), host.state_dir, nat_table=host.nat_table).apply(
            [BridgeSpec(host.bridge, gateway)]
        )

    # the application's work undone: the health check fails, the application runs again
    assert driver.exec(CLONE, ["rm", "/var/lib/phxt-crash/app-ran"], timeout=30).ok
    run = lab.cli("LetsGo")
    assert run.rc == 0 and run.result is not None and run.result["done"] == [CLONE], run.stderr
    healthy(driver, CLONE)
    # the bridge deleted and made again: the running guests' veths hang on nothing
    subprocess.run(["ip", "link", "del", host.bridge], check=True)
    setup()
    assert master() is None
    run = lab.cli("LetsGo")
    assert run.rc == 0, run.stderr
    assert master() == host.bridge
    # the NAT table deleted: reported, with a non-zero exit, until `setup` restores it
    subprocess.run(["nft", "delete", "table", "ip", host.nat_table], check=True)
    run = lab.cli("LetsGo")
    assert run.rc == 1 and run.result is not None and "masquerade" in run.result["error"]
    setup()
    # the clone destroyed out of band: made again
    subprocess.run(
        ["lxc-destroy", "-P", str(host.lxc_path), "-n", str(CLONE), "-f"],
        check=True,
        capture_output=True,
    )
    run = lab.cli("LetsGo")
    assert run.rc == 0 and run.result is not None and CLONE in run.result["done"], run.stderr
    healthy(driver, CLONE)
    lab.matrix.append(("drift", "by hand", "health/bridge/NAT/guest", "pending"))

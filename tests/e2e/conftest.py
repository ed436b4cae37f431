"""Shared fixtures for end-to-end tests on real LXC (run as root; marked `e2e`).

Reuse them for converge and gateway tests:

- `lxc_host` (session): an isolated lab on this machine. It picks a free slot
  (`phxtbr0`..`phxtbr9` with subnet `10.213.(77+i).0/24`), checks that the subnet overlaps
  no host route, runs `HostSetup` for it (bridge with the gateway `.1`, NAT in an nft table
  `phoenix_nat_<bridge>`, ip_forward, subuid/subgid), and gives a dedicated LXC path, a
  firewall table `phoenix_fw_<bridge>` and the template cache the demo uses too
  (`/var/cache/phoenix/templates`, so `debootstrap:bookworm` is built once per machine).
  A host-wide file lock per slot lets concurrent test sessions use different slots. On
  exit (and before use, for leftovers of a crashed run) every container in the LXC path, the
  firewall table, the NAT table, the bridge, the subuid/subgid lines Phoenix added, LXC's
  lock dirs and the (then empty) `/var/lib/phoenix-test` are removed.
- `lxc_driver` (function): an `LxcDriver` on that lab with a fresh command log; every guest
  the test created is destroyed afterwards, even on failure.

Helpers on `LxcHost`: `address(n)` -> "10.213.77.n/24", `ip(n)`, `settings(hostname, n, ...)`
-> `GuestSettings` for a guest on the lab bridge, `driver()` -> a new `LxcDriver`.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import ipaddress
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout

from phoenix.drivers.base import GuestSettings, NetSettings
from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.lxc.hostprep import BridgeSpec, HostSetup, routes_overlapping
from phoenix.errors import DriverError
from phoenix.host.cleanup import mounts_below, remove_lab_files
from phoenix.runners.local import LocalRunner

TEST_ROOT = Path(os.environ.get("PHOENIX_TEST_ROOT", "/var/lib/phoenix-test"))
TEMPLATE_CACHE = Path(os.environ.get("PHOENIX_TEST_TEMPLATES", "/var/cache/phoenix/templates"))
LOCK_DIR = Path("/run/lock")
SLOTS = 10
TEMPLATE = "debootstrap:bookworm"


@dataclass(frozen=True)
class LxcHost:
    """An isolated lab: its own bridge, subnet, LXC path, nft tables and state dir."""

    bridge: str
    subnet: ipaddress.IPv4Network
    lxc_path: Path
    template_cache: Path
    state_dir: Path
    fw_table: str
    nat_table: str
    template: str = TEMPLATE

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def ip(self, n: int) -> str:
        return str(self.subnet.network_address + n)

    def address(self, n: int) -> str:
        return f"{self.ip(n)}/{self.subnet.prefixlen}"

    def settings(self, hostname: str, n: int, **overrides: Any) -> GuestSettings:
        """Settings for a small unprivileged guest at `.n` on the lab bridge."""
        base = GuestSettings(
            hostname=hostname,
            memory_mb=512,
            swap_mb=256,
            cores=1,
            disk_gb=4,
            storage="local",
            unprivileged=True,
            net=NetSettings("eth0", self.bridge, self.address(n), self.gateway, None),
        )
        return replace(base, **overrides)

    def driver(self) -> LxcDriver:
        return LxcDriver(
            self.lxc_path,
            self.template_cache,
            LocalRunner(),
            self.state_dir,
            fw_table=self.fw_table,
        )


@contextlib.contextmanager
def serve_directory(host: LxcHost, directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on the lab bridge's host address, where the guests reach
    it (stand-in release archives and wheels: no registry is reachable); yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host.gateway, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host.gateway}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def open_for_guests(directory: Path) -> Path:
    """What an administrator does before bind-mounting a folder from a private place into
    an unprivileged guest (pytest's temporary folders are 0700): let others pass through
    every directory above it. Phoenix opens only directories it made itself."""
    for parent in directory.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod((mode & 0o7777) | 0o001)
    return directory


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def _routes() -> str:
    return _run("ip", "-j", "-4", "route", "show", "table", "all").stdout


def clean_slot(host: LxcHost) -> None:
    """Remove everything a (possibly crashed) session left in this slot."""
    if host.lxc_path.is_dir():
        names = _run("lxc-ls", "-P", str(host.lxc_path), "-1").stdout.split()
        for name in names:
            _run("lxc-stop", "-P", str(host.lxc_path), "-n", name, "-k")
            _run("lxc-destroy", "-P", str(host.lxc_path), "-n", name, "-f", "-s")
        for leftover in host.lxc_path.glob("*/config"):  # not a container LXC can destroy
            leftover.unlink()
    if _run("nft", "list", "table", "bridge", host.fw_table).returncode == 0:
        _run("nft", "delete", "table", "bridge", host.fw_table)
    HostSetup(LocalRunner(), host.state_dir, nat_table=host.nat_table).teardown()
    # a crashed run may leave a guest's overlay mounted: this slot's own, so detach it
    for target in sorted(mounts_below(host.lxc_path, _mounts()), reverse=True):
        _run("umount", "-l", target)
    remove_lab_files(host.state_dir, host.lxc_path, mounts=_mounts())


def _mounts() -> str:
    return Path("/proc/self/mounts").read_text()


def _pick_slot() -> tuple[LxcHost, FileLock]:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for i in range(SLOTS):
        bridge = f"phxtbr{i}"
        lock = FileLock(str(LOCK_DIR / f"phoenix-test-{bridge}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        host = LxcHost(
            bridge=bridge,
            subnet=ipaddress.IPv4Network(f"10.213.{77 + i}.0/24"),
            lxc_path=TEST_ROOT / f"lxc-{bridge}",
            template_cache=TEMPLATE_CACHE,
            state_dir=TEST_ROOT / f"state-{bridge}",
            fw_table=f"phoenix_fw_{bridge}",
            nat_table=f"phoenix_nat_{bridge}",
        )
        clean_slot(host)
        if routes_overlapping(_routes(), host.subnet, ignore_dev=""):
            lock.release()
            continue
        return host, lock
    pytest.skip("no free phxtbr test slot (all locked or overlapping host routes)")


@pytest.fixture(scope="session")
def lxc_host() -> Iterator[LxcHost]:
    if os.geteuid() != 0:
        pytest.skip("LXC end-to-end tests need root")
    if shutil.which("lxc-start") is None or shutil.which("nft") is None:
        pytest.skip("lxc and nftables are required")
    host, lock = _pick_slot()
    try:
        setup = HostSetup(LocalRunner(), host.state_dir, nat_table=host.nat_table)
        gateway = ipaddress.IPv4Interface(f"{host.gateway}/{host.subnet.prefixlen}")
        setup.apply([BridgeSpec(host.bridge, gateway)])
        yield host
    finally:
        try:
            clean_slot(host)
        finally:
            lock.release()


def guest_names(host: LxcHost) -> set[str]:
    if not host.lxc_path.is_dir():
        return set()
    return set(_run("lxc-ls", "-P", str(host.lxc_path), "-1").stdout.split())


@pytest.fixture
def lxc_driver(lxc_host: LxcHost) -> Iterator[LxcDriver]:
    """A fresh driver; guests created during the test are destroyed afterwards."""
    before = guest_names(lxc_host)
    driver = lxc_host.driver()
    try:
        yield driver
    finally:
        destroy_guests(lxc_host.driver(), [int(n) for n in guest_names(lxc_host) - before])


def destroy_guests(driver: LxcDriver, ctids: list[int]) -> None:
    """Destroy guests, linked clones before the guests they are based on (a base is refused
    while clones use it), whatever the CTID order."""
    pending = sorted(ctids, reverse=True)
    while pending:
        refused: list[int] = []
        for ctid in pending:
            try:
                driver.destroy(ctid)
            except DriverError:
                refused.append(ctid)
        if len(refused) == len(pending):
            raise DriverError(f"cannot destroy guests {refused}: still in use")
        pending = refused


def nft_json(*argv: str) -> Any:
    return json.loads(_run("nft", "-j", *argv).stdout or "{}")

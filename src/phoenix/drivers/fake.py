"""FakeDriver: an in-memory Driver for unit tests of the planner and executor.

A TEST DOUBLE, never evidence that a feature works on a real host (see tests/e2e for that).
It keeps guests as data (state, settings, snapshots, a tiny file system), logs every call
in the `CommandLog` with the same kinds real drivers use ("observe", "mutate", "exec"),
records when each mutating call started and ended (`timeline`) and how many ran at once
(`max_active`), and understands exactly the in-guest commands of `phoenix.recipes.runner`
(marker read/write, bundle unpack/run/cleanup), handed in by the caller as `scripts`
(that module: a driver imports nothing of the recipe layer). Recipe scripts are "run" by
`script_handler`; other in-guest commands (health checks) by `exec_handler`.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from phoenix.drivers.base import (
    CommandLog,
    GuestSettings,
    GuestState,
    NetSettings,
    ObservedGuest,
)
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin, stdin_bytes


class GuestScripts(Protocol):
    """The in-guest commands of `phoenix.recipes.runner` the fake understands (the module
    itself has this shape and is what callers pass)."""

    MARKER_DIR: str
    READ_MARKERS: tuple[str, ...]
    UNPACK_SCRIPT: str
    START_SCRIPT: str
    RUN_SCRIPT: str
    WAIT_SCRIPT: str


ScriptHandler = Callable[[int, str, Mapping[str, str], Mapping[str, bytes]], CommandResult]
ExecHandler = Callable[[int, Sequence[str]], CommandResult]
MutateHook = Callable[[str, int], None]


def _ok_script(
    ctid: int, script: str, env: Mapping[str, str], files: Mapping[str, bytes]
) -> CommandResult:
    return CommandResult(0, f"{script}: done\n", "")


def _ok_exec(ctid: int, argv: Sequence[str]) -> CommandResult:
    return CommandResult(0, "", "")


@dataclass
class FakeGuest:
    state: GuestState
    settings: GuestSettings
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)
    is_template: bool = False
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class TimelineEntry:
    op: str
    ctid: int
    start: float
    end: float = 0.0


class FakeDriver:
    """In-memory guests; thread-safe; see the module docstring."""

    name = "fake"

    def __init__(
        self,
        scripts: GuestScripts,
        script_handler: ScriptHandler = _ok_script,
        exec_handler: ExecHandler = _ok_exec,
        on_mutate: MutateHook | None = None,
    ) -> None:
        self.scripts = scripts
        self.log = CommandLog()
        self.guests: dict[int, FakeGuest] = {}
        self.script_handler = script_handler
        self.exec_handler = exec_handler
        self.on_mutate = on_mutate
        self.timeline: list[TimelineEntry] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.RLock()
        self._macs = 0
        # Behave like a backend that only copies stopped guests (LXC's dir backend): a
        # running guest is stopped, snapshotted and started again, inside `snapshot`.
        self.snapshot_needs_stop = False
        # What an interrupted create or delete left of a missing guest (removed by the
        # next create/clone/destroy of it, as the LXC driver does).
        self.leftovers: dict[int, str] = {}

    # -- helpers ---------------------------------------------------------------------

    def add_guest(
        self,
        ctid: int,
        settings: GuestSettings,
        state: GuestState = "running",
        snapshots: Sequence[str] = (),
        markers: Mapping[str, str] | None = None,
        is_template: bool = False,
    ) -> FakeGuest:
        """Put a guest in place without logging (a recorded observed state)."""
        files = {f"{self.scripts.MARKER_DIR}/{k}": v.encode() for k, v in (markers or {}).items()}
        guest = FakeGuest(state, settings, {s: {} for s in snapshots}, is_template, files)
        self.guests[ctid] = guest
        return guest

    def markers(self, ctid: int) -> dict[str, str]:
        prefix = self.scripts.MARKER_DIR + "/"
        files = self.guests[ctid].files
        return {p[len(prefix) :]: v.decode() for p, v in files.items() if p.startswith(prefix)}

    def _guest(self, ctid: int) -> FakeGuest:
        guest = self.guests.get(ctid)
        if guest is None:
            raise DriverError(f"guest {ctid} does not exist")
        return guest

    def _mutate(self, op: str, ctid: int, *args: str) -> TimelineEntry:
        self.log.add("mutate", [op, str(ctid), *args])
        entry = TimelineEntry(op, ctid, time.monotonic())
        with self._lock:
            self.timeline.append(entry)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.on_mutate is not None:
                self.on_mutate(op, ctid)
        finally:
            with self._lock:
                self.active -= 1
            entry.end = time.monotonic()
        return entry

    def _assign_mac(self, settings: GuestSettings) -> GuestSettings:
        if settings.net is None or settings.net.mac is not None:
            return settings
        with self._lock:
            self._macs += 1
            n = self._macs
        mac = f"BC:24:11:00:{n // 256:02X}:{n % 256:02X}"
        net = NetSettings(
            settings.net.name, settings.net.bridge, settings.net.ip, settings.net.gw, mac
        )
        return dataclasses.replace(settings, net=net)

    # -- Driver ----------------------------------------------------------------------

    def observe(self, ctid: int) -> ObservedGuest:
        self.log.add("observe", ["observe", str(ctid)])
        with self._lock:
            guest = self.guests.get(ctid)
            if guest is None:
                return ObservedGuest(ctid, "missing", leftover=self.leftovers.get(ctid))
            ips: tuple[str, ...] = ()
            if guest.state == "running" and guest.settings.net is not None:
                ips = (guest.settings.net.ip.split("/")[0],)
            return ObservedGuest(
                ctid,
                guest.state,
                guest.settings,
                tuple(guest.snapshots),
                guest.is_template,
                None,
                ips,
            )

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        if ctid in self.guests:
            raise DriverError(f"guest {ctid} already exists")
        self.leftovers.pop(ctid, None)
        self._mutate("create", ctid, template)
        with self._lock:
            self.guests[ctid] = FakeGuest("stopped", self._assign_mac(settings))

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        src = self._guest(source)
        if ctid in self.guests:
            raise DriverError(f"guest {ctid} already exists")
        if snapshot is not None and snapshot not in src.snapshots:
            raise DriverError(f"guest {source} has no snapshot {snapshot!r}")
        if snapshot is None and not src.is_template:
            raise DriverError(f"guest {source} is not a template; name a snapshot")
        self._mutate("clone", ctid, str(source), snapshot or "")
        files = dict(src.snapshots[snapshot] if snapshot is not None else src.files)
        with self._lock:
            self.guests[ctid] = FakeGuest("stopped", self._assign_mac(settings), files=files)

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        guest = self._guest(ctid)
        self._mutate("configure", ctid, *sorted(changed))
        with self._lock:
            values = {name: getattr(settings, name) for name in changed}
            guest.settings = self._assign_mac(dataclasses.replace(guest.settings, **values))

    def resize(self, ctid: int, disk_gb: int) -> None:
        guest = self._guest(ctid)
        if disk_gb < guest.settings.disk_gb:
            raise DriverError(f"guest {ctid}: cannot shrink the disk")
        self._mutate("resize", ctid, str(disk_gb))
        with self._lock:
            guest.settings = dataclasses.replace(guest.settings, disk_gb=disk_gb)

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        guest = self._guest(ctid)
        if guest.is_template:
            raise DriverError(f"guest {ctid} is a template and cannot be started")
        if guest.state == "running":
            return
        self._mutate("start", ctid)
        guest.state = "running"

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        guest = self._guest(ctid)
        if guest.state != "running":
            return
        self._mutate("stop", ctid)
        guest.state = "stopped"

    def destroy(self, ctid: int) -> None:
        if self.leftovers.pop(ctid, None) is not None:
            self._mutate("remove-leftover", ctid)
        if ctid not in self.guests:
            return
        self._mutate("destroy", ctid)
        with self._lock:
            del self.guests[ctid]

    def snapshot(self, ctid: int, name: str) -> None:
        guest = self._guest(ctid)
        if self.snapshot_needs_stop and guest.state == "running":
            self.stop(ctid)
            try:
                self.snapshot(ctid, name)
            finally:
                self.start(ctid)
            return
        self._mutate("snapshot", ctid, name)
        guest.snapshots[name] = dict(guest.files)

    def list_snapshots(self, ctid: int) -> list[str]:
        self.log.add("observe", ["list_snapshots", str(ctid)])
        return list(self._guest(ctid).snapshots)

    def mark_template(self, ctid: int) -> None:
        guest = self._guest(ctid)
        if guest.state == "running":
            raise DriverError(f"guest {ctid} must be stopped to become a template")
        self._mutate("mark_template", ctid)
        guest.is_template = True

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        guest = self._guest(ctid)
        if guest.state != "running":
            raise DriverError(f"guest {ctid} is not running")
        self.log.add("exec", argv)
        argv = list(argv)
        scripts = self.scripts
        if tuple(argv) == scripts.READ_MARKERS:
            lines = [
                f"{k}:{v.decode()}"
                for k, v in sorted(guest.files.items())
                if k.startswith(scripts.MARKER_DIR + "/")
            ]
            return CommandResult(0 if lines else 1, "".join(x + "\n" for x in lines), "")
        if argv[:3] == ["sh", "-c", scripts.UNPACK_SCRIPT]:
            run_dir = argv[4]
            self._mutate("push", ctid, run_dir)
            with tarfile.open(fileobj=io.BytesIO(stdin_bytes(stdin)), mode="r:gz") as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    guest.files[f"{run_dir}/{member.name}"] = extracted.read()
            return CommandResult(0, "", "")
        if argv[:3] == ["sh", "-c", scripts.START_SCRIPT] and argv[-1] == scripts.RUN_SCRIPT:
            # the recipe "runs detached": here at once; WAIT then reports its exit code
            run_dir, script, marker_dir, digest, marker, state = argv[4:10]
            prefix = run_dir + "/"
            files = {p[len(prefix) :]: v for p, v in guest.files.items() if p.startswith(prefix)}
            result = self.script_handler(ctid, script, dict(env or {}), files)
            for path in [p for p in guest.files if p.startswith(prefix)]:
                del guest.files[path]
            if result.returncode == 0:
                guest.files[f"{marker_dir}/{marker}"] = digest.encode()
            log = result.stdout + result.stderr
            guest.files[f"{state}/rc"] = f"{result.returncode}\n{log}".encode()
            return CommandResult(0, "", "")
        if argv[:3] == ["sh", "-c", scripts.WAIT_SCRIPT]:
            finished = guest.files.get(f"{argv[4]}/rc")
            if finished is None:
                return CommandResult(3, "", "")
            return CommandResult(0, finished.decode(), "")
        if argv[:2] == ["rm", "-rf"]:
            for target in argv[2:]:
                for path in [p for p in guest.files if p == target or p.startswith(target + "/")]:
                    del guest.files[path]
            return CommandResult(0, "", "")
        return self.exec_handler(ctid, argv)

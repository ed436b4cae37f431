"""Local VMs as supervised QEMU processes: disks, seeds, power and exec.

Each VM has a folder under the VM root (`<root>/<vmid>/`): its qcow2 disk, its cloud-init
seed, and while it runs QEMU's pidfile, QMP and guest-agent sockets and the serial
console's log. A VM runs as a daemonized QEMU whose command line names it
(`process=phoenix-vm-<vmid>`), so a pid is only believed when /proc says it is that VM's
QEMU (no systemd is needed, and a reused pid is never taken for the VM).

Templates are read-only disks; a linked clone is a qcow2 overlay on its source's disk
(0.03 s here), a full clone a copy. Snapshots are qcow2 internal snapshots of a stopped
disk. Exec goes through qemu-guest-agent, so the same recipes run in VMs as in
containers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.drivers.base import CommandLog
from phoenix.drivers.qemu.cloudinit import (
    SEED_FILES,
    SeedSpec,
    seed_digest,
    seed_files,
    seed_image_argv,
)
from phoenix.drivers.qemu.machine import Accel, Machine, VmPaths, qemu_argv, tap_name
from phoenix.drivers.qemu.qmp import GuestAgent, Qmp
from phoenix.errors import DriverError
from phoenix.runners.base import TIMED_OUT, CommandResult, Runner, Stdin, stdin_bytes

TEMPLATE_MARK = "template"
# A VM outlives the run that starts it: its QEMU must not carry the run's tag, or the next
# run would end it as a child a killed run left behind (see `phoenix.plan.reaper`).
UNTAGGED = {"PHOENIX_RUN": ""}
SEED_DIGEST = "seed.digest"
GIB = 1024**3


@dataclass(frozen=True)
class VmHardware:
    """What QEMU is started with; the disk's size is set at create/resize time."""

    cores: int
    memory_mb: int
    mac: str
    bridge: str | None


class LocalVms:
    """The VMs of one Phoenix lab on this host."""

    def __init__(
        self, root: Path, runner: Runner, accel: Accel, log: CommandLog | None = None
    ) -> None:
        self.root = root
        self.runner = runner
        self.accel = accel
        self.log = log or CommandLog()

    def paths(self, vmid: int) -> VmPaths:
        return VmPaths(self.root / str(vmid))

    # -- what is there ----------------------------------------------------------------

    def exists(self, vmid: int) -> bool:
        return self.paths(vmid).disk.is_file()

    def is_template(self, vmid: int) -> bool:
        return (self.paths(vmid).root / TEMPLATE_MARK).is_file()

    def pid(self, vmid: int) -> int | None:
        """The pid of this VM's QEMU, only when /proc confirms it is that process."""
        try:
            pid = int(self.paths(vmid).pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        wanted = f"vm{vmid},process=phoenix-vm-{vmid}".encode()
        return pid if wanted in cmdline else None

    def running(self, vmid: int) -> bool:
        return self.pid(vmid) is not None

    def disk_gb(self, vmid: int) -> int:
        info = self._img_info(self.paths(vmid).disk)
        return int(info["virtual-size"]) // GIB

    def backing_file(self, vmid: int) -> Path | None:
        """The disk a linked clone's overlay builds on; None for a full disk."""
        backing = self._img_info(self.paths(vmid).disk).get("backing-filename")
        return None if backing is None else Path(backing)

    def snapshots(self, vmid: int) -> list[str]:
        info = self._img_info(self.paths(vmid).disk)
        return [s["name"] for s in info.get("snapshots", [])]

    def _img_info(self, disk: Path) -> dict[str, Any]:
        out = self._run(["qemu-img", "info", "-U", "--output=json", str(disk)], "reading disk")
        value = json.loads(out.stdout)
        if not isinstance(value, dict):
            raise DriverError(f"qemu-img info {disk}: unexpected output")
        return value

    # -- disks ------------------------------------------------------------------------

    def create(self, vmid: int, image: Path, disk_gb: int | None) -> None:
        """A VM whose disk is a full copy of `image` (never linked to a cache file that a
        purge could remove), grown to `disk_gb` when given."""
        paths = self._fresh(vmid)
        partial = paths.root / "disk.partial"
        self._run(["qemu-img", "convert", "-O", "qcow2", str(image), str(partial)], "copying image")
        partial.rename(paths.disk)
        if disk_gb is not None:
            self.resize(vmid, disk_gb)

    def clone(
        self,
        source: int,
        vmid: int,
        linked: bool,
        disk_gb: int | None,
        snapshot: str | None = None,
    ) -> None:
        """A linked clone (overlay on the source's disk) or a full copy, of a stopped
        source (at `snapshot` when given: a copy); linked clones need a template (its disk
        never changes again)."""
        src = self.paths(source).disk
        if not src.is_file():
            raise DriverError(f"VM {vmid}: clone source {source} does not exist")
        if self.running(source) and snapshot is None:
            raise DriverError(f"VM {vmid}: clone source {source} is running; stop it first")
        if linked and snapshot is None and not self.is_template(source):
            raise DriverError(f"VM {vmid}: a linked clone needs a template; {source} is not one")
        paths = self._fresh(vmid)
        partial = paths.root / "disk.partial"
        if linked and snapshot is None:
            argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(src)]
            self._run([*argv, str(partial)], "making the linked clone")
        elif snapshot is not None:
            at = f"snapshot.name={snapshot}"
            argv = ["qemu-img", "convert", "-U", "-l", at, "-O", "qcow2", str(src), str(partial)]
            self._run(argv, f"copying the disk at snapshot {snapshot}")
        else:
            self._run(
                ["qemu-img", "convert", "-O", "qcow2", str(src), str(partial)], "copying the disk"
            )
        partial.rename(paths.disk)
        if disk_gb is not None:
            self.resize(vmid, disk_gb)

    def resize(self, vmid: int, disk_gb: int) -> None:
        """Grow the disk (never shrink); cloud-init's growpart grows the root at boot."""
        current = self.disk_gb(vmid)
        if disk_gb < current:
            raise DriverError(f"VM {vmid}: disk is {current} GiB; it can only grow")
        if disk_gb > current:
            self._run(
                ["qemu-img", "resize", "-q", str(self.paths(vmid).disk), f"{disk_gb}G"],
                "growing the disk",
            )

    def _fresh(self, vmid: int) -> VmPaths:
        paths = self.paths(vmid)
        if paths.disk.exists():
            raise DriverError(f"VM {vmid} already exists ({paths.root})")
        paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (paths.root / "disk.partial").unlink(missing_ok=True)
        return paths

    def write_seed(self, vmid: int, spec: SeedSpec) -> bool:
        """The cloud-init seed; rebuilt only when its content changes. True when it did."""
        paths = self.paths(vmid)
        files = seed_files(spec)
        digest = seed_digest(files)
        mark = paths.root / SEED_DIGEST
        if paths.seed.is_file() and mark.is_file() and mark.read_text() == digest:
            return False
        staging = paths.root / "seed.d"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in SEED_FILES:
            (staging / name).write_bytes(files[name])
        partial = paths.root / "seed.partial"
        partial.unlink(missing_ok=True)
        for argv in seed_image_argv(partial, [staging / n for n in SEED_FILES]):
            self._run(argv, "building the cloud-init seed")
        partial.rename(paths.seed)
        self.log.file("write", mark)
        mark.write_text(digest)
        shutil.rmtree(staging)
        return True

    def snapshot(self, vmid: int, name: str) -> None:
        """A qcow2 internal snapshot of the stopped disk (nothing when it exists)."""
        if name in self.snapshots(vmid):
            return
        if self.running(vmid):
            raise DriverError(f"VM {vmid}: snapshots are taken of a stopped VM")
        self._run(
            ["qemu-img", "snapshot", "-c", name, str(self.paths(vmid).disk)], "taking a snapshot"
        )

    def snapshot_running(self, vmid: int, name: str) -> None:
        """An internal snapshot of a running VM, its memory with its disk (`savevm`): the
        guest pauses while it is written and runs on, no reboot (nothing when it exists)."""
        if name in self.snapshots(vmid):
            return
        self.log.add("mutate", ["qmp", str(vmid), "savevm", name])
        with Qmp(self.paths(vmid).qmp, timeout=600) as qmp:
            said = qmp.command("human-monitor-command", **{"command-line": f"savevm {name}"})
        if isinstance(said, str) and said.strip():
            raise DriverError(f"VM {vmid}: snapshot {name}: {said.strip()[-300:]}")

    def mark_template(self, vmid: int) -> None:
        """A template's disk is read-only from now on: its linked clones build on it."""
        if self.running(vmid):
            raise DriverError(f"VM {vmid}: a running VM cannot become a template")
        self.paths(vmid).disk.chmod(0o444)
        self.log.file("write", self.paths(vmid).root / TEMPLATE_MARK)
        (self.paths(vmid).root / TEMPLATE_MARK).write_text("")

    # -- power ------------------------------------------------------------------------

    def start(self, vmid: int, hw: VmHardware, timeout: float = 30.0) -> None:
        """Start QEMU (nothing when it runs); returns once its QMP socket answers."""
        if self.running(vmid):
            return
        if self.is_template(vmid):
            raise DriverError(f"VM {vmid} is a template; clone it to run it")
        paths = self.paths(vmid)
        for stale in (paths.pidfile, paths.qmp, paths.agent):
            stale.unlink(missing_ok=True)
        tap = None
        if hw.bridge is not None:
            tap = tap_name(vmid)
            self._tap_up(tap, hw.bridge)
        machine = Machine(vmid, hw.cores, hw.memory_mb, hw.mac, paths, tap, self.accel)
        try:
            self._run(qemu_argv(machine), "starting QEMU", env=UNTAGGED)
        except DriverError:
            self._cleanup(vmid)  # no tap left on the bridge for a VM that never ran
            raise
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Qmp(paths.qmp) as qmp:
                    qmp.command("query-status")
                return
            except DriverError:
                if time.monotonic() > deadline:
                    raise DriverError(f"VM {vmid}: QEMU started but QMP never answered") from None
                time.sleep(0.1)

    def _tap_up(self, tap: str, bridge: str) -> None:
        if not Path(f"/sys/class/net/{tap}").exists():
            self._run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], "making the tap")
        self._run(["ip", "link", "set", "dev", tap, "master", bridge, "up"], "plugging the tap")

    def shutdown(self, vmid: int, timeout: float = 60.0) -> bool:
        """Ask the guest to power off (ACPI button), wait up to `timeout`, then stop it
        hard. True when it went down by itself."""
        if not self.running(vmid):
            self._cleanup(vmid)
            return True
        try:
            with Qmp(self.paths(vmid).qmp) as qmp:
                qmp.command("system_powerdown")
        except DriverError:
            pass
        if self._wait_gone(vmid, timeout):
            self._cleanup(vmid)
            return True
        self.stop(vmid)
        return False

    def stop(self, vmid: int) -> None:
        """Stop at once (QMP `quit`, else SIGKILL); nothing when it is not running."""
        pid = self.pid(vmid)
        if pid is not None:
            try:
                with Qmp(self.paths(vmid).qmp, timeout=3) as qmp:
                    qmp.command("quit")
            except DriverError:
                pass
            if not self._wait_gone(vmid, 5):
                os.kill(pid, signal.SIGKILL)
                self._wait_gone(vmid, 10)
        self._cleanup(vmid)

    def _wait_gone(self, vmid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running(vmid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _cleanup(self, vmid: int) -> None:
        paths = self.paths(vmid)
        for stale in (paths.pidfile, paths.qmp, paths.agent):
            stale.unlink(missing_ok=True)
        tap = tap_name(vmid)
        if Path(f"/sys/class/net/{tap}").exists():
            argv = ["ip", "link", "del", "dev", tap]
            self.log.add("mutate", argv)
            self.runner.run(argv, timeout=30)

    def delete(self, vmid: int) -> None:
        """Stop and remove the VM's folder (its disk, seed, logs); nothing when absent."""
        self.stop(vmid)
        if self.paths(vmid).root.exists():
            self.log.file("remove", self.paths(vmid).root)
            shutil.rmtree(self.paths(vmid).root, ignore_errors=True)

    # -- inside the guest ---------------------------------------------------------------

    def wait_agent(self, vmid: int, timeout: float = 300.0) -> float:
        """Until the guest agent answers; returns the seconds waited."""
        started = time.monotonic()
        while True:
            try:
                with GuestAgent(self.paths(vmid).agent, timeout=2) as agent:
                    agent.command("guest-ping")
                return time.monotonic() - started
            except DriverError:
                if not self.running(vmid):
                    raise DriverError(
                        f"VM {vmid} stopped while booting (console: {self.paths(vmid).console})"
                    ) from None
                if time.monotonic() - started > timeout:
                    raise DriverError(
                        f"VM {vmid}: no guest agent after {timeout:.0f}s "
                        f"(console: {self.paths(vmid).console})"
                    ) from None
                time.sleep(1)

    def exec(
        self,
        vmid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv in the VM through its guest agent (no shell unless argv asks for one).
        124 when it ran past `timeout`, as for a runner."""
        command = list(argv)
        if env:
            command = ["env", *(f"{k}={v}" for k, v in env.items()), *command]
        data = None if stdin is None else stdin_bytes(stdin)
        self.log.add("exec", argv)
        try:
            with GuestAgent(self.paths(vmid).agent, timeout=30) as agent:
                done = agent.exec(command, data, timeout)
        except DriverError as exc:
            if "still running" in str(exc):
                return CommandResult(TIMED_OUT, "", str(exc), tuple(argv))
            raise DriverError(f"VM {vmid}: exec {argv[0]}: {exc}") from None
        return CommandResult(
            done.exitcode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
            tuple(argv),
        )

    # -- helpers ----------------------------------------------------------------------

    def _run(
        self, argv: Sequence[str], what: str, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        self.log.add("observe" if list(argv[:2]) == ["qemu-img", "info"] else "mutate", argv)
        result = self.runner.run(argv, timeout=600, env=env)
        if not result.ok:
            tail = (result.stderr or result.stdout).strip()[-400:]
            raise DriverError(f"{what}: {argv[0]} failed (exit {result.returncode}): {tail}")
        return result

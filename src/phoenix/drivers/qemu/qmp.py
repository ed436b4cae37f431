"""The two JSON sockets of a QEMU VM: QMP (the machine: status, power button, quit) and
the guest agent (inside the VM: ping, exec, files, shutdown).

Both speak one JSON object per line. QMP greets and wants `qmp_capabilities` first, and
interleaves events with answers; the agent has no session, so a stale answer from an
earlier client may still be in the pipe: `guest-sync-delimited` with a fresh id, and
everything before its answer is discarded (QEMU's documented way in).
"""

from __future__ import annotations

import base64
import json
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.errors import DriverError

# guest-exec returns output base64-encoded and capped by the agent at 16 MiB.
POLL_INTERVAL = 0.05


class _Lines:
    """A unix socket read as JSON lines, with a deadline per read."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise DriverError(f"cannot connect to {path}: {exc}") from exc
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise DriverError("no answer from the VM's socket in time") from None
            if not chunk:
                raise DriverError("the VM's socket closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        line = line.strip(b"\xff").strip()
        if not line:
            return self.receive()
        try:
            value = json.loads(line)
        except ValueError:
            return self.receive()  # the tail of a line cut by a sync's 0xFF
        return value if isinstance(value, dict) else {}

    def close(self) -> None:
        self.sock.close()


def _answer(reply: dict[str, Any], command: str) -> Any:
    if "error" in reply:
        error = reply["error"]
        raise DriverError(f"{command}: {error.get('class', 'error')}: {error.get('desc', error)}")
    return reply.get("return")


class Qmp:
    """A QMP session: `Qmp(path).command("query-status")`."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.lines = _Lines(path, timeout)
        try:
            self.lines.receive()  # the greeting
            self.command("qmp_capabilities")
        except BaseException:
            self.lines.close()
            raise

    def command(self, name: str, **arguments: Any) -> Any:
        message: dict[str, Any] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self.lines.send(message)
        while True:
            reply = self.lines.receive()
            if "event" not in reply:
                return _answer(reply, name)

    def close(self) -> None:
        self.lines.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class ExecResult:
    exitcode: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False


class GuestAgent:
    """qemu-guest-agent over its virtio-serial socket."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.lines = _Lines(path, timeout)
        try:
            self._sync()
        except BaseException:
            self.lines.close()
            raise

    def _sync(self) -> None:
        token = random.randrange(1, 2**31)
        self.lines.send_raw(b"\xff")
        self.lines.send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
        while self.lines.receive().get("return") != token:
            pass

    def command(self, name: str, **arguments: Any) -> Any:
        message: dict[str, Any] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self.lines.send(message)
        return _answer(self.lines.receive(), name)

    def exec(
        self, argv: list[str], input: bytes | None = None, timeout: float | None = None
    ) -> ExecResult:
        """Run argv in the guest (no shell), `input` on its stdin; wait for it to end."""
        args: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode()
        pid = self.command("guest-exec", **args)["pid"]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.command("guest-exec-status", pid=pid)
            if status.get("exited"):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise DriverError(f"{argv[0]} still running in the VM after {timeout:.0f}s")
            time.sleep(POLL_INTERVAL)
        return ExecResult(
            # Killed by a signal: no exitcode, the signal instead (a shell's 128 + N).
            exitcode=int(status["exitcode"] if "exitcode" in status else 128 + status["signal"]),
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
            truncated=bool(status.get("out-truncated") or status.get("err-truncated")),
        )

    def close(self) -> None:
        self.lines.close()

    def __enter__(self) -> GuestAgent:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

"""The guest agent's wire protocol against a scripted peer on a real unix socket: a stale
answer left by an earlier client is skipped by the sync, exec output is decoded, a
command killed by a signal reads as 128 + N, and an agent error names the command."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from phoenix.drivers.qemu.qmp import GuestAgent, Qmp
from phoenix.errors import DriverError

Reply = Callable[[dict[str, object]], list[dict[str, object]]]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Callable[[Reply, bytes], Path]]:
    servers: list[socket.socket] = []

    def start(reply: Reply, greeting: bytes = b"") -> Path:
        path = tmp_path / f"s{len(servers)}.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(1)
        servers.append(server)

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(greeting)
                buffer = b""
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                    while b"\n" in buffer:
                        line, _, buffer = buffer.partition(b"\n")
                        line = line.lstrip(b"\xff")
                        for answer in reply(json.loads(line)):
                            conn.sendall(json.dumps(answer).encode() + b"\n")

        threading.Thread(target=serve, daemon=True).start()
        return path

    yield start
    for server in servers:
        server.close()


def _agent(message: dict[str, object]) -> list[dict[str, object]]:
    name = message["execute"]
    args = message.get("arguments", {})
    assert isinstance(args, dict)
    if name == "guest-sync-delimited":
        # An earlier client's answer still in the pipe, then ours.
        return [{"return": {"pid": 1}}, {"return": 12345}, {"return": args["id"]}]
    if name == "guest-exec":
        assert args["path"] == "sh" and args["arg"] == ["-c", "cat; exit 3"]
        assert base64.b64decode(str(args["input-data"])) == b"hello"
        return [{"return": {"pid": 77}}]
    if name == "guest-exec-status":
        out = base64.b64encode(b"hello").decode()
        return [{"return": {"exited": True, "exitcode": 3, "out-data": out}}]
    if name == "guest-ping":
        return [{"error": {"class": "GenericError", "desc": "not yet"}}]
    return [{"return": {}}]


def test_sync_skips_stale_answers_and_exec_decodes_output(
    peer: Callable[[Reply, bytes], Path],
) -> None:
    with GuestAgent(peer(_agent, b"")) as agent:
        done = agent.exec(["sh", "-c", "cat; exit 3"], b"hello")
    assert (done.exitcode, done.stdout, done.stderr) == (3, b"hello", b"")


def test_agent_errors_name_the_command(peer: Callable[[Reply, bytes], Path]) -> None:
    with GuestAgent(peer(_agent, b"")) as agent, pytest.raises(DriverError) as err:
        agent.command("guest-ping")
    assert "guest-ping: GenericError: not yet" in str(err.value)


def test_a_signal_reads_as_128_plus_n(peer: Callable[[Reply, bytes], Path]) -> None:
    def killed(message: dict[str, object]) -> list[dict[str, object]]:
        if message["execute"] == "guest-exec-status":
            return [{"return": {"exited": True, "signal": 9}}]
        return _agent(message)

    with GuestAgent(peer(killed, b"")) as agent:
        assert agent.exec(["sh", "-c", "cat; exit 3"], b"hello").exitcode == 137


def test_qmp_negotiates_and_skips_events(peer: Callable[[Reply, bytes], Path]) -> None:
    def qmp(message: dict[str, object]) -> list[dict[str, object]]:
        if message["execute"] == "query-status":
            return [{"event": "RESUME"}, {"return": {"status": "running", "running": True}}]
        assert message["execute"] == "qmp_capabilities"
        return [{"return": {}}]

    greeting = json.dumps({"QMP": {"version": {}, "capabilities": []}}).encode() + b"\n"
    with Qmp(peer(qmp, greeting)) as session:
        assert session.command("query-status")["status"] == "running"


def test_no_socket_is_a_driver_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="cannot connect"):
        GuestAgent(tmp_path / "absent.sock")

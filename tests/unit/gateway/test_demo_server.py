"""The demo model server answers a request on a kept-alive connection without waiting
on the client's delayed ACK (headers and body are two writes; with Nagle on, the body
waited ~40 ms for the ACK of the headers, which ate most of the lab's 100 ms failover
budget)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest

from phoenix.demo.model_server import DemoConfig, serve


@pytest.fixture
def port() -> Iterator[int]:
    server = serve("127.0.0.1", 0, DemoConfig("demo-chat", "unit", 3, 0.0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_answers_on_a_kept_alive_connection_without_a_delayed_ack_wait(port: int) -> None:
    body = json.dumps({"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    times = []
    try:
        for _ in range(6):
            start = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["backend"] == "unit"
            times.append(time.perf_counter() - start)
    finally:
        conn.close()
    # A delayed ACK is at least 40 ms on Linux; an answer from a stdlib server takes ~1 ms.
    assert sorted(times)[len(times) // 2] < 0.02, times

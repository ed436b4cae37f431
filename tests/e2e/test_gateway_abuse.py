"""The rendered gateway under abuse, on a real nginx + njs on loopback (bounded in count and
time): what a hostile or merely busy client can do must not take a worker down, nor get a
key past its models.

A gateway of two workers with API keys, in front of one demo model server ("alpha") and a
backend that reads bodies as Python's json does (the last of a repeated key wins, as in
Ollama's Go decoder), serving both "solo" and "shared" and recording the model each
request was served as; deployed by the real setup script (see test_gateway_host.py).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from phoenix.gateway.keys import key_hash, new_key
from phoenix.inventory import load_inventory
from tests.e2e.test_gateway_host import Lab, free_port, settle, stop_nginx, wait_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx + njs"),
    pytest.mark.timeout(300),
]


KEYS = {"solo-only": new_key(), "all": new_key(), "operator": new_key()}


class LastValueBackend:
    """A model server that serves whatever model the body's last `model` key names (as
    json.loads reads it) and records it: what a multi-model backend would really serve."""

    def __init__(self, hosts: tuple[str, ...], port: int) -> None:
        self.served: list[str] = []
        self.authorization: list[str | None] = []
        served, authorization = self.served, self.authorization

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                served.append(str(body.get("model")))
                authorization.append(self.headers.get("Authorization"))
                reply = json.dumps({"served": served[-1]}).encode()
                # {"fail": STATUS}: the server's own JSON error (as vLLM answers a bad request)
                if "fail" in body:
                    reply = json.dumps({"error": {"message": "own", "code": "own"}}).encode()
                self.send_response(int(body.get("fail", 200)))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.servers = [http.server.ThreadingHTTPServer((h, port), Handler) for h in hosts]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _inventory(etc: Path, ports: dict[str, int]) -> None:
    def guest(name: str, ip: str, **extra: object) -> dict[str, object]:
        return {
            "name": name,
            "network_config": {"name": "eth0", "bridge": "phxtbr0", "ip": f"{ip}/8"},
            **extra,
        }

    def vllm(model: str) -> dict[str, object]:
        return {"ServerConfig": {"port": ports["model"], "served_model_name": model}}

    configs = {
        "101": guest(
            "phxt-gw",
            "127.0.0.1",
            gateway={
                "http_port": ports["http"],
                "https_port": ports["https"],
                "max_body_mb": 8,
                "tls": False,
                "path_routes": [{"path": "/solo-direct", "ctid": 202, "port": ports["model"]}],
                "status_allow": ["127.0.0.1/32"],
                "operator_keys": [{"name": "prom", "sha256": key_hash(KEYS["operator"])}],
                "api_keys": [
                    {
                        "name": "solo-only",
                        "sha256": key_hash(KEYS["solo-only"]),
                        "models": ["solo"],
                    },
                    {"name": "all", "sha256": key_hash(KEYS["all"])},
                ],
            },
        ),
        "201": guest("phxt-m1", "127.0.0.2", vllm_engine_config=vllm("alpha")),
        "202": guest("phxt-solo", "127.0.0.3", vllm_engine_config=vllm("solo")),
        "203": guest("phxt-shared", "127.0.0.4", vllm_engine_config=vllm("shared")),
    }
    etc.mkdir(parents=True)
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("phxt-abuse")
    ports = {"http": free_port(), "https": free_port(), "model": free_port(), "app": free_port()}
    _inventory(tmp / "etc", ports)
    (tmp / "run").mkdir()
    lab = Lab(
        tmp,
        load_inventory(tmp / "etc"),
        ports["http"],
        ports["https"],
        ports["model"],
        ports["app"],
        tmp / "state",
    )
    lab.log_dir.mkdir(parents=True)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "phoenix.demo.model_server", "--host", "127.0.0.2"),
            *("--port", str(ports["model"]), "--model", "alpha", "--backend-id", "m1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    backend = LastValueBackend(("127.0.0.3", "127.0.0.4"), ports["model"])
    try:
        wait_port("127.0.0.2", ports["model"])
        run_dir = tmp / "phoenix_run"
        lab.render(run_dir)
        result = lab.deploy(run_dir, soft_nofile=1024)
        assert result.returncode == 0, result.stdout + result.stderr
        lab.recorder = backend  # type: ignore[assignment]
        yield lab
    finally:
        backend.close()
        stop_nginx(lab)
        server.terminate()
        server.wait(timeout=10)


def workers(lab: Lab) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(lab.master_pid())], capture_output=True, text=True, check=True
    ).stdout
    return sorted(int(p) for p in out.split())


def post(
    lab: Lab, body: object, key: str = "all", path: str = "/v1/chat/completions"
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEYS[key]}"}
    return httpx.post(lab.base + path, content=content, headers=headers, timeout=30)


def peak_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM), KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1))


CHAT = "/v1/chat/completions"


def wrk_posts(lab: Lab, tmp: Path, body: str, total: int, connections: int = 16) -> int:
    """POST `body` to the chat endpoint until `total` requests were answered (two wrk
    threads stop at half each); the number wrk counted."""
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEYS["all"]}"\n'
        "local n = 0\n"
        "function response(status, headers, body)\n"
        f"  n = n + 1\n  if n >= {total // 2} then wrk.thread:stop() end\n"
        "end\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", "-d120s", "-s", str(script), lab.base + CHAT],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    match = re.search(r"(\d+) requests in", out)
    assert match, out
    return int(match.group(1))


# What one metrics read may add to a worker's peak memory, whatever the traffic since the
# last read (the old reader grew ~130 KB a logged request and was killed at 5,000).
METRICS_READ_BOUND_KIB = 16 * 1024


def test_a_metrics_read_after_50000_requests_stays_within_its_memory_bound(
    gw: Lab, tmp_path: Path
) -> None:
    httpx.get(gw.base + "/metrics", timeout=10)  # counted up to now
    before_pids = workers(gw)
    counted = wrk_posts(gw, tmp_path, json.dumps({"model": "nope", "messages": []}), 50_000)
    assert counted >= 50_000
    settle()
    peaks = {pid: peak_kib(pid) for pid in before_pids}
    start = time.monotonic()
    text = httpx.get(gw.base + "/metrics", timeout=60).text
    took = time.monotonic() - start
    grown = {pid: peak_kib(pid) - peaks[pid] for pid in before_pids}
    assert workers(gw) == before_pids  # no worker died
    assert max(grown.values()) <= METRICS_READ_BOUND_KIB, grown
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    # Every request was counted (wrk stops with a few still in flight: nginx logs them too).
    nope = float(samples['phoenix_gateway_requests_total{model="",status="404"}'])
    assert counted <= nope <= counted + 2 * 16 + 10
    assert samples["phoenix_gateway_metrics_pending_bytes"] == "0"
    print(f"metrics read after {counted} requests: {took:.2f} s, peak growth {grown} KiB")


def test_a_read_counts_on_from_a_checkpoint_it_cannot_parse(gw: Lab) -> None:
    """A damaged checkpoint (a read cut short mid-write, a full disk) restarts the count
    from the log rather than failing every later read."""
    httpx.get(gw.base + "/phoenix/status", timeout=10)
    checkpoint = Path(gw.layout().metrics_dir) / "checkpoint.json"
    assert checkpoint.exists()
    checkpoint.write_text('{"v": 2, "ino": ')
    for _ in range(3):
        post(gw, {"model": "alpha", "messages": []})
    settle()
    first = httpx.get(gw.base + "/phoenix/status", timeout=30)
    assert first.status_code == 200, first.text
    again = httpx.get(gw.base + "/phoenix/status", timeout=30).json()
    assert again["requests"] == first.json()["requests"]
    assert again["metrics_pending_bytes"] == 0
    alpha = next(m for m in again["models"] if m["id"] == "alpha")
    assert alpha["requests"]["2xx"] >= 3
    assert json.loads(checkpoint.read_text())["offset"] == os.path.getsize(
        Path(gw.layout().log_dir) / "phoenix-requests.log"
    )


def test_a_key_never_gets_past_its_models_by_naming_model_twice_or_nested(gw: Lab) -> None:
    served = gw.recorder.served  # type: ignore[union-attr]
    ok = post(gw, {"model": "solo", "messages": []}, key="solo-only")
    assert ok.status_code == 200 and ok.json() == {"served": "solo"}
    del served[:]
    for body in (
        b'{"model": "solo", "model": "shared", "messages": []}',
        b'{"model": "solo", "Model": "shared"}',
        b'{"model": "solo", "mod\\u0065l": "shared"}',
        b'{"model": "solo", "metadata": {"x": 1}, "model": "shared"}',
    ):
        refused = post(gw, body, key="solo-only")
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["error"]["code"] == "ambiguous_model"
        allowed_too = post(gw, body, key="all")  # the same, even for a key that may use both
        assert allowed_too.status_code == 400 and served == []
    for nested in (
        {"metadata": {"model": "solo"}, "model": "shared"},
        {"tools": [{"function": {"name": "f", "model": "solo"}}], "model": "shared"},
    ):
        denied = post(gw, nested, key="solo-only")
        assert denied.status_code == 404 and denied.json()["error"]["code"] == "model_not_found"
    assert served == []
    # A name a JSON parser decodes is routed and authorized on what it decodes to.
    escaped = b'{"model": "sh\\u0061red", "metadata": {"model": "solo"}}'
    assert post(gw, escaped, key="solo-only").status_code == 404
    assert served == []
    routed = post(gw, escaped, key="all")
    assert routed.status_code == 200 and served == ["shared"]
    tool_schema = {
        "tools": [{"type": "function", "function": {"parameters": {"properties": {"model": {}}}}}],
        "model": "solo",
    }
    assert post(gw, tool_schema, key="solo-only").json() == {"served": "solo"}


def test_only_json_objects_are_routed(gw: Lab) -> None:
    served = gw.recorder.served  # type: ignore[union-attr]
    before = len(served)
    for body, code in (
        (b'[{"model": "solo"}]', "invalid_body"),
        (b'{"model": "solo",', "invalid_json"),
        (b'{"model": "solo"} trailing', "invalid_json"),
        (b'\xef\xbb\xbf{"model": "solo"}', "invalid_json"),
        (b'{"metadata": {"model": "solo"}}', "missing_model"),
    ):
        answer = post(gw, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == code, (body, answer.text)
    deep = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b', "model": "solo"}'
    too_deep = post(gw, deep)
    assert too_deep.status_code == 400
    assert too_deep.json()["error"]["code"] == "body_too_complex"
    assert len(served) == before  # none of them reached the backend


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1))


@contextlib.contextmanager
def open_files(n: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n)), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


IDLE_CLIENTS = 2500


def test_probes_answer_while_2500_idle_clients_hold_connections(gw: Lab) -> None:
    """Slow clients (half a request each, as slowloris sends) held for a few seconds: the
    health probe and a completion still answer, and the gateway's JSON, never HTML."""
    pids = workers(gw)
    held: list[socket.socket] = []
    with open_files(IDLE_CLIENTS + 512):
        try:
            for _ in range(IDLE_CLIENTS):
                s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=5)
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                held.append(s)
            time.sleep(1)
            for _ in range(3):
                start = time.monotonic()
                health = httpx.get(gw.base + "/phoenix/health", timeout=5)
                assert health.status_code == 200
                done = post(gw, {"model": "alpha", "messages": []})
                assert done.status_code == 200, done.text
                assert time.monotonic() - start < 3
        finally:
            for s in held:
                s.close()
    assert workers(gw) == pids


BODY_BYTES = 8 * 1024 * 1024 - 4096  # under the gateway's 8 MB limit


def test_64_held_8mb_bodies_stay_within_the_body_memory_bound(gw: Lab) -> None:
    """64 clients each send all of an 8 MB body but its last byte, and hold: the gateway
    takes at most big_bodies() of them into memory and answers the others 503 JSON at
    once, before reading their bodies; no worker dies."""
    from phoenix.gateway.limits import BODY_MEMORY_MB, big_bodies

    pids = workers(gw)
    base = sum(rss_kib(p) for p in pids)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEYS['all']}\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    body = (b'{"model": "alpha", "pad": "' + b"x" * BODY_BYTES)[: BODY_BYTES - 1]
    answers: list[bytes] = []
    clients: list[socket.socket] = []

    def hold() -> None:
        s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=20)
        clients.append(s)
        with contextlib.suppress(OSError):  # refused before its body was read
            s.sendall(head + body)
        s.settimeout(0.5)
        with contextlib.suppress(OSError):
            answers.append(s.recv(4096))

    threads = [threading.Thread(target=hold) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        grown_mb = (sum(rss_kib(p) for p in pids) - base) / 1024
        assert workers(gw) == pids
        assert grown_mb <= BODY_MEMORY_MB + 64, grown_mb
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 64 - big_bodies(8), len(refused)
        assert all(b'"code":"overloaded"' in a and b"Retry-After: 1" in a for a in refused)
        print(f"64 held 8 MB bodies: workers grew {grown_mb:.0f} MB, {len(refused)} refused")
    finally:
        for s in clients:
            s.close()
    assert post(gw, {"model": "alpha", "messages": []}).status_code == 200


def test_parse_heavy_bodies_are_refused_without_building_them(gw: Lab) -> None:
    """4 concurrent 8 MB bodies of many small objects (~35x their size once parsed into
    JavaScript): refused 400 body_too_complex; no worker dies or grows by their parse."""
    pids = workers(gw)
    heavy = b'{"messages": [' + b",".join([b'{"a":1}'] * 1_000_000) + b'], "model": "alpha"}'
    assert len(heavy) < 8 * 1024 * 1024
    peaks = {p: peak_kib(p) for p in pids}
    results: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: results.append(post(gw, heavy))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert workers(gw) == pids
    assert [r.status_code for r in results] == [400] * 4
    assert {r.json()["error"]["code"] for r in results} == {"body_too_complex"}
    grown = max(peak_kib(p) - peaks[p] for p in pids)
    assert grown <= 4 * 2 * 8 * 1024, grown  # the bodies themselves (and one copy), no parse


def test_a_model_request_without_a_key_is_refused_before_its_body_is_read(gw: Lab) -> None:
    with socket.create_connection(("127.0.0.1", gw.http_port), timeout=5) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n{"
        )
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b'"code":"invalid_api_key"' in answer and b"didn't provide" in answer
    wrong = httpx.post(
        gw.base + CHAT, json={"model": "alpha"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and "Incorrect API key" in wrong.json()["error"]["message"]


def test_nginx_errors_on_the_api_are_openai_json(gw: Lab) -> None:
    long_uri = httpx.get(gw.base + "/v1/" + "x" * 9000, timeout=5)
    log = (gw.log_dir / "error.log").read_text()[-2000:]
    assert long_uri.status_code == 414, (long_uri.text, log)
    assert long_uri.json()["error"]["code"] == "uri_too_long"
    with socket.create_connection(("127.0.0.1", gw.http_port), timeout=5) as s:
        s.sendall(b"GET /phoenix/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400") and b'"code":"bad_request"' in answer, answer


def test_a_path_route_to_a_model_server_asks_for_a_key_and_never_passes_it_on(gw: Lab) -> None:
    backend: LastValueBackend = gw.recorder  # type: ignore[assignment]
    url = gw.base + "/solo-direct/v1/chat/completions"
    no_key = httpx.post(url, json={"model": "solo"}, timeout=10)
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.post(url, json={"model": "solo"}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    before = len(backend.served)
    ok = httpx.post(url, json={"model": "solo"}, headers={"Authorization": f"Bearer {KEYS['all']}"})
    assert ok.status_code == 200 and ok.json() == {"served": "solo"}
    assert len(backend.served) == before + 1
    assert backend.authorization[-1] is None  # the gateway's key stays with the gateway


def test_status_endpoints_answer_only_the_allowed_addresses(gw: Lab) -> None:
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.7"), timeout=10)
    with other:
        for uri in ("/metrics", "/phoenix/status", "/phoenix/", "/phoenix/health"):
            denied = other.get(gw.base + uri)
            assert denied.status_code == 403, (uri, denied.text)
            assert denied.json()["error"]["code"] == "forbidden"
            assert httpx.get(gw.base + uri, timeout=10).status_code == 200  # from 127.0.0.1
        headers = {"Authorization": f"Bearer {KEYS['all']}"}
        api = other.post(gw.base + CHAT, json={"model": "alpha", "messages": []}, headers=headers)
        assert api.status_code == 200  # the API itself is not restricted by address


def test_an_operator_key_reads_the_status_from_any_address_and_nothing_else(gw: Lab) -> None:
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.7"), timeout=10)
    operator = {"Authorization": f"Bearer {KEYS['operator']}"}
    with other:
        for uri in ("/metrics", "/phoenix/status", "/phoenix/", "/phoenix/health"):
            read = other.get(gw.base + uri, headers=operator)
            assert read.status_code == 200, (uri, read.text)
            client_key = other.get(
                gw.base + uri, headers={"Authorization": f"Bearer {KEYS['all']}"}
            )
            assert client_key.status_code == 403, (uri, client_key.text)
            wrong = other.get(gw.base + uri, headers={"Authorization": "Bearer phx-nope"})
            assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        assert "phoenix_gateway_info" in other.get(gw.base + "/metrics", headers=operator).text
        # An operator key is no client key: it reaches no model.
        chat = other.post(gw.base + CHAT, json={"model": "alpha", "messages": []}, headers=operator)
        assert chat.status_code == 401 and chat.json()["error"]["code"] == "invalid_api_key"


def test_a_backends_html_error_reaches_api_clients_as_openai_json(gw: Lab) -> None:
    """The demo server (Python's http.server) answers more than 100 headers with its own
    HTML 431; nginx takes them (it counts no headers). The client gets JSON; a backend's own
    JSON error passes through untouched."""
    headers = {"Authorization": f"Bearer {KEYS['all']}"}
    headers |= {f"X-Pad-{i}": "x" for i in range(120)}
    answer = httpx.post(gw.base + CHAT, json={"model": "alpha", "messages": []}, headers=headers)
    assert answer.status_code == 431, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    error = answer.json()["error"]
    assert error["code"] == "upstream_http_431" and "alpha" in error["message"]
    for status in (400, 503):
        own = post(gw, {"model": "solo", "fail": status})
        assert own.status_code == status
        assert own.json() == {"error": {"message": "own", "code": "own"}}


@pytest.mark.parametrize(
    ("size", "chunk"),
    [(BODY_BYTES, 1 << 20), (8 * 1024 * 1024 - 1, 1000), (8 * 1024 * 1024, 65536)],
)
def test_a_chunked_body_under_the_limit_is_routed_like_one_with_a_length(
    gw: Lab, size: int, chunk: int
) -> None:
    head = b'{"model": "alpha", "messages": [], "pad": "'
    body = head + b"x" * (size - len(head) - 2) + b'"}'
    assert len(body) == size
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEYS['all']}"}
    with_length = httpx.post(gw.base + CHAT, content=body, headers=headers, timeout=30)
    assert with_length.status_code == 200, with_length.text

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    chunked = httpx.post(gw.base + CHAT, content=chunks(), headers=headers, timeout=30)
    log = (gw.log_dir / "error.log").read_text()[-1500:]
    assert chunked.status_code == 200, (chunked.text, log)
    over = head + b"x" * (8 * 1024 * 1024) + b'"}'
    for content in (over, iter([over])):
        refused = httpx.post(gw.base + CHAT, content=content, headers=headers, timeout=30)
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "body_too_large"


def test_a_model_name_that_is_not_utf8_is_never_echoed_raw(gw: Lab) -> None:
    answer = post(gw, b'{"model": "a\xffb\xc3", "messages": []}')
    assert answer.status_code == 404, answer.text
    text = answer.content.decode("utf-8")  # strict: no raw byte reaches the client
    assert json.loads(text)["error"]["code"] == "model_not_found"
    headers = {"Authorization": f"Bearer {KEYS['all']}"}
    by_id = httpx.get(gw.base + "/v1/models/a%FFb", headers=headers, timeout=10)
    assert by_id.status_code == 404
    assert "a\ufffdb" in json.loads(by_id.content.decode("utf-8"))["error"]["message"]

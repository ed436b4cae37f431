"""The rendered gateway on a real nginx + njs, on loopback, with demo model servers.

Everything runs under a temp dir with its own prefix, pid file and high ports on
127.0.0.x; the setup script is run for real (direct service mode: no systemd, no
package install) and every process is stopped in finalizers.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from phoenix import __version__
from phoenix.gateway.bundle import SCRIPT_NAME, render_gateway
from phoenix.gateway.keys import key_hash, new_key
from phoenix.gateway.render import Layout, RenderedGateway, asset, write_tree
from phoenix.inventory import Inventory, load_inventory
from tests.conftest import FIXTURES

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx + njs"),
    pytest.mark.timeout(300),
]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open")


class Recorder:
    """A model server stand-in that records the `id` of every request it receives, then
    answers 200 (answer=True) or hangs up without answering, as a crashing server would."""

    def __init__(self, host: str, port: int, answer: bool) -> None:
        self.seen: list[str] = []
        self.answer = answer
        self.sock = socket.create_server((host, port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(65536)
                self.seen.append(str(json.loads(body).get("id")))
                if not self.answer:
                    return  # hang up after the backend "started work"
                reply = b'{"backend":"recorder"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )

    def close(self) -> None:
        self.sock.close()


class FullQueue:
    """A listener that never accepts, with its accept queue filled: new connects to it
    time out (the kernel drops their SYNs), as to a guest that stopped answering."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.sock.listen(0)
        self.fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, port))
            self.fillers.append(s)
        time.sleep(0.2)

    def close(self) -> None:
        for s in self.fillers:
            s.close()
        self.sock.close()


@dataclass
class Lab:
    tmp: Path
    inventory: Inventory
    http_port: int
    https_port: int
    model_port: int
    app_port: int
    state: Path
    taker: Recorder | None = None
    recorder: Recorder | None = None
    stuck: FullQueue | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def root(self) -> Path:
        return self.tmp / "gw-root"

    @property
    def pid_file(self) -> Path:
        return self.tmp / "nginx.pid"

    @property
    def metrics_dir(self) -> Path:
        # Workers (nobody) read the metrics log and write its checkpoint: logs and
        # checkpoint live outside pytest's private tmp dir.
        return Path("/tmp") / f"phxt-gw-{self.tmp.name}-{os.getpid()}"

    @property
    def log_dir(self) -> Path:
        return self.metrics_dir / "logs"

    def layout(self) -> Layout:
        return Layout(
            user=None,
            worker_processes="2",
            log_dir=str(self.log_dir),
            runtime_dir=str(self.tmp / "run"),
            listen_address="127.0.0.1",
            metrics_dir=str(self.metrics_dir / "state"),
        )

    def render(self, run_dir: Path) -> RenderedGateway:
        rendered, _ = render_gateway(self.inventory, 101, self.state, "derived", self.layout())
        if run_dir.exists():
            shutil.rmtree(run_dir)
        write_tree(rendered, run_dir, asset(SCRIPT_NAME))
        return rendered

    def deploy(
        self, run_dir: Path, soft_nofile: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the setup script; `soft_nofile` starts nginx with that soft limit of open
        files, as systemd starts services in a guest (1,024, hard limit higher)."""

        def limit() -> None:
            if soft_nofile is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft_nofile, hard))

        env = {
            **os.environ,
            "PHOENIX_GATEWAY_ROOT": str(self.root),
            "PHOENIX_SERVICE": "direct",
            "PHOENIX_NGINX_BIN": NGINX,
            "PHOENIX_NGINX_GLOBALS": f"pid {self.pid_file};",
            "PHOENIX_PID_FILE": str(self.pid_file),
            "PHOENIX_SKIP_INSTALL": "1",
        }
        return subprocess.run(
            ["bash", str(run_dir / SCRIPT_NAME)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            preexec_fn=limit,
        )

    def render_config(self) -> str:
        rendered, _ = render_gateway(self.inventory, 101, self.state, "derived", self.layout())
        return rendered.config_id

    def master_pid(self) -> int:
        return int(self.pid_file.read_text().strip())


def write_inventory(config: Path, lab_ports: dict[str, int]) -> None:
    def guest(name: str, ip: str, **extra: object) -> dict[str, object]:
        return {
            "name": name,
            "network_config": {"name": "eth0", "bridge": "phxtbr0", "ip": f"{ip}/8"},
            **extra,
        }

    def vllm(model: str) -> dict[str, object]:
        return {"ServerConfig": {"port": lab_ports["model"], "served_model_name": model}}

    configs = {
        "900": guest(
            "phxt-template",
            "127.0.0.9",
            template_snapshot_name="base",
            vllm_engine_config=vllm("template-model"),
        ),
        "101": guest(
            "phxt-gw",
            "127.0.0.1",
            gateway={
                "hostnames": ["api.phxt.test"],
                "http_port": lab_ports["http"],
                "https_port": lab_ports["https"],
                "max_body_mb": 1,
                "generation_timeout_s": 120,
                "path_routes": [
                    {"path": "/app", "ctid": 204, "port": lab_ports["app"]},
                    {"path": "/down", "ctid": 219, "port": lab_ports["app"]},
                ],
                "host_routes": [
                    {"hostname": "app.phxt.test", "ctid": 204, "port": lab_ports["app"]},
                    {
                        "hostname": "down.phxt.test",
                        "ctid": 219,
                        "port": lab_ports["app"],
                        "tls": False,
                    },
                ],
            },
        ),
        "201": guest("phxt-m1", "127.0.0.2", vllm_engine_config=vllm("alpha")),
        "202": guest("phxt-m2", "127.0.0.3", vllm_engine_config=vllm("beta")),
        # The older flat keys: a second backend of "beta" (one upstream, two servers).
        "203": guest(
            "phxt-m3", "127.0.0.4", vllm_served_model_name="beta", vllm_port=lab_ports["model"]
        ),
        "204": guest("phxt-app", "127.0.0.5"),
        # Failover: "omega" has a dead backend (nothing listens) and a live one; "sigma" a
        # backend that takes requests and hangs up, and a recording one; "zeta" only dead
        # ones; "tau" one whose accept queue is full (its connects time out) and a live one.
        "211": guest("phxt-o1", "127.0.0.6", vllm_engine_config=vllm("omega")),
        "212": guest("phxt-o2", "127.0.0.7", vllm_engine_config=vllm("omega")),
        "213": guest("phxt-s1", "127.0.0.8", vllm_engine_config=vllm("sigma")),
        "214": guest("phxt-s2", "127.0.0.10", vllm_engine_config=vllm("sigma")),
        "215": guest("phxt-z1", "127.0.0.11", vllm_engine_config=vllm("zeta")),
        "216": guest("phxt-z2", "127.0.0.12", vllm_engine_config=vllm("zeta")),
        "217": guest("phxt-t1", "127.0.0.13", vllm_engine_config=vllm("tau")),
        "218": guest("phxt-t2", "127.0.0.14", vllm_engine_config=vllm("tau")),
        "219": guest("phxt-down", "127.0.0.15"),
    }
    config.mkdir(parents=True)
    (config / "phoenix_hypervisor_config.json").write_text("{}")
    (config / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("phxt-gw")
    ports = {"http": free_port(), "https": free_port(), "model": free_port(), "app": free_port()}
    write_inventory(tmp / "etc", ports)
    (tmp / "run").mkdir()
    inventory = load_inventory(tmp / "etc")
    procs: list[subprocess.Popen[bytes]] = []
    lab = Lab(
        tmp, inventory, ports["http"], ports["https"], ports["model"], ports["app"], tmp / "state"
    )
    lab.log_dir.mkdir(parents=True)
    try:
        servers = [
            ("127.0.0.2", "alpha", "m1"),
            ("127.0.0.3", "beta", "m2"),
            ("127.0.0.4", "beta", "m3"),
            ("127.0.0.5", "app", "app"),
            ("127.0.0.7", "omega", "o2"),
            ("127.0.0.14", "tau", "t2"),
        ]
        for host, model, backend in servers:
            port = ports["app"] if backend == "app" else ports["model"]
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "phoenix.demo.model_server",
                        "--host",
                        host,
                        "--port",
                        str(port),
                        "--model",
                        model,
                        "--backend-id",
                        backend,
                        "--chunks",
                        "3",
                        "--chunk-delay",
                        "1.0",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_port(host, port)
        lab.taker = Recorder("127.0.0.8", ports["model"], answer=False)
        lab.recorder = Recorder("127.0.0.10", ports["model"], answer=True)
        lab.stuck = FullQueue("127.0.0.13", ports["model"])
        result = lab.deploy(_rendered_run_dir(lab))
        assert result.returncode == 0, result.stdout + result.stderr
        yield lab
    finally:
        for extra in (lab.taker, lab.recorder, lab.stuck):
            if extra is not None:
                extra.close()
        stop_nginx(lab)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def stop_nginx(lab: Lab) -> None:
    if lab.pid_file.exists():
        try:
            os.kill(lab.master_pid(), signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and lab.pid_file.exists():
                time.sleep(0.05)
        except (ProcessLookupError, ValueError):
            pass
    shutil.rmtree(lab.metrics_dir, ignore_errors=True)


KEYS = {"team-a": new_key(), "burst": new_key(), "all": new_key()}


@pytest.fixture(scope="module")
def keyed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A second gateway, with API keys, in front of the same model servers as `lab`."""
    tmp = tmp_path_factory.mktemp("phxt-keys")
    lxc = json.loads((lab.tmp / "etc" / "phoenix_lxc_configs.json").read_text())
    configs = {c: g for c, g in lxc["lxc_configs"].items() if c in ("101", "201", "202", "203")}
    ports = {"http": free_port(), "https": free_port()}
    gateway = configs["101"]["gateway"]
    gateway.update(http_port=ports["http"], https_port=ports["https"], path_routes=[])
    gateway["host_routes"] = []
    gateway["api_keys"] = [
        {"name": "team-a", "sha256": key_hash(KEYS["team-a"]), "models": ["alpha"]},
        {"name": "burst", "sha256": key_hash(KEYS["burst"]), "models": ["alpha"], "rpm": 5},
        {"name": "all", "sha256": key_hash(KEYS["all"]), "rpm": 1000},
    ]
    (tmp / "etc").mkdir()
    (tmp / "etc" / "phoenix_hypervisor_config.json").write_text("{}")
    (tmp / "etc" / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))
    (tmp / "run").mkdir()
    gw = Lab(
        tmp,
        load_inventory(tmp / "etc"),
        ports["http"],
        ports["https"],
        lab.model_port,
        lab.app_port,
        tmp / "state",
    )
    gw.log_dir.mkdir(parents=True)
    try:
        result = gw.deploy(_rendered_run_dir(gw))
        assert result.returncode == 0, result.stdout + result.stderr
        yield gw
    finally:
        stop_nginx(gw)


def _rendered_run_dir(lab: Lab) -> Path:
    run_dir = lab.tmp / "phoenix_run"
    lab.render(run_dir)
    return run_dir


def chat(lab: Lab, body: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{lab.base}/v1/chat/completions",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def test_requests_reach_the_backend_of_their_model(lab: Lab) -> None:
    r = chat(lab, {"model": "alpha", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-phoenix-demo-backend"] == "m1"
    assert r.json()["backend"] == "m1"
    seen = {chat(lab, {"model": "beta", "messages": []}).json()["backend"] for _ in range(12)}
    assert seen == {"m2", "m3"}  # one upstream, two guests, load-balanced
    c = httpx.post(f"{lab.base}/v1/completions", json={"model": "alpha", "prompt": "x"})
    assert c.status_code == 200 and c.json()["backend"] == "m1"
    e = httpx.post(f"{lab.base}/v1/embeddings", json={"model": "beta", "input": ["a", "b"]})
    assert e.status_code == 200 and len(e.json()["data"]) == 2
    assert e.json()["backend"] in ("m2", "m3")


def test_model_errors_are_openai_style_json(lab: Lab) -> None:
    r = chat(lab, {"model": "gamma", "messages": []})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and "alpha" in err["message"]
    assert "beta" in err["message"] and "template-model" not in err["message"]
    missing = chat(lab, {"messages": []})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_model"
    bad = chat(lab, b'{"model": "alpha",')
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    not_obj = chat(lab, b'["alpha"]')
    assert not_obj.status_code == 400
    get = httpx.get(f"{lab.base}/v1/chat/completions")
    assert get.status_code == 405 and get.json()["error"]["code"] == "method_not_allowed"


def test_bodies_up_to_the_limit_route_and_over_it_get_413(lab: Lab) -> None:
    pad = "x" * (900 * 1024)  # under the 1 MB limit, far over nginx's default buffer
    ok = chat(lab, {"model": "alpha", "messages": [{"role": "user", "content": pad}]})
    assert ok.status_code == 200 and ok.json()["backend"] == "m1"
    big = chat(lab, {"model": "alpha", "messages": [{"role": "user", "content": pad * 2}]})
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "body_too_large"


def _padded(model: object, size: int = 100 * 1024, model_last: bool = False) -> bytes:
    pad = "x" * size
    msgs = [{"role": "user", "content": pad}]
    body = {"messages": msgs, "model": model} if model_last else {"model": model, "messages": msgs}
    return json.dumps(body).encode()


def test_large_bodies_route_natively_wherever_model_is(lab: Lab) -> None:
    first = chat(lab, _padded("alpha"))
    assert first.status_code == 200 and first.json()["backend"] == "m1"
    last = chat(lab, _padded("beta", model_last=True))
    assert last.status_code == 200 and last.json()["backend"] in ("m2", "m3")
    emb = httpx.post(
        f"{lab.base}/v1/embeddings", content=_padded("alpha", model_last=True), timeout=10
    )
    assert emb.status_code == 200 and emb.json()["backend"] == "m1"


def test_chunked_body_reaches_the_backend_once_with_a_length(lab: Lab) -> None:
    payload = _padded("alpha", model_last=True)

    def parts() -> Iterator[bytes]:
        for i in range(0, len(payload), 8192):
            yield payload[i : i + 8192]

    # The demo backend reads exactly Content-Length bytes and validates the JSON and its
    # model: a body lost, doubled or still chunked would not come back 200 from m1.
    r = httpx.post(f"{lab.base}/v1/chat/completions", content=parts(), timeout=10)
    assert r.status_code == 200 and r.json()["backend"] == "m1"
    again = chat(lab, {"model": "alpha", "messages": []})  # same keepalive upstream
    assert again.status_code == 200 and again.json()["backend"] == "m1"


def test_fast_path_is_not_fooled_by_text_or_schemas(lab: Lab) -> None:
    quoted = {
        "messages": [{"role": "user", "content": 'say "model": "beta"' + "x" * 5000}],
        "model": "alpha",
    }
    assert chat(lab, quoted).json()["backend"] == "m1"
    schema = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {"type": "object", "properties": {"model": {"type": "string"}}},
                },
            }
        ],
        "model": "alpha",
    }
    assert chat(lab, schema).json()["backend"] == "m1"
    # Names the fast path leaves alone are still routed, by njs.
    escaped = chat(lab, b'{"model": "alph\\u0061", "messages": []}')
    assert escaped.status_code == 200 and escaped.json()["backend"] == "m1"


def test_large_bodies_without_a_routable_model_get_the_gateways_errors(lab: Lab) -> None:
    unknown = chat(lab, _padded("gamma", model_last=True))
    assert unknown.status_code == 404
    err = unknown.json()["error"]
    assert err["code"] == "model_not_found" and "alpha, beta" in err["message"]
    assert "x-phoenix-demo-backend" not in unknown.headers  # the gateway answered
    wrong_case = chat(lab, {"model": "ALPHA", "messages": []})
    assert wrong_case.status_code == 404  # model names are case-sensitive
    missing = chat(lab, json.loads(_padded("alpha"))["messages"][0])
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_model"
    not_string = chat(lab, {"model": 7, "messages": []})
    assert not_string.status_code == 400
    assert not_string.json()["error"]["code"] == "missing_model"
    bad = chat(
        lab,
        b'{"messages": [',
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert "x-phoenix-demo-backend" not in bad.headers
    empty = chat(lab, b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid_body"


def test_the_gateway_answers_malformed_and_nested_model_bodies_itself(lab: Lab) -> None:
    # Malformed JSON that names a served model never reaches its backend.
    truncated = chat(lab, b'{"model": "alpha", "messages": [')
    assert truncated.status_code == 400
    assert truncated.json()["error"]["code"] == "invalid_json"
    assert "x-phoenix-demo-backend" not in truncated.headers
    # Only the top-level "model" counts, wherever a nested one is.
    nested = chat(lab, {"metadata": {"model": "beta"}, "model": "alpha", "messages": []})
    assert nested.status_code == 200 and nested.headers["x-phoenix-demo-backend"] == "m1"


def test_no_router_warnings_in_the_error_log(lab: Lab) -> None:
    chat(lab, {"messages": []})
    chat(lab, {"model": "alpha", "messages": []})
    log = (lab.log_dir / "error.log").read_text()
    assert "uninitialized" not in log and "phx_" not in log, log[-2000:]


def test_models_lists_the_union(lab: Lab) -> None:
    r = httpx.get(f"{lab.base}/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    ids = sorted(m["id"] for m in body["data"])
    assert ids == ["alpha", "beta", "omega", "sigma", "tau", "zeta"]
    assert all(m["object"] == "model" for m in body["data"])


def test_health_reports_version_and_routes(lab: Lab) -> None:
    r = httpx.get(f"{lab.base}/phoenix/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"]
    assert body["routes"] == 10  # 6 models + 2 path routes + 2 host routes


def test_stream_delivers_first_chunk_before_backend_finishes(lab: Lab) -> None:
    start = time.monotonic()
    first_at = None
    events = []
    with httpx.stream(
        "POST",
        f"{lab.base}/v1/chat/completions",
        json={"model": "alpha", "stream": True, "messages": []},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                if first_at is None:
                    first_at = time.monotonic() - start
                events.append(line)
    total = time.monotonic() - start
    assert events[-1] == "data: [DONE]" and len(events) == 4
    assert first_at is not None
    assert total >= 2.0  # the backend sleeps 1 s between its 3 chunks
    assert first_at < 1.0, f"first chunk after {first_at:.2f}s of {total:.2f}s"


def test_path_route_strips_prefix(lab: Lab) -> None:
    r = httpx.get(f"{lab.base}/app/v1/models")
    assert r.status_code == 200 and r.json()["backend"] == "app"
    redirect = httpx.get(f"{lab.base}/app")
    assert redirect.status_code == 301 and redirect.headers["location"].endswith("/app/")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, check=False
    )


def test_tls_host_route_verifies_against_the_phoenix_ca(lab: Lab) -> None:
    ca = lab.root / "live" / "ca.crt"
    url = f"https://app.phxt.test:{lab.https_port}/v1/models"
    resolve = f"app.phxt.test:{lab.https_port}:127.0.0.1"
    ok = curl("--resolve", resolve, "--cacert", str(ca), url)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["backend"] == "app"
    untrusted = curl("--resolve", resolve, url)
    assert untrusted.returncode == 60, untrusted.stderr  # certificate not trusted
    old = curl("--resolve", resolve, "--cacert", str(ca), "--tls-max", "1.1", url)
    assert old.returncode != 0  # TLS 1.2+ only
    # The API server's own certificate covers its hostname too (httpx, verify=CA).
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        r = client.get(f"https://127.0.0.1:{lab.https_port}/v1/models")
        assert r.status_code == 200


def test_http_redirects_to_https(lab: Lab) -> None:
    r = httpx.get(f"http://127.0.0.1:{lab.http_port}/x?y=1", headers={"Host": "app.phxt.test"})
    assert r.status_code == 301
    assert r.headers["location"] == f"https://app.phxt.test:{lab.https_port}/x?y=1"


def test_broken_deploy_keeps_old_config_serving(lab: Lab) -> None:
    run_dir = lab.tmp / "phoenix_run_broken"
    lab.render(run_dir)
    (run_dir / "tree" / "sites-available" / "zz-broken").write_text(
        "server {\n    listen 127.0.0.1:1;\n    no_such_directive on;\n}\n"
    )
    live_before = os.readlink(lab.root / "live")
    pid_before = lab.master_pid()
    stop = threading.Event()
    statuses: list[int] = []
    failures: list[str] = []

    def loop() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        f"{lab.base}/v1/chat/completions", json={"model": "alpha", "messages": []}
                    )
                    statuses.append(r.status_code)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        time.sleep(0.3)
        result = lab.deploy(run_dir)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    assert result.returncode != 0
    assert "no_such_directive" in result.stderr  # nginx's own message
    assert "live config is unchanged" in result.stderr
    assert os.readlink(lab.root / "live") == live_before
    assert lab.master_pid() == pid_before
    assert failures == []
    assert statuses and set(statuses) == {200}


def test_redeploy_of_the_same_inventory_changes_nothing(lab: Lab) -> None:
    live = lab.root / "live"
    certs = sorted((live / "ssl").glob("*"))
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in certs}
    pid = lab.master_pid()
    target = os.readlink(live)
    run_dir = lab.tmp / "phoenix_run_again"
    lab.render(run_dir)  # re-render: certificates are kept, the tree is byte-identical
    result = lab.deploy(run_dir)
    assert result.returncode == 0, result.stderr
    assert "unchanged" in result.stdout and "reloading" not in result.stdout
    assert lab.master_pid() == pid
    assert os.readlink(live) == target
    after = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted((live / "ssl").glob("*"))
    }
    assert after == before
    assert oct((live / "ssl" / "phoenix-api.key").stat().st_mode & 0o777) == "0o600"


def test_changed_inventory_reloads_without_new_master(lab: Lab) -> None:
    """A real change (new model guest) is staged, tested, switched and reloaded."""
    lxc = json.loads((lab.tmp / "etc" / "phoenix_lxc_configs.json").read_text())
    lxc["lxc_configs"]["205"] = {
        "name": "phxt-m4",
        "network_config": {"name": "eth0", "bridge": "phxtbr0", "ip": "127.0.0.16/8"},
        "vllm_engine_config": {
            "ServerConfig": {"port": lab.model_port, "served_model_name": "delta"}
        },
    }
    etc2 = lab.tmp / "etc2"
    shutil.copytree(lab.tmp / "etc", etc2)
    (etc2 / "phoenix_lxc_configs.json").write_text(json.dumps(lxc))
    original = lab.inventory
    lab.inventory = load_inventory(etc2)
    try:
        pid = lab.master_pid()
        run_dir = lab.tmp / "phoenix_run_changed"
        lab.render(run_dir)
        result = lab.deploy(run_dir)
        assert result.returncode == 0, result.stderr
        assert "reloading" in result.stdout
        assert lab.master_pid() == pid
        models = {m["id"] for m in httpx.get(f"{lab.base}/v1/models").json()["data"]}
        assert models == {"alpha", "beta", "delta", "omega", "sigma", "tau", "zeta"}
    finally:
        lab.inventory = original
        run_dir = lab.tmp / "phoenix_run_restore"
        lab.render(run_dir)
        assert lab.deploy(run_dir).returncode == 0


@pytest.mark.parametrize("fixture", ["phoenix-etc-2025-10-03", "phoenix-etc-seed"])
def test_fixture_render_passes_nginx_t(fixture: str, tmp_path: Path) -> None:
    config = FIXTURES / fixture
    out = tmp_path / "out"
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "from phoenix.cli.app import main; main()",
            "-c",
            str(config),
            "gateway",
            "render",
            "--mode",
            "derived",
            "--out",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    (tmp_path / "logs").mkdir()
    check = subprocess.run(
        [
            NGINX,
            "-t",
            "-p",
            f"{tmp_path}/",
            "-c",
            str(out / "tree" / "nginx.conf"),
            "-g",
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/logs/error.log;",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


def error_log_count(lab: Lab, needle: str) -> int:
    return (lab.log_dir / "error.log").read_text().count(needle)


def test_dead_backend_is_skipped_after_its_first_failure(lab: Lab) -> None:
    dead = f"127.0.0.6:{lab.model_port}"
    before = error_log_count(lab, dead)
    took = []
    with httpx.Client(timeout=10) as client:
        for _ in range(8):
            start = time.monotonic()
            r = client.post(
                f"{lab.base}/v1/chat/completions", json={"model": "omega", "messages": []}
            )
            took.append(time.monotonic() - start)
            assert r.status_code == 200 and r.json()["backend"] == "o2", r.text
    # Answered by the other backend at once (this shared machine's scheduler adds noise, so
    # the median, not every sample), never after a timeout.
    assert statistics.median(took) < 0.1 and max(took) < 0.5, took
    # One refused connect per worker at most marks it down (max_fails=1, shared zone): the
    # other requests never tried it.
    assert 1 <= error_log_count(lab, dead) - before <= 2


def test_connect_timeout_is_retried_on_another_backend(lab: Lab) -> None:
    results = []
    client = httpx.Client(timeout=10)
    for _ in range(4):
        start = time.monotonic()
        r = client.post(f"{lab.base}/v1/chat/completions", json={"model": "tau", "messages": []})
        results.append((r.status_code, r.json().get("backend"), time.monotonic() - start))
    client.close()
    assert all(status == 200 and backend == "t2" for status, backend, _ in results), results
    # The first try of the stuck backend waits the short connect timeout (1 s), not 5 s;
    # afterwards it is skipped.
    assert max(t for _, _, t in results) < 2.5, results
    # Only the first waited: afterwards the stuck backend is skipped (a loaded machine adds
    # scheduler noise, so "waited" is "took half the connect timeout").
    assert sum(1 for _, _, t in results if t > 0.5) == 1, results


def test_a_request_a_backend_received_is_never_resent(lab: Lab) -> None:
    assert lab.taker is not None and lab.recorder is not None
    failed = []
    for i in range(6):
        rid = f"req-{i}-{time.monotonic_ns()}"
        r = chat(lab, {"model": "sigma", "id": rid, "messages": []})
        if r.status_code == 502:
            failed.append(rid)
            err = r.json()["error"]
            assert err["code"] == "upstream_error" and "sigma" in err["message"]
            assert "retry-after" not in r.headers
        else:
            assert r.status_code == 200 and r.json()["backend"] == "recorder", r.text
    assert failed, "the hanging-up backend never got a request"
    for rid in failed:
        assert rid in lab.taker.seen  # the first backend received it ...
        assert rid not in lab.recorder.seen  # ... and it was not sent again


def test_all_backends_down_is_a_fast_503_with_retry_after(lab: Lab) -> None:
    took = []
    client = httpx.Client(timeout=10)  # timed: no client set-up (TLS context) inside
    for _ in range(5):
        start = time.monotonic()
        r = client.post(f"{lab.base}/v1/chat/completions", json={"model": "zeta", "messages": []})
        took.append(time.monotonic() - start)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "10"
        assert r.headers["content-type"] == "application/json"
        err = r.json()["error"]
        assert err["code"] == "upstream_unavailable" and "zeta" in err["message"]
        assert err["type"] == "server_error"
    client.close()
    assert statistics.median(took) < 0.1 and max(took) < 0.5, took


def test_least_connections_sends_new_requests_past_a_long_stream(lab: Lab) -> None:
    with httpx.stream(
        "POST",
        f"{lab.base}/v1/chat/completions",
        json={"model": "beta", "stream": True, "messages": []},
        timeout=30,
    ) as stream:
        busy = stream.headers["x-phoenix-demo-backend"]
        seen = [chat(lab, {"model": "beta", "messages": []}).json()["backend"] for _ in range(6)]
        for _ in stream.iter_lines():
            pass
    assert busy not in seen, (busy, seen)


def test_host_route_errors_are_a_page_for_browsers_and_json_for_programs(lab: Lab) -> None:
    host = {"Host": "down.phxt.test"}
    page = httpx.get(lab.base + "/", headers={**host, "Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 503
    assert page.headers["content-type"] == "text/html"
    assert "down.phxt.test" in page.text and "nginx" not in page.text.lower()
    assert page.headers["retry-after"] == "10"
    api = httpx.get(lab.base + "/", headers={**host, "Accept": "application/json"})
    assert api.status_code == 503 and api.json()["error"]["code"] == "upstream_unavailable"
    big = httpx.post(
        lab.base + "/", headers={**host, "Accept": "text/html"}, content=b"x" * (2 << 20)
    )
    assert big.status_code == 413 and "down.phxt.test" in big.text
    assert big.headers["content-type"] == "text/html"
    path = httpx.get(lab.base + "/down/x", headers={"Accept": "application/json"})
    assert path.status_code == 503 and "/down/" in path.json()["error"]["message"]


def test_every_json_endpoint_that_names_a_model_is_routed_by_it(lab: Lab) -> None:
    paths = ["/v1/rerank", "/v1/score", "/v1/tokenize", "/v1/detokenize", "/v2/rerank"]
    paths += ["/tokenize", "/detokenize", "/rerank", "/score", "/v1/some/new-endpoint"]
    for path in paths:
        r = httpx.post(f"{lab.base}{path}", json={"model": "alpha", "prompt": "x"}, timeout=10)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["backend"] == "m1" and r.json()["path"] == path
        unknown = httpx.post(f"{lab.base}{path}", json={"model": "nope"}, timeout=10)
        assert unknown.status_code == 404, path
        assert unknown.json()["error"]["code"] == "model_not_found"
    other = httpx.get(f"{lab.base}/v1/files", timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_multipart_endpoints_are_routed_by_their_model_field(lab: Lab) -> None:
    audio = bytes(range(256)) * 400  # binary, with CR/LF and quotes inside
    for model, backend in (("alpha", "m1"), ("beta", ("m2", "m3"))):
        r = httpx.post(
            f"{lab.base}/v1/audio/transcriptions",
            files={"file": ("a.wav", audio, "audio/wav")},
            data={"model": model},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["backend"] in backend
    unknown = httpx.post(
        f"{lab.base}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": "nope"},
        timeout=10,
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    missing = httpx.post(
        f"{lab.base}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        timeout=10,
    )
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_model"


def test_the_official_openai_sdk_as_a_client(lab: Lab) -> None:
    import asyncio

    import openai

    client = openai.OpenAI(base_url=f"{lab.base}/v1", api_key="unused", max_retries=0)
    assert {m.id for m in client.models.list()} >= {"alpha", "beta"}
    assert client.models.retrieve("alpha").id == "alpha"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert missing.value.code == "model_not_found"
    chat = client.chat.completions.create(
        model="alpha", messages=[{"role": "user", "content": "hi"}]
    )
    assert "m1" in (chat.choices[0].message.content or "")
    parts = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(
            model="alpha", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        if c.choices and c.choices[0].delta.content
    ]
    assert parts == ["part 0 ", "part 1 ", "part 2 "]
    assert "m1" in client.completions.create(model="alpha", prompt="x").choices[0].text
    assert len(client.embeddings.create(model="beta", input=["a", "b"]).data) == 2
    response = client.responses.create(model="alpha", input="hi")
    assert "m1" in response.output_text
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gamma", messages=[])
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="zeta", messages=[])
    assert down.value.status_code == 503 and down.value.code == "upstream_unavailable"
    transcript = client.audio.transcriptions.with_raw_response.create(
        model="alpha", file=("a.wav", b"RIFF....WAVE", "audio/wav")
    )
    assert transcript.http_response.json()["backend"] == "m1"

    async def many() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{lab.base}/v1", api_key="unused", max_retries=0
        ) as aclient:
            calls = [aclient.chat.completions.create(model="beta", messages=[]) for _ in range(200)]
            return [c.choices[0].message.content or "" for c in await asyncio.gather(*calls)]

    answers = asyncio.run(many())
    assert len(answers) == 200 and all("serving beta" in a for a in answers)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_keys_missing_or_wrong_are_401(keyed: Lab) -> None:
    for headers in ({}, {"Authorization": "Bearer phx-wrong"}, {"Authorization": "Basic x"}):
        for method, path, body in (
            ("POST", "/v1/chat/completions", {"model": "alpha", "messages": []}),
            ("GET", "/v1/models", None),
            ("GET", "/v1/models/alpha", None),
            ("POST", "/v1/score", {"model": "alpha"}),
        ):
            r = httpx.request(method, keyed.base + path, json=body, headers=headers, timeout=10)
            assert r.status_code == 401, (headers, path, r.text)
            assert r.json()["error"]["code"] == "invalid_api_key"
            assert "x-phoenix-demo-backend" not in r.headers
    assert httpx.get(keyed.base + "/phoenix/health").status_code == 200


def test_a_key_sees_and_uses_only_its_models(keyed: Lab) -> None:
    ok = httpx.post(
        keyed.base + "/v1/chat/completions",
        json={"model": "alpha", "messages": []},
        headers=bearer("team-a"),
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["backend"] == "m1"
    other = httpx.post(
        keyed.base + "/v1/chat/completions",
        json={"model": "beta", "messages": []},
        headers=bearer("team-a"),
        timeout=10,
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "model_not_found"
    assert "beta" not in other.json()["error"]["message"].split("Available models:")[1]
    listed = httpx.get(keyed.base + "/v1/models", headers=bearer("team-a")).json()
    assert [m["id"] for m in listed["data"]] == ["alpha"]
    assert httpx.get(keyed.base + "/v1/models/beta", headers=bearer("team-a")).status_code == 404
    everything = httpx.get(keyed.base + "/v1/models", headers=bearer("all")).json()
    assert [m["id"] for m in everything["data"]] == ["alpha", "beta"]
    escaped = httpx.post(
        keyed.base + "/v1/chat/completions",
        content=b'{"model": "bet\\u0061", "messages": []}',
        headers=bearer("team-a"),
        timeout=10,
    )
    assert escaped.status_code == 404  # the njs route checks the key too


def test_per_key_limit_holds_across_workers_with_retry_after(keyed: Lab) -> None:
    statuses = []
    for _ in range(10):  # a new connection each: both workers take some
        r = httpx.post(
            keyed.base + "/v1/chat/completions",
            json={"model": "alpha", "messages": []},
            headers=bearer("burst"),
            timeout=10,
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["retry-after"] == "12"  # 5 a minute: one every 12 s
            err = r.json()["error"]
            assert err["code"] == "rate_limit_exceeded" and "burst" in err["message"]
    assert statuses == [200] * 5 + [429] * 5, statuses
    # Other keys are not limited by it.
    other = httpx.post(
        keyed.base + "/v1/chat/completions",
        json={"model": "alpha", "messages": []},
        headers=bearer("team-a"),
        timeout=10,
    )
    assert other.status_code == 200


def test_the_openai_sdk_with_keys(keyed: Lab) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{keyed.base}/v1", api_key=KEYS["all"], max_retries=0)
    assert {m.id for m in client.models.list()} == {"alpha", "beta"}
    chat = client.chat.completions.create(model="beta", messages=[])
    assert "serving beta" in (chat.choices[0].message.content or "")
    bad = openai.OpenAI(base_url=f"{keyed.base}/v1", api_key="phx-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        bad.models.list()
    assert denied.value.code == "invalid_api_key"
    limited = openai.OpenAI(base_url=f"{keyed.base}/v1", api_key=KEYS["burst"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as over:
        for _ in range(10):
            limited.chat.completions.create(model="alpha", messages=[])
    assert over.value.code == "rate_limit_exceeded"


def settle() -> None:
    """Workers flush their buffered metrics lines within 1 s."""
    time.sleep(1.3)


def metrics(lab: Lab) -> dict[tuple[str, ...], float]:
    """The /metrics samples as {(name, label=value, ...): value}."""
    settle()
    text = httpx.get(lab.base + "/metrics", timeout=10).text
    out: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        parts = tuple(sorted(p.replace('"', "") for p in labels.rstrip("}").split(",") if p))
        out[(name, *parts)] = float(value)
    return out


def test_counts_are_exact_across_two_workers(lab: Lab) -> None:
    pids = subprocess.run(
        ["pgrep", "-P", str(lab.master_pid())], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(pids) == 2  # two workers share the counting
    key = ("phoenix_gateway_requests_total", "model=alpha", "status=200")
    before = metrics(lab).get(key, 0)
    errors_before = metrics(lab).get(("phoenix_gateway_requests_total", "model=", "status=404"), 0)

    def burst() -> None:
        for _ in range(25):  # a new connection each: both workers answer some
            assert chat(lab, {"model": "alpha", "messages": []}).status_code == 200

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(3):
        assert chat(lab, {"model": "nope", "messages": []}).status_code == 404
    after = metrics(lab)
    assert after[key] - before == 100
    assert after[("phoenix_gateway_requests_total", "model=", "status=404")] - errors_before == 3
    assert after[("phoenix_gateway_upstream_response_seconds_count", "model=alpha")] >= 100
    assert after[("phoenix_gateway_connections", "state=active")] >= 1
    assert (
        "phoenix_gateway_info",
        f"config={lab.render_config()}",
        "version=" + __version__,
    ) in after


def test_status_shows_each_backend_as_the_gateway_sees_it(lab: Lab) -> None:
    chat(lab, {"model": "zeta", "messages": []})  # both zeta backends refuse
    chat(lab, {"model": "alpha", "messages": []})
    settle()
    status = httpx.get(lab.base + "/phoenix/status", timeout=10).json()
    assert status["status"] == "degraded" and status["version"] == __version__
    assert status["uptime_s"] >= 0 and status["connections"]["active"] >= 1
    models = {m["id"]: m for m in status["models"]}
    assert all(b["state"].startswith("down") for b in models["zeta"]["backends"])
    assert [b["state"] for b in models["alpha"]["backends"]] == ["up"]
    assert models["alpha"]["requests"]["2xx"] >= 1
    assert models["zeta"]["requests"]["5xx"] >= 1
    down = metrics(lab)
    zeta = f"backend=127.0.0.11:{lab.model_port}"
    assert down[("phoenix_gateway_backend_up", zeta, "model=zeta")] == 0
    assert (
        down[("phoenix_gateway_backend_attempts_total", zeta, "model=zeta", "outcome=failed")] >= 1
    )
    page = httpx.get(lab.base + "/phoenix/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/phoenix/status" in page.text
    # Self-contained (no CDN): the only absolute URL anywhere is SVG's namespace name,
    # which names a namespace and is never fetched.
    urls = set(re.findall(r"https?://[^'\"\s<>)]*", page.text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls

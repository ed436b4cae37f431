"""The rendered gateway under abuse, on a real nginx + njs on loopback (bounded in count and
time): what a hostile or merely busy client can do must not take a worker down.

A gateway of two workers in front of one demo model server ("alpha") and a recording one
("omni", which records the `model` it is served as a backend reading the body's last
value would, as Ollama does), deployed by the real setup script (see test_gateway_host.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from phoenix.inventory import load_inventory
from tests.e2e.test_gateway_host import Lab, free_port, settle, stop_nginx, wait_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx + njs"),
    pytest.mark.timeout(300),
]


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
            },
        ),
        "201": guest("phxt-m1", "127.0.0.2", vllm_engine_config=vllm("alpha")),
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
    try:
        wait_port("127.0.0.2", ports["model"])
        run_dir = tmp / "phoenix_run"
        lab.render(run_dir)
        result = lab.deploy(run_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        yield lab
    finally:
        stop_nginx(lab)
        server.terminate()
        server.wait(timeout=10)


def workers(lab: Lab) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(lab.master_pid())], capture_output=True, text=True, check=True
    ).stdout
    return sorted(int(p) for p in out.split())


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
        httpx.post(f"{gw.base}/v1/chat/completions", json={"model": "alpha", "messages": []})
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

"""What the gateway costs a real inference engine: llama.cpp's llama-server serving the tiny
model, streamed to clients directly and through the rendered Phoenix gateway, side by side.

Figures (medians over interleaved rounds, loopback only):
  tokens/s   completion tokens all streams received per second of wall time, at 1 and
             8 concurrent streams (each asks max_tokens with ignore_eos, so every stream
             generates the same number of tokens); gateway / direct as a ratio
  TTFT p50   time from sending the request to the first content chunk; gateway - direct

The llama-server is the one Phoenix built in a guest (the host's build cache, which the
llama.cpp lab or its e2e test fills; `--llama-server PATH` for another) — a static Debian 12
x86-64 binary, so it runs on this host too. The gateway is rendered from an inventory with
one llama.cpp model, an API key and the metrics log on (what a deployment runs), 1 worker.
llama-server is pinned to CPU 0, nginx and the clients to CPU 1 when there are two.

    python3 bench/llm_bench.py [--rounds 3] [--tokens 64] [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

from phoenix.files import sha256_of
from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.keys import key_hash
from phoenix.gateway.render import Layout, write_tree
from phoenix.inventory import load_inventory
from phoenix.recipes import hostcache, llamacpp, tiny_gguf

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
KEY = "phx-bench-llm-0123456789"
MODEL = "tiny-llama"
TWO_CPUS = (os.cpu_count() or 1) >= 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout:.0f}s")


def pinned(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if TWO_CPUS and shutil.which("taskset") else []


def llama_server(tmp: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    builds = sorted((hostcache.cache_dir() / "builds").glob("llama-server-*.tar.gz"))
    for build in builds:
        with tarfile.open(build) as tar:
            platform = tar.extractfile("build-platform")
            if platform is None or not platform.read().decode().startswith("cpu "):
                continue
            tar.extract("bin/llama-server", tmp, filter="data")
            return tmp / "bin" / "llama-server"
    raise SystemExit(
        "no llama-server build in the host's cache: converge the llama.cpp lab "
        "(examples/llm) or run tests/e2e/test_llm_lab.py once, or pass --llama-server"
    )


def tiny_model(tmp: Path) -> Path:
    source = hostcache.fetch(llamacpp.source_url(llamacpp.DEFAULT_SOURCE), llamacpp.DEFAULT_SHA256)
    vocab = tiny_gguf.vocab_from_source(source, tmp / "vocab.gguf")
    out = tmp / "tiny-llama.gguf"
    tiny_gguf.write_model(vocab, out)
    return out


def gateway(tmp: Path, port: int, llama_port: int) -> Path:
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    net = {"name": "eth0", "bridge": "phxtbr0"}
    inventory = {
        "101": {
            "name": "gw",
            "network_config": {**net, "ip": "127.0.0.1/8"},
            "gateway": {
                "http_port": port,
                "tls": False,
                "api_keys": [{"name": "bench", "sha256": key_hash(KEY)}],
            },
        },
        "201": {
            "name": "llama",
            "network_config": {**net, "ip": "127.0.0.2/8"},
            "application_script": llamacpp.LLAMACPP_APP_SCRIPT,
            "llamacpp_archive_url": llamacpp.DEFAULT_SOURCE,
            "llamacpp_sha256": llamacpp.DEFAULT_SHA256,
            "llamacpp_model": "/models/tiny-llama.gguf",
            "llamacpp_alias": MODEL,
            "llamacpp_port": llama_port,
        },
    }
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": inventory}))
    gw = tmp / "gw"
    (gw / "logs").mkdir(parents=True)
    (gw / "state").mkdir()
    for path in (tmp, gw):
        os.chmod(path, 0o755)
    layout = Layout(
        user=None,
        worker_processes="1",
        log_dir=str(gw / "logs"),
        access_log=False,
        runtime_dir=str(gw),
        listen_address="127.0.0.1",
        metrics_dir=str(gw / "state"),
    )
    rendered, _ = render_gateway(
        load_inventory(etc), 101, tmp / "ca", "derived", layout, addresses={201: "127.0.0.1"}
    )
    write_tree(rendered, gw / "out")
    shutil.chown(gw / "state", "nobody")
    return gw / "out" / "tree" / "nginx.conf"


async def one_stream(client: httpx.AsyncClient, url: str, tokens: int) -> tuple[float, int]:
    """(seconds to the first content chunk, completion tokens) of one streamed chat."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a story"}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started, first, got = time.perf_counter(), 0.0, 0
    headers = {"Authorization": f"Bearer {KEY}"}
    async with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if not first and event.get("choices") and event["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - started
            if event.get("usage"):
                got = event["usage"]["completion_tokens"]
    return first, got


async def run(url: str, streams: int, tokens: int) -> tuple[float, float]:
    """(tokens/s over all streams, median TTFT in s)."""
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64)) as c:
        started = time.perf_counter()
        done = await asyncio.gather(*(one_stream(c, url, tokens) for _ in range(streams)))
        wall = time.perf_counter() - started
    assert all(n == tokens for _, n in done), done
    return sum(n for _, n in done) / wall, statistics.median(t for t, _ in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64, help="completion tokens per stream")
    parser.add_argument("--llama-server", help="a llama-server binary (default: the cache's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="phx-llm-bench-") as name:
        tmp = Path(name)
        server, model = llama_server(tmp, args.llama_server), tiny_model(tmp)
        llama_port, gw_port = free_port(), free_port()
        llama = subprocess.Popen(
            [*pinned("0"), str(server), "--model", str(model), "--alias", MODEL,
             "--host", "127.0.0.1", "--port", str(llama_port), "--parallel", "8",
             "--ctx-size", "8192", "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        conf = gateway(tmp, gw_port, llama_port)
        pid = tmp / "gw" / "nginx.pid"
        try:
            subprocess.run(
                [*pinned("1"), NGINX, "-p", f"{conf.parent}/", "-c", str(conf),
                 "-g", f"pid {pid};"],
                check=True, capture_output=True,
            )  # fmt: skip
            wait_http(f"http://127.0.0.1:{llama_port}/health")
            wait_http(f"http://127.0.0.1:{gw_port}/phoenix/health")
            targets = {
                "direct": f"http://127.0.0.1:{llama_port}/v1/chat/completions",
                "gateway": f"http://127.0.0.1:{gw_port}/v1/chat/completions",
            }
            size = model.stat().st_size / 1e6
            print(
                f"llama-server {sha256_of(server)[:12]}, model {size:.1f} MB, "
                f"{args.tokens} tokens a stream, {args.rounds} rounds"
            )
            for streams in (1, 8):
                asyncio.run(run(targets["direct"], streams, 8))  # warm both paths
                asyncio.run(run(targets["gateway"], streams, 8))
                rates: dict[str, list[float]] = {"direct": [], "gateway": []}
                ttfts: dict[str, list[float]] = {"direct": [], "gateway": []}
                for _ in range(args.rounds):
                    for name_, url in targets.items():
                        rate, ttft = asyncio.run(run(url, streams, args.tokens))
                        rates[name_].append(rate)
                        ttfts[name_].append(ttft)
                direct, through = (statistics.median(rates[k]) for k in ("direct", "gateway"))
                t_direct, t_gw = (statistics.median(ttfts[k]) for k in ("direct", "gateway"))
                print(
                    f"{streams} stream(s): tokens/s direct {direct:.0f}, gateway {through:.0f} "
                    f"(x{through / direct:.3f}); TTFT p50 direct {t_direct * 1000:.2f} ms, "
                    f"gateway {t_gw * 1000:.2f} ms (+{(t_gw - t_direct) * 1000:.2f} ms)"
                )
        finally:
            if pid.exists():
                subprocess.run([NGINX, "-p", f"{conf.parent}/", "-c", str(conf),
                                "-g", f"pid {pid};", "-s", "stop"], check=False)  # fmt: skip
            llama.terminate()
            llama.wait(timeout=30)


if __name__ == "__main__":
    main()

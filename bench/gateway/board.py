"""What users of AI gateways compare, measured side by side on this machine (loopback only).

Targets, each in front of the same model servers:
  direct   the model servers themselves
  proxy    plain nginx `proxy_pass`, 1 worker, keeping as many idle upstream connections as
           the gateway does (UPSTREAM_KEEPALIVE), so the two differ only in what the gateway
           adds
  gateway  the rendered Phoenix gateway, 1 worker, with an API key, a per-key limit and the
           metrics log on (what a real deployment runs)
  gw-open  the same without API keys (what keys and limits cost)
  litellm  LiteLLM's proxy, 1 worker, installed into its own venv (--litellm; skipped with
           a message otherwise)

Model servers: `fast` is nginx `return 200` with a chat completion (a zero-latency
upstream, for added latency); `slow` is an asyncio server answering after 20 ms (for
throughput), and streaming 20 SSE chunks 50 ms apart when asked (for streams).

Figures (medians of interleaved rounds, wrk for HTTP load):
  p50/p99 at 1 client and the added latency over direct (per-round pairs); the noise floor
  is the spread of direct's own p99 over the rounds: a p99 difference below it is noise.
  req/s at 32 and 256 connections against `slow`, and the server CPU per request (the
  target's own processes).
  SSE time to first byte at 1 client (p50 added over direct).
  N concurrent streams: stalls (a gap between chunks more than 200 ms beyond the backend's
  own 50 ms) and failures; and a reload of the gateway while M streams are open (cut ones).
Servers are pinned to CPU 0, load generators to CPU 1 (when there are two CPUs).

    python3 bench/gateway/board.py [--rounds 3] [--duration 3] [--streams 1000]
        [--reload-streams 500] [--litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.keys import key_hash, new_key
from phoenix.gateway.render import Layout, write_tree
from phoenix.gateway.services import UPSTREAM_KEEPALIVE
from phoenix.inventory import load_inventory

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LITELLM_VENV = Path(
    os.environ.get("PHOENIX_BENCH_LITELLM", "/var/cache/phoenix-bench/litellm-venv")
)
SERVER_CPU, LOAD_CPU = "0", "1"
# One bearer token for every target: the gateway's API key, and LiteLLM's master key (which
# LiteLLM requires, starting with "sk-").
KEY = "sk-" + new_key()
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
    separators=(",", ":"),
)
STREAM_CHUNKS, STREAM_GAP = 20, 0.05
STALL = STREAM_GAP + 0.2


# --- the 20 ms / streaming model server (asyncio, run as `board.py upstream PORT`) ---------


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(match.group(1))) if match else b""
            if re.search(rb'"stream"\s*:\s*true', body):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for i in range(STREAM_CHUNKS):
                    if i:
                        await asyncio.sleep(STREAM_GAP)
                    data = f'data: {{"i":{i},"choices":[{{"delta":{{"content":"x"}}}}]}}\n\n'
                    writer.write(f"{len(data):x}\r\n{data}\r\n".encode())
                    await writer.drain()
                done = b"data: [DONE]\n\n"
                writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
            else:
                await asyncio.sleep(0.02)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(COMPLETION)}\r\n\r\n{COMPLETION}".encode()
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def upstream_main(port: int) -> None:
    async def run() -> None:
        server = await asyncio.start_server(_serve, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open")


def pinned(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if (os.cpu_count() or 1) >= 2 else []


@dataclass
class Target:
    name: str
    url: str  # base URL (no path)
    pids: Callable[[], list[int]]  # the target's own server processes (for CPU)
    models: dict[str, str] = field(default_factory=dict)  # bench model -> name it knows

    def chat_url(self, model: str) -> str:
        return self.url + "/v1/chat/completions"


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def stop_all(masters: list[int], procs: list[subprocess.Popen[bytes]], tmp: Path) -> None:
    """Stop the nginx masters and the helper processes a run started, then remove its
    temp dir (everything a bench makes lives there)."""
    for master in masters:
        with contextlib.suppress(OSError):
            os.kill(master, signal.SIGQUIT)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    time.sleep(0.5)
    shutil.rmtree(tmp, ignore_errors=True)


def nginx_conf(tmp: Path, name: str, servers: str) -> Path:
    conf = tmp / name / "nginx.conf"
    (tmp / name).mkdir()
    conf.write_text(
        f"worker_processes 1;\nworker_shutdown_timeout 600s;\nerror_log {tmp}/{name}/error.log;\n"
        "events { worker_connections 8192; }\n"
        f"http {{\n access_log off;\n keepalive_requests 100000;\n"
        f" client_body_temp_path {tmp}/{name}/body;\n proxy_temp_path {tmp}/{name}/proxy;\n"
        " client_max_body_size 16m; client_body_buffer_size 16m;\n"
        f"{servers}\n}}\n"
    )
    return conf


def start_nginx(conf: Path, pid: Path, port: int) -> int:
    subprocess.run(
        [*pinned(SERVER_CPU), NGINX, "-p", f"{conf.parent}/", "-c", str(conf), "-g", f"pid {pid};"],
        check=True,
        capture_output=True,
    )
    wait_port(port)
    return int(pid.read_text().strip())


PROXY = "proxy_http_version 1.1; proxy_set_header Connection ''; proxy_buffering off;"


def gateway_conf(tmp: Path, port: int, fast: int, slow: int, keys: bool = True) -> Path:
    tmp.mkdir(exist_ok=True)
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    net = {"name": "eth0", "bridge": "phxtbr0"}

    def model(ip: str, name: str, model_port: int) -> dict[str, object]:
        return {
            "name": name,
            "network_config": {**net, "ip": f"{ip}/8"},
            "vllm_engine_config": {"ServerConfig": {"port": model_port, "served_model_name": name}},
        }

    api_keys = [{"name": "bench", "sha256": key_hash(KEY), "rpm": 1_000_000}] if keys else []
    inventory = {
        "101": {
            "name": "gw",
            "network_config": {**net, "ip": "127.0.0.1/8"},
            "gateway": {"http_port": port, "tls": False, "api_keys": api_keys},
        },
        "201": model("127.0.0.2", "fast", fast),
        "202": model("127.0.0.3", "slow", slow),
    }
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": inventory}))
    (tmp / "gw" / "logs").mkdir(parents=True)
    (tmp / "gw" / "state").mkdir()
    os.chmod(tmp / "gw", 0o755)
    os.chmod(tmp, 0o755)
    layout = Layout(
        user=None,
        worker_processes="1",
        log_dir=str(tmp / "gw" / "logs"),
        access_log=False,
        runtime_dir=str(tmp / "gw"),
        listen_address="127.0.0.1",
        metrics_dir=str(tmp / "gw" / "state"),
    )
    rendered, _ = render_gateway(
        load_inventory(etc),
        101,
        tmp / "ca",
        "derived",
        layout,
        addresses={201: "127.0.0.1", 202: "127.0.0.1"},
    )
    write_tree(rendered, tmp / "gw" / "out")
    shutil.chown(tmp / "gw" / "state", "nobody")
    return tmp / "gw" / "out" / "tree" / "nginx.conf"


def start_litellm(tmp: Path, port: int, fast: int, slow: int) -> subprocess.Popen[bytes] | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        return None
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        + "".join(
            f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
            f"      api_base: http://127.0.0.1:{p}/v1\n      api_key: none\n"
            for name, p in (("fast", fast), ("slow", slow))
        )
        + "litellm_settings:\n  drop_params: true\n  set_verbose: false\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        "LITELLM_MASTER_KEY": KEY,
    }
    proc = subprocess.Popen(
        [
            *pinned(SERVER_CPU),
            str(binary),
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "litellm.log", "wb"),  # noqa: SIM115
        env=env,
    )
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    log = (tmp / "litellm.log").read_text(errors="replace")[-1500:]
    raise RuntimeError(f"LiteLLM did not start:\n{log}")


# --- load -----------------------------------------------------------------------------------


def lua(tmp: Path, model: str, stream: bool = False) -> Path:
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            **({"stream": True} if stream else {}),
        }
    )
    script = tmp / f"post-{model}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
    )
    return script


def to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@dataclass
class Load:
    rps: float
    p50: float
    p99: float
    cpu_us: float
    errors: int


def wrk(target: Target, model: str, script: Path, connections: int, duration: int) -> Load:
    pids = target.pids()
    before = cpu_seconds(pids)
    out = subprocess.run(
        [
            *pinned(LOAD_CPU),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(script),
            target.chat_url(model),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    used = cpu_seconds(pids) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"\s(50|99)%\s+([\d.]+(?:us|ms|s))\b", out))

    def ms(key: str) -> float:
        m = re.fullmatch(r"([\d.]+)(us|ms|s)", lat[key])
        assert m, out
        return to_ms(m.group(1), m.group(2))

    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(bad.group(1)) if bad else 0) + (
        sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    )
    return Load(rps, ms("50"), ms("99"), used / max(done, 1) * 1e6, errors)


def request_bytes(target: Target, model: str, stream: bool) -> bytes:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()
    host = target.url.split("//", 1)[1]
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class StreamResult:
    done: bool = False
    first: float = 0.0
    max_gap: float = 0.0
    chunks: int = 0


async def one_stream(port: int, payload: bytes, first_only: bool = False) -> StreamResult:
    res = StreamResult()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    except (TimeoutError, OSError):
        return res
    start = last = time.monotonic()
    try:
        writer.write(payload)
        await writer.drain()
        while True:
            data = await asyncio.wait_for(reader.read(65536), 30)
            if not data:
                break
            now = time.monotonic()
            n = data.count(b"data: ")
            if n:
                if res.chunks == 0:
                    res.first = now - start
                else:
                    res.max_gap = max(res.max_gap, now - last)
                res.chunks += n
                last = now
            if b"[DONE]" in data or (first_only and res.chunks):
                res.done = True
                break
            if data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 200"):
                break
    except (TimeoutError, OSError):
        pass
    finally:
        writer.close()
    return res


def streams(
    port: int, payload: bytes, count: int, during: Callable[[], None] | None = None
) -> list[StreamResult]:
    async def run() -> list[StreamResult]:
        tasks = [asyncio.create_task(one_stream(port, payload)) for _ in range(count)]
        if during is not None:
            await asyncio.sleep(0.4)
            during()
        return list(await asyncio.gather(*tasks))

    return asyncio.run(run())


def first_bytes(target: Target, n: int = 30) -> float:
    port = int(target.url.rsplit(":", 1)[1])
    payload = request_bytes(target, target.models["slow"], True)
    return statistics.median(asyncio.run(one_stream(port, payload)).first * 1000 for _ in range(n))


# --- report ---------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(runs: list[Load], base: list[Load]) -> float:
    """Median of each round's req/s ratio (rounds are interleaved: pairs share conditions)."""
    return med([a.rps / b.rps for a, b in zip(runs, base, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--reload-streams", type=int, default=500)
    parser.add_argument(
        "--litellm",
        action="store_true",
        help=f"also measure LiteLLM (installed into {LITELLM_VENV} if missing)",
    )
    args = parser.parse_args()
    if args.litellm and not (LITELLM_VENV / "bin" / "litellm").exists():
        print(f"installing LiteLLM into {LITELLM_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True
        )
    tmp = Path(tempfile.mkdtemp(prefix="phxt-board-"))
    masters: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fast, slow, px_fast, px_slow, gw = (free_port() for _ in range(5))
        masters.append(
            start_nginx(
                nginx_conf(
                    tmp,
                    "fast",
                    (
                        f"server {{ listen 127.0.0.1:{fast}; location / {{ "
                        f"default_type application/json; return 200 '{COMPLETION}'; }} }}"
                    ),
                ),
                tmp / "fast.pid",
                fast,
            )
        )
        procs.append(
            subprocess.Popen([*pinned(SERVER_CPU), sys.executable, __file__, "upstream", str(slow)])
        )
        wait_port(slow)
        proxy_master = start_nginx(
            nginx_conf(
                tmp,
                "proxy",
                "".join(
                    f"upstream u{p} {{ server 127.0.0.1:{p}; keepalive {UPSTREAM_KEEPALIVE}; }}\n"
                    f"server {{ listen 127.0.0.1:{lp}; "
                    f"location / {{ proxy_pass http://u{p}; {PROXY} }} }}\n"
                    for p, lp in ((fast, px_fast), (slow, px_slow))
                ),
            ),
            tmp / "proxy.pid",
            px_fast,
        )
        masters.append(proxy_master)
        gw_master = start_nginx(gateway_conf(tmp, gw, fast, slow), tmp / "gw.pid", gw)
        masters.append(gw_master)
        gw_open = free_port()
        open_master = start_nginx(
            gateway_conf(tmp / "open", gw_open, fast, slow, keys=False), tmp / "open.pid", gw_open
        )
        masters.append(open_master)
        slow_proc = procs[0]

        class Direct(Target):
            def chat_url(self, model: str) -> str:
                return f"http://127.0.0.1:{fast if model == 'fast' else slow}/v1/chat/completions"

        class Proxy(Target):
            def chat_url(self, model: str) -> str:
                port = px_fast if model == "fast" else px_slow
                return f"http://127.0.0.1:{port}/v1/chat/completions"

        targets: list[Target] = [
            Direct(
                "direct",
                f"http://127.0.0.1:{slow}",
                lambda: [masters[0], *children(masters[0]), slow_proc.pid],
                {"slow": "slow", "fast": "fast"},
            ),
            Proxy(
                "proxy",
                f"http://127.0.0.1:{px_slow}",
                lambda: children(proxy_master),
                {"slow": "slow", "fast": "fast"},
            ),
            Target(
                "gateway",
                f"http://127.0.0.1:{gw}",
                lambda: children(gw_master),
                {"slow": "slow", "fast": "fast"},
            ),
            Target(
                "gw-open",
                f"http://127.0.0.1:{gw_open}",
                lambda: children(open_master),
                {"slow": "slow", "fast": "fast"},
            ),
        ]
        if args.litellm:
            ll_port = free_port()
            ll = start_litellm(tmp, ll_port, fast, slow)
            if ll is None:
                print("LiteLLM: not installed, skipped")
            else:
                procs.append(ll)
                targets.append(
                    Target(
                        "litellm",
                        f"http://127.0.0.1:{ll_port}",
                        lambda: [ll.pid, *children(ll.pid)],
                        {"slow": "slow", "fast": "fast"},
                    )
                )
        else:
            print(
                "LiteLLM: skipped (pass --litellm to install it into its own venv and "
                "measure it side by side)"
            )
        if (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(0, {int(LOAD_CPU)})
        scripts = {m: lua(tmp, m) for m in ("fast", "slow")}
        lat: dict[str, list[Load]] = {t.name: [] for t in targets}
        thr: dict[tuple[str, int], list[Load]] = {}
        ttfb: dict[str, list[float]] = {t.name: [] for t in targets}
        for t in targets:  # warm up (LiteLLM's first calls are slow)
            wrk(t, "fast", scripts["fast"], 1, 1)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            for t in targets:
                lat[t.name].append(wrk(t, "fast", scripts["fast"], 1, args.duration))
            for conns in (32, 256):
                for t in targets:
                    thr.setdefault((t.name, conns), []).append(
                        wrk(t, "slow", scripts["slow"], conns, args.duration)
                    )
            for t in targets:
                ttfb[t.name].append(first_bytes(t))
        held: dict[str, tuple[int, int, float]] = {}
        for t in targets:
            port = int(t.url.rsplit(":", 1)[1])
            results = streams(port, request_bytes(t, "slow", True), args.streams)
            failed = sum(1 for x in results if not x.done)
            stalls = sum(1 for x in results if x.done and x.max_gap > STALL)
            worst = max((x.max_gap for x in results if x.done), default=0.0)
            held[t.name] = (failed, stalls, worst * 1000)
        cut: dict[str, int] = {}
        for name, master in (("proxy", proxy_master), ("gateway", gw_master)):
            target = next(x for x in targets if x.name == name)
            port = int(target.url.rsplit(":", 1)[1])
            results = streams(
                port,
                request_bytes(target, "slow", True),
                args.reload_streams,
                during=functools.partial(os.kill, master, signal.SIGHUP),
            )
            cut[name] = sum(1 for x in results if not x.done)

        print()
        print(
            f"wrk -t1, {args.rounds} interleaved rounds of {args.duration}s, medians; servers "
            f"on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}; 1 worker each"
        )
        names = [t.name for t in targets]
        print(f"{'':34}" + "".join(f"{n:>19}" for n in names))

        def row(label: str, cells: list[str]) -> None:
            print(f"{label:34}" + "".join(f"{c:>19}" for c in cells))

        def added(name: str, attr: str) -> float:
            return (
                med(
                    [
                        getattr(a, attr) - getattr(b, attr)
                        for a, b in zip(lat[name], lat["direct"], strict=True)
                    ]
                )
                * 1000
            )

        row(
            "p50 at 1 client (zero-lat upstr)",
            [
                f"{med([x.p50 for x in lat[n]]) * 1000:.0f}us"
                + ("" if n == "direct" else f" (+{added(n, 'p50'):.0f})")
                for n in names
            ],
        )
        row(
            "p99 at 1 client",
            [
                f"{med([x.p99 for x in lat[n]]) * 1000:.0f}us"
                + ("" if n == "direct" else f" ({added(n, 'p99'):+.0f})")
                for n in names
            ],
        )
        p99s = [x.p99 * 1000 for x in lat["direct"]]
        row("noise floor (direct p99 spread)", [f"{min(p99s):.0f}-{max(p99s):.0f}us"])
        for conns in (32, 256):
            base = thr[("proxy", conns)]
            row(
                f"req/s, {conns} conns, 20 ms upstream",
                [
                    f"{med([x.rps for x in thr[(n, conns)]]):.0f}"
                    + (
                        ""
                        if n in ("direct", "proxy")
                        else f" ({ratio(thr[(n, conns)], base):.2f}x)"
                    )
                    for n in names
                ],
            )
        row(
            "server CPU/request (256 conns)",
            [f"{med([x.cpu_us for x in thr[(n, 256)]]):.0f}us" for n in names],
        )
        errors = {n: sum(x.errors for k, v in thr.items() if k[0] == n for x in v) for n in names}
        row("errors under load (all runs)", [str(errors[n]) for n in names])
        row(
            "SSE first byte p50",
            [
                f"{med(ttfb[n]):.2f}ms"
                + ("" if n == "direct" else f" (+{med(ttfb[n]) - med(ttfb['direct']):.2f})")
                for n in names
            ],
        )
        row(f"{args.streams} streams (20 x 50 ms): failed", [str(held[n][0]) for n in names])
        row("  stalled (gap > 250 ms)", [str(held[n][1]) for n in names])
        row("  worst gap", [f"{held[n][2]:.0f}ms" for n in names])
        row(
            f"reload under {args.reload_streams} streams: cut",
            [str(cut[n]) if n in cut else "-" for n in names],
        )
        if "litellm" in names:
            for conns in (32, 256):
                litellm = med([x.rps for x in thr[("litellm", conns)]])
                gateway = med([x.rps for x in thr[("gateway", conns)]])
                shown = f"{gateway / litellm:.0f}x" if litellm else "LiteLLM completed none"
                print(f"gateway / LiteLLM req/s at {conns} connections: {shown}")
    finally:
        stop_all(masters, procs, tmp)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "upstream":
        upstream_main(int(sys.argv[2]))
    else:
        main()

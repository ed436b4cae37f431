"""Benchmark the gateway's model routing against plain nginx proxying (loopback only).

Three targets, each measured with wrk (POST, ~100 B and ~100 KB JSON bodies):
  direct   a fast upstream: nginx `return 200` on 127.0.0.1
  proxy    plain nginx `proxy_pass` to it (keepalive upstream, same body buffer)
  gateway  the rendered Phoenix gateway: njs reads `model`, internalRedirect, proxy_pass

Every nginx runs one worker, no access log, under a temp prefix, and is stopped at the
end. Targets (issue 4): gateway >= 0.95x proxy throughput, <= 0.5 ms added p99.

    python3 bench/gateway/run.py [--duration 8] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.render import Layout, write_tree
from phoenix.inventory import load_inventory

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def simple_conf(tmp: Path, name: str, server: str, extra_http: str = "") -> Path:
    conf = tmp / name / "nginx.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        f"worker_processes 1;\nerror_log {tmp}/{name}/error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n access_log off;\n keepalive_requests 100000;\n"
        f" client_body_temp_path {tmp}/{name}/body;\n proxy_temp_path {tmp}/{name}/proxy;\n"
        f"{extra_http}\n{server}\n}}\n"
    )
    return conf


def start(conf: Path, pid: Path, port: int) -> None:
    subprocess.run([NGINX, "-p", f"{conf.parent}/", "-c", str(conf), "-g", f"pid {pid};"],
                   check=True, capture_output=True)
    wait_port(port)


def gateway_conf(tmp: Path, http_port: int, upstream_port: int) -> Path:
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    net = {"name": "eth0", "bridge": "phxtbr0"}
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {
        "101": {"name": "phxt-gw", "network_config": {**net, "ip": "127.0.0.1/8"},
                "gateway": {"http_port": http_port, "tls": False}},
        "201": {"name": "phxt-m1", "network_config": {**net, "ip": "127.0.0.2/8"},
                "vllm_engine_config": {"ServerConfig": {"port": upstream_port,
                                                        "served_model_name": "alpha"}}},
    }}))
    inventory = load_inventory(etc)
    (tmp / "gw" / "logs").mkdir(parents=True)
    layout = Layout(user=None, worker_processes="1", log_dir=str(tmp / "gw" / "logs"),
                    access_log=False, runtime_dir=str(tmp / "gw"), listen_address="127.0.0.1")
    rendered, _ = render_gateway(inventory, 101, tmp / "state", "derived", layout,
                                 addresses={201: "127.0.0.1"})
    write_tree(rendered, tmp / "gw" / "out")
    return tmp / "gw" / "out" / "tree" / "nginx.conf"


def body(size: int) -> str:
    base = {"model": "alpha", "messages": [{"role": "user", "content": ""}]}
    pad = size - len(json.dumps(base))
    base["messages"][0]["content"] = "x" * max(pad, 0)
    return json.dumps(base)


def wrk(url: str, lua: Path, duration: int, connections: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua), url],
        check=True, capture_output=True, text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: non-2xx responses\n{out}")
    return rps, p99_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="phxt-bench-"))
    pids: list[Path] = []
    try:
        up, px, gw = free_port(), free_port(), free_port()
        confs = {
            "direct": simple_conf(tmp, "up", f"server {{ listen 127.0.0.1:{up}; "
                                  "location / { default_type application/json; "
                                  "return 200 '{\"ok\":true}'; } }",
                                  " client_max_body_size 16m; client_body_buffer_size 16m;"),
            "proxy": simple_conf(
                tmp, "px",
                f"upstream fast {{ server 127.0.0.1:{up}; keepalive 32; }}\n"
                f"server {{ listen 127.0.0.1:{px}; location / {{ proxy_pass http://fast; "
                "proxy_http_version 1.1; proxy_set_header Connection ''; "
                "proxy_buffering off; } }",
                " client_max_body_size 16m; client_body_buffer_size 16m;",
            ),
            "gateway": gateway_conf(tmp, gw, up),
        }
        ports = {"direct": up, "proxy": px, "gateway": gw}
        for name, conf in confs.items():
            pid = tmp / f"{name}.pid"
            pids.append(pid)
            start(conf, pid, ports[name])
        results: dict[tuple[str, str], tuple[float, float]] = {}
        for label, size in (("100B", 100), ("100KB", 100 * 1024)):
            payload = tmp / f"body-{label}.json"
            payload.write_text(body(size))
            lua = tmp / f"post-{label}.lua"
            lua.write_text(
                f'local f = io.open("{payload}", "rb")\nwrk.method = "POST"\n'
                'wrk.body = f:read("*a")\nf:close()\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            for name in confs:
                url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                results[(name, label)] = wrk(url, lua, args.duration, args.connections)
        print(f"wrk -t1 -c{args.connections} -d{args.duration}s, loopback, 1 nginx worker each")
        print(f"{'body':6} {'target':8} {'req/s':>10} {'p99 ms':>8} {'vs proxy':>9} "
              f"{'+p99 ms':>8}")
        for label in ("100B", "100KB"):
            prps, pp99 = results[("proxy", label)]
            for name in confs:
                rps, p99 = results[(name, label)]
                print(f"{label:6} {name:8} {rps:10.0f} {p99:8.2f} {rps / prps:8.2f}x "
                      f"{p99 - pp99:+8.2f}")
    finally:
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid.read_text().strip()), signal.SIGQUIT)
        time.sleep(0.5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark the gateway's model routing against plain nginx proxying (loopback only).

Three targets, each measured with wrk (POST JSON bodies of ~100 B and ~100 KB; the 100 KB
body twice: "model" first, and "model" after the messages as the OpenAI SDK sends it):
  direct   a fast upstream: nginx `return 200` on 127.0.0.1
  proxy    plain nginx `proxy_pass` to it (keepalive upstream, same body buffer)
  njs-only what any njs body handler costs: js_content hands over to plain proxy_pass,
           no routing at all (the floor for a router built on njs, as issue 4 asks)
  gateway  the rendered Phoenix gateway: njs hands over, nginx's regex picks the upstream

Every nginx runs one worker, no access log, under a temp prefix, and is stopped at the
end. The machine is shared and noisy, so the targets run in turn for several short rounds;
the table shows medians, and "vs proxy" / "+p99" are medians of each round's pair. "cpu/req"
is the nginx worker's CPU time per request (less sensitive to other load than req/s).
Targets (issue 4): gateway >= 0.95x proxy throughput, <= 0.5 ms added p99.

    python3 bench/gateway/run.py [--duration 3] [--rounds 5] [--connections 32]
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
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.render import Layout, write_tree
from phoenix.gateway.services import UPSTREAM_KEEPALIVE
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


def simple_conf(tmp: Path, name: str, server: str, extra_http: str = "", main: str = "") -> Path:
    conf = tmp / name / "nginx.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        f"{main}worker_processes 1;\nerror_log {tmp}/{name}/error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n access_log off;\n keepalive_requests 100000;\n"
        f" client_body_temp_path {tmp}/{name}/body;\n proxy_temp_path {tmp}/{name}/proxy;\n"
        f"{extra_http}\n{server}\n}}\n"
    )
    return conf


def start(conf: Path, pid: Path, port: int) -> None:
    subprocess.run(
        [NGINX, "-p", f"{conf.parent}/", "-c", str(conf), "-g", f"pid {pid};"],
        check=True,
        capture_output=True,
    )
    wait_port(port)


PROXY = "proxy_http_version 1.1; proxy_set_header Connection ''; proxy_buffering off;"
BODY_IN_MEMORY = " client_max_body_size 16m; client_body_buffer_size 16m;"


def njs_only_conf(tmp: Path, port: int, upstream_port: int) -> Path:
    """The floor any njs body handler sets: js_content (nginx reads the body, njs runs) and
    an internal redirect to plain `proxy_pass`, with no routing work at all."""
    script = tmp / "njs-only.js"
    script.write_text("function go(r) { r.internalRedirect('@up'); }\nexport default {go};\n")
    return simple_conf(
        tmp,
        "nj",
        f"upstream fast {{ server 127.0.0.1:{upstream_port}; keepalive {UPSTREAM_KEEPALIVE}; }}\n"
        f"server {{ listen 127.0.0.1:{port}; location / {{ js_content njs_only.go; }} "
        f"location @up {{ proxy_pass http://fast; {PROXY} }} }}",
        # the gateway's body settings
        " client_max_body_size 8m; client_body_buffer_size 8m; client_body_in_single_buffer on;"
        f" js_path {tmp}; js_import njs_only from njs-only.js;",
        main=f"load_module {Layout().js_module};\n",
    )


def gateway_conf(tmp: Path, http_port: int, upstream_port: int) -> Path:
    etc = tmp / "etc"
    etc.mkdir()
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    net = {"name": "eth0", "bridge": "phxtbr0"}
    (etc / "phoenix_lxc_configs.json").write_text(
        json.dumps(
            {
                "lxc_configs": {
                    "101": {
                        "name": "phxt-gw",
                        "network_config": {**net, "ip": "127.0.0.1/8"},
                        "gateway": {"http_port": http_port, "tls": False},
                    },
                    "201": {
                        "name": "phxt-m1",
                        "network_config": {**net, "ip": "127.0.0.2/8"},
                        "vllm_engine_config": {
                            "ServerConfig": {"port": upstream_port, "served_model_name": "alpha"}
                        },
                    },
                }
            }
        )
    )
    inventory = load_inventory(etc)
    (tmp / "gw" / "logs").mkdir(parents=True)
    layout = Layout(
        user=None,
        worker_processes="1",
        log_dir=str(tmp / "gw" / "logs"),
        access_log=False,
        runtime_dir=str(tmp / "gw"),
        listen_address="127.0.0.1",
    )
    rendered, _ = render_gateway(
        inventory, 101, tmp / "state", "derived", layout, addresses={201: "127.0.0.1"}
    )
    write_tree(rendered, tmp / "gw" / "out")
    return tmp / "gw" / "out" / "tree" / "nginx.conf"


def body(size: int, model_last: bool = False) -> str:
    messages = [{"role": "user", "content": ""}]
    base = (
        {"messages": messages, "model": "alpha"}
        if model_last
        else {"model": "alpha", "messages": messages}
    )
    pad = size - len(json.dumps(base))
    messages[0]["content"] = "x" * max(pad, 0)
    return json.dumps(base)


def worker_cpu(master: int) -> float:
    """CPU seconds used so far by the worker processes of nginx master `master`."""
    kids = subprocess.run(
        ["pgrep", "-P", str(master)], capture_output=True, text=True, check=False
    ).stdout.split()
    ticks = 0
    for kid in kids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


Sample = tuple[float, float, float]  # req/s, p99 ms, worker CPU us per request


def wrk(url: str, lua: Path, duration: int, connections: int, master: int) -> Sample:
    cpu_before = worker_cpu(master)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: non-2xx responses\n{out}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, p99_ms, (worker_cpu(master) - cpu_before) / max(done, 1) * 1e6


BODIES = (
    ("100B", 100, False),
    ("100KB", 100 * 1024, False),
    ("100KB-ml", 100 * 1024, True),
)  # -ml: "model" last, after the messages


def report(results: dict[tuple[str, str], list[Sample]], names: list[str]) -> None:
    print(
        f"{'body':9} {'target':8} {'req/s':>9} {'p99 ms':>7} {'vs proxy':>9} "
        f"{'+p99 ms':>8} {'cpu/req':>9}"
    )
    for label, _, _ in BODIES:
        proxy = results[("proxy", label)]
        for name in names:
            runs = results[(name, label)]
            ratio = statistics.median(a[0] / b[0] for a, b in zip(runs, proxy, strict=True))
            added = statistics.median(a[1] - b[1] for a, b in zip(runs, proxy, strict=True))
            print(
                f"{label:9} {name:8} {statistics.median(r[0] for r in runs):9.0f} "
                f"{statistics.median(r[1] for r in runs):7.2f} {ratio:8.2f}x "
                f"{added:+8.2f} {statistics.median(r[2] for r in runs):7.1f}us"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per target and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="phxt-bench-"))
    pids: list[Path] = []
    try:
        up, px, nj, gw = free_port(), free_port(), free_port(), free_port()
        confs = {
            "direct": simple_conf(
                tmp,
                "up",
                f"server {{ listen 127.0.0.1:{up}; "
                "location / { default_type application/json; "
                "return 200 '{\"ok\":true}'; } }",
                " client_max_body_size 16m; client_body_buffer_size 16m;",
            ),
            "proxy": simple_conf(
                tmp,
                "px",
                f"upstream fast {{ server 127.0.0.1:{up}; keepalive {UPSTREAM_KEEPALIVE}; }}\n"
                f"server {{ listen 127.0.0.1:{px}; location / {{ proxy_pass http://fast; "
                f"{PROXY} }} }}",
                BODY_IN_MEMORY,
            ),
            "njs-only": njs_only_conf(tmp, nj, up),
            "gateway": gateway_conf(tmp, gw, up),
        }
        ports = {"direct": up, "proxy": px, "njs-only": nj, "gateway": gw}
        masters: dict[str, int] = {}
        for name, conf in confs.items():
            pid = tmp / f"{name}.pid"
            pids.append(pid)
            start(conf, pid, ports[name])
            masters[name] = int(pid.read_text().strip())
        results: dict[tuple[str, str], list[Sample]] = {}
        for label, size, model_last in BODIES:
            payload = tmp / f"body-{label}.json"
            payload.write_text(body(size, model_last))
            lua = tmp / f"post-{label}.lua"
            lua.write_text(
                f'local f = io.open("{payload}", "rb")\nwrk.method = "POST"\n'
                'wrk.body = f:read("*a")\nf:close()\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            for _ in range(args.rounds):
                for name in confs:
                    url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                    results.setdefault((name, label), []).append(
                        wrk(url, lua, args.duration, args.connections, masters[name])
                    )
        print(
            f"wrk -t1 -c{args.connections} -d{args.duration}s x {args.rounds} rounds, "
            "loopback, 1 nginx worker each"
        )
        report(results, list(confs))
    finally:
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid.read_text().strip()), signal.SIGQUIT)
        time.sleep(0.5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

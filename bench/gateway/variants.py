"""A/B of gateway variants against plain `proxy_pass`, in the same run (loopback only).

Each variant is the rendered gateway (board.py's, with an API key, a limit and the metrics
log) with one edit to its tree, so a cost is measured apart from everything else:
  gw      as rendered
  ka32    model upstreams keeping 32 idle connections (the gateway before it kept 256)
  nolog   no metrics log line
  lite    model endpoints hand over with a one-line njs module of their own (no table,
          no router)
  nousage no answer filters (usage.js: usage and error pages) on the model locations
  noop    the answer filters passing everything on and doing nothing else
  vm2     no answer filters, but an njs VM started in the routed location (what a second
          VM per request costs: the filters run after the hand-over's redirect)
  nolimits no per-address and large-body connection limits (limit_conn)
A name starting with `open` (`open`, `openlite`, ...) is that variant without API keys.
Rounds are interleaved; figures are medians, ratios medians of each round's pair:
  p50 at 1 client (zero-latency upstream) and its difference from the proxy's;
  req/s and CPU per request at 32 connections (zero-latency upstream);
  req/s and CPU per request at 256 connections (20 ms upstream).
The proxy keeps as many idle upstream connections as the gateway (UPSTREAM_KEEPALIVE).

    python3 bench/gateway/variants.py gw,ka32,open [--rounds 5] [--duration 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phoenix.gateway.services import UPSTREAM_KEEPALIVE

_spec = importlib.util.spec_from_file_location("board", Path(__file__).with_name("board.py"))
assert _spec is not None and _spec.loader is not None
board: Any = importlib.util.module_from_spec(_spec)
sys.modules["board"] = board
_spec.loader.exec_module(board)

API = "sites-available/phoenix-api"


def sub(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if not re.search(old, text):
        raise SystemExit(f"{path}: no {old!r} to edit")
    path.write_text(re.sub(old, new, text))


def lite(tree: Path) -> None:
    (tree / "njs" / "handover.js").write_text(
        "function route(r) {\n"
        "    r.internalRedirect(r.method === 'POST' ? '@phx_route' : '@phx_parse');\n"
        "}\nexport default {route};\n"
    )
    sub(
        tree / API,
        r"js_content router\.route;",
        "js_import handover from handover.js; js_content handover.route;",
    )


def noop(tree: Path) -> None:
    """The answer filters passing each chunk on and doing nothing else."""
    (tree / "njs" / "usage.js").write_text(
        "function headers(r) {}\n"
        "function scan(r, data, flags) { r.sendBuffer(data, flags); }\n"
        "export default {headers, scan};\n"
    )


def vm2(tree: Path) -> None:
    """No answer filters, but the routed location starts an njs VM of its own (a js_set
    variable it reads first): what a second VM per request costs, filter or not."""
    nousage(tree)
    http = tree / "conf.d" / "phoenix-http.conf"
    http.write_text(http.read_text() + "js_set $phx_vm_probe router.operatorName;\n")
    probe = "location @phx_route { set $phx_probe $phx_vm_probe;"
    sub(tree / API, r"location @phx_route \{", probe)


def nousage(tree: Path) -> None:
    sub(
        tree / API,
        r"js_import usage from usage\.js;\s*js_header_filter usage\.headers;"
        r"\s*js_body_filter usage\.scan;",
        "",
    )


VARIANTS: dict[str, Callable[[Path], None]] = {
    "gw": lambda tree: None,
    "ka32": lambda tree: sub(
        tree / "conf.d/phoenix-upstreams.conf",
        f"keepalive {UPSTREAM_KEEPALIVE};",
        "keepalive 32;",
    ),
    "nolog": lambda tree: sub(
        tree / API, r"access_log \S+phoenix-requests\.log[^;]*;", "access_log off;"
    ),
    "lite": lite,
    "nousage": nousage,
    "vm2": vm2,
    "noop": noop,
    "nolimits": lambda tree: sub(tree / API, r"limit_conn phx_\w+ \d+;", ""),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run")
    args = parser.parse_args()
    names = args.variants.split(",")
    for name in names:
        if name.removeprefix("open") not in VARIANTS | {"": None}:
            raise SystemExit(f"unknown variant {name!r}")
    tmp = Path(tempfile.mkdtemp(prefix="phxt-variants-"))
    masters: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fast, slow, px_fast, px_slow = (board.free_port() for _ in range(4))
        fast_conf = board.nginx_conf(
            tmp,
            "fast",
            f"server {{ listen 127.0.0.1:{fast}; location / {{ "
            f"default_type application/json; return 200 '{board.COMPLETION}'; }} }}",
        )
        masters.append(board.start_nginx(fast_conf, tmp / "fast.pid", fast))
        upstream = [*board.pinned(board.SERVER_CPU), sys.executable, board.__file__]
        procs.append(subprocess.Popen([*upstream, "upstream", str(slow)]))
        board.wait_port(slow)
        proxy_conf = board.nginx_conf(
            tmp,
            "proxy",
            "".join(
                f"upstream u{p} {{ server 127.0.0.1:{p}; keepalive {UPSTREAM_KEEPALIVE}; }}\n"
                f"server {{ listen 127.0.0.1:{lp}; "
                f"location / {{ proxy_pass http://u{p}; {board.PROXY} }} }}\n"
                for p, lp in ((fast, px_fast), (slow, px_slow))
            ),
        )
        proxy_master = board.start_nginx(proxy_conf, tmp / "proxy.pid", px_fast)
        masters.append(proxy_master)

        class Proxy(board.Target):  # type: ignore[misc]
            def chat_url(self, model: str) -> str:
                port = px_fast if model == "fast" else px_slow
                return f"http://127.0.0.1:{port}/v1/chat/completions"

        targets = [
            Proxy("proxy", f"http://127.0.0.1:{px_slow}", lambda: board.children(proxy_master))
        ]
        for name in names:
            port = board.free_port()
            conf = board.gateway_conf(
                tmp / name, port, fast, slow, keys=not name.startswith("open")
            )
            VARIANTS[name.removeprefix("open") or "gw"](conf.parent)
            master = board.start_nginx(conf, tmp / f"{name}.pid", port)
            masters.append(master)
            targets.append(
                board.Target(name, f"http://127.0.0.1:{port}", lambda m=master: board.children(m))
            )
        if (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(0, {int(board.LOAD_CPU)})
        scripts = {m: board.lua(tmp, m) for m in ("fast", "slow")}
        for t in targets:
            board.wrk(t, "fast", scripts["fast"], 1, 1)
        runs: dict[tuple[str, str], list[Any]] = {}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            for kind, model, conns in (
                ("lat", "fast", 1),
                ("c32", "fast", 32),
                ("c256", "slow", 256),
            ):
                for t in targets:
                    load = board.wrk(t, model, scripts[model], conns, args.duration)
                    runs.setdefault((t.name, kind), []).append(load)
        med = statistics.median

        def vs(name: str, kind: str, attr: str) -> float:
            pairs = zip(runs[(name, kind)], runs[("proxy", kind)], strict=True)
            # a run whose CPU reading failed (0) has no ratio
            ratios = [getattr(a, attr) / getattr(b, attr) for a, b in pairs if getattr(b, attr)]
            return float(med(ratios)) if ratios else float("nan")

        print(f"load average {os.getloadavg()[0]:.1f}; proxy keepalive {UPSTREAM_KEEPALIVE}")
        for t in targets:
            n = t.name
            lat = runs[(n, "lat")]
            added = med([a.p50 - b.p50 for a, b in zip(lat, runs[("proxy", "lat")], strict=True)])
            print(
                f"{n:10} p50 {med([x.p50 for x in lat]) * 1000:5.0f}us ({added * 1000:+4.0f}) | "
                f"32c {med([x.rps for x in runs[(n, 'c32')]]):6.0f}/s "
                f"cpu {med([x.cpu_us for x in runs[(n, 'c32')]]):5.1f}us "
                f"({vs(n, 'c32', 'cpu_us'):.2f}x) | "
                f"256c {med([x.rps for x in runs[(n, 'c256')]]):6.0f}/s "
                f"({vs(n, 'c256', 'rps'):.2f}x) "
                f"cpu {med([x.cpu_us for x in runs[(n, 'c256')]]):5.1f}us "
                f"({vs(n, 'c256', 'cpu_us'):.2f}x)"
            )
    finally:
        board.stop_all(masters, procs, tmp)


if __name__ == "__main__":
    main()

"""The demo lab (examples/lab) on real LXC: gateway 101 derived from the inventory, two
demo model servers behind a firewall, TLS from the Phoenix CA, `phoenix status`.

The inventory is examples/lab's, moved onto the test slot's bridge and subnet with test
CTIDs (77xx), so it never collides with a demo lab running on the same host. One lab is
built per module; tests run in file order on it.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix.cli.gateway_app import GATEWAY as GATEWAY_APP
from phoenix.drivers.lxc import LxcDriver
from phoenix.gateway.bundle import gateway_bundle
from phoenix.gateway.tls import CA_CERT, default_ca_dir
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.planner import PlanOptions
from phoenix.plan.run import converge, power_plan, run_plan
from phoenix.plan.status import gather_route_status, gather_status
from phoenix.recipes.runner import run_bundle
from tests.e2e.conftest import LxcHost, destroy_guests, open_for_guests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab"
# 804 is not in examples/lab: the last test adds it as a second server of demo-chat.
CTIDS = {"900": 7790, "101": 7791, "801": 7792, "802": 7793, "803": 7794, "804": 7795}
HOSTS = {"900": 140, "101": 141, "801": 142, "802": 143, "803": 144, "804": 145}
BASE, GATEWAY, MODEL_A, MODEL_B, CLIENT, MODEL_A2 = 7790, 7791, 7792, 7793, 7794, 7795
API_HOST, CHAT_HOST = "api.lab.phoenix.local", "chat.lab.phoenix.local"


@dataclass
class Lab:
    host: LxcHost
    etc: Path
    state: Path
    driver: LxcDriver

    @property
    def inventory(self) -> Inventory:
        return load_inventory(self.etc)

    def address(self, ctid: int) -> str:
        old = next(k for k, v in CTIDS.items() if v == ctid)
        return self.host.ip(HOSTS[old])

    @property
    def base_url(self) -> str:
        return f"http://{self.address(GATEWAY)}"

    @property
    def ca(self) -> Path:
        return default_ca_dir(self.state) / CA_CERT

    def converge(self) -> None:
        outcome = converge(
            self.inventory,
            self.driver,
            None,
            PlanOptions(gateway=GATEWAY_APP),  # handed in, as the CLI does
            reporter=CollectingReporter(),
            state_dir=self.state,
        )
        assert outcome.result.ok, outcome.result

    def power(self, ctid: int, action: str) -> None:
        inventory = self.inventory
        plan = power_plan(inventory, self.driver, [ctid], action)
        assert run_plan(inventory, self.driver, plan, CollectingReporter(), self.state).ok

    def curl_from(self, ctid: int, url: str) -> int:
        """HTTP status seen from inside guest `ctid`; 0 when the connection is refused or
        times out (what a firewall does). A probe that could not run (a stopped guest, no
        curl, a bad URL) fails the test: it would prove nothing about the firewall."""
        running = self.driver.exec(ctid, ["true"], timeout=15)
        assert running.ok, f"guest {ctid} cannot run the probe (stopped?): {running.stderr}"
        result = self.driver.exec(
            ctid,
            ["curl", "-s", "-S", "-o", "/dev/null", "-m", "4", "-w", "%{http_code}", url],
            timeout=15,
        )
        if result.ok:
            return int(result.stdout.strip())
        # 7: connection refused (a REJECT rule), 28: timed out (a DROP rule)
        assert result.returncode in (7, 28), (ctid, result.returncode, result.stderr)
        return 0

    def nginx_master_pid(self) -> str:
        result = self.driver.exec(GATEWAY, ["cat", "/run/nginx.pid"], timeout=10)
        assert result.ok, result
        return result.stdout.strip()


def shared_dir(state: Path) -> Path:
    """Where the lab client's mount point lives on the host (beside the state dir)."""
    return state.parent / "shared"


def _inventory_for(host: LxcHost, state: Path) -> dict[str, Any]:
    """examples/lab moved onto the slot: bridge, addresses, CTIDs, firewall sources."""
    text = (EXAMPLE / "phoenix_lxc_configs.json").read_text()
    data = json.loads(text)
    out: dict[str, Any] = {}
    for old, entry in data["lxc_configs"].items():
        entry["network_config"].update(
            bridge=host.bridge, ip=host.address(HOSTS[old]), gw=host.gateway
        )
        entry["name"] = entry["name"].replace("lab-", "phxt-lab-")
        entry["template"] = host.template if "template" in entry else None
        if entry["template"] is None:
            del entry["template"]
        if "clone_from_ctid" in entry:
            entry["clone_from_ctid"] = str(CTIDS[entry["clone_from_ctid"]])
        entry["dependencies"] = [str(CTIDS[d]) for d in entry.get("dependencies", [])]
        for rule in entry.get("firewall", {}).get("rules", []):
            rule["source"] = host.ip(HOSTS["101"])
        for route in entry.get("gateway", {}).get("path_routes", []):
            route["ctid"] = str(CTIDS[route["ctid"]])
        for route in entry.get("gateway", {}).get("host_routes", []):
            route["ctid"] = str(CTIDS[route["ctid"]])
        for mount in entry.get("mount_points", []):
            mount["host_path"] = str(open_for_guests(shared_dir(state)))
        out[str(CTIDS[old])] = entry
    return {"lxc_configs": out}


@pytest.fixture(scope="module")
def lab(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    etc, state = root / "etc", root / "state"
    etc.mkdir()
    hypervisor = json.loads((EXAMPLE / "phoenix_hypervisor_config.json").read_text())
    hypervisor["phoenix"].update(
        lxc_path=str(lxc_host.lxc_path),
        state_dir=str(state),
        template_cache=str(lxc_host.template_cache),
    )
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hypervisor))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps(_inventory_for(lxc_host, state)))
    the_lab = Lab(lxc_host, etc, state, lxc_host.driver())
    try:
        the_lab.converge()
        yield the_lab
    finally:
        destroy_guests(lxc_host.driver(), list(sorted(CTIDS.values(), reverse=True)))
        shutil.rmtree(root, ignore_errors=True)


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_requests_reach_the_backend_of_their_model(lab: Lab) -> None:
    with httpx.Client(base_url=lab.base_url, timeout=10) as client:
        chat = client.post("/v1/chat/completions", json=_chat("demo-chat"))
        embed = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "x"})
    assert chat.status_code == 200 and chat.json()["backend"] == "phxt-lab-model-a"
    assert embed.status_code == 200 and embed.json()["backend"] == "phxt-lab-model-b"


def test_model_errors_are_openai_style_json(lab: Lab) -> None:
    with httpx.Client(base_url=lab.base_url, timeout=10) as client:
        unknown = client.post("/v1/chat/completions", json=_chat("no-such-model"))
        missing = client.post("/v1/chat/completions", json={"messages": []})
        broken = client.post(
            "/v1/chat/completions",
            content=b'{"model": "demo-chat",',
            headers={"Content-Type": "application/json"},
        )
    assert unknown.status_code == 404
    assert "demo-chat" in unknown.json()["error"]["message"]
    assert "demo-embed" in unknown.json()["error"]["message"]
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
    assert broken.status_code == 400 and "error" in broken.json()


def test_models_lists_both(lab: Lab) -> None:
    models = httpx.get(f"{lab.base_url}/v1/models", timeout=10).json()
    assert sorted(m["id"] for m in models["data"]) == ["demo-chat", "demo-embed"]


def test_stream_delivers_first_chunk_before_the_backend_finishes(lab: Lab) -> None:
    start = time.monotonic()
    first: float | None = None
    chunks = 0
    with httpx.stream(
        "POST",
        f"{lab.base_url}/v1/chat/completions",
        json=_chat("demo-chat", stream=True),
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks += 1
                first = first if first is not None else time.monotonic() - start
    total = time.monotonic() - start
    assert chunks >= 3 and first is not None
    # The demo server waits 0.5 s between chunks: the first must arrive long before the end.
    assert total >= 1.0 and first < total - 0.5, (first, total)


def _curl_tls(lab: Lab, host: str, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    address = lab.address(GATEWAY)
    return subprocess.run(
        [
            "curl",
            "-sS",
            "-m",
            "10",
            "--resolve",
            f"{host}:443:{address}",
            *extra,
            f"https://{host}{path}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_tls_host_route_verifies_against_the_phoenix_ca_only(lab: Lab) -> None:
    trusted = _curl_tls(lab, CHAT_HOST, "/v1/models", "--cacert", str(lab.ca))
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["backend"] == "phxt-lab-model-b"
    untrusted = _curl_tls(lab, CHAT_HOST, "/v1/models")
    assert untrusted.returncode == 60, untrusted  # peer certificate cannot be verified
    old_tls = _curl_tls(lab, API_HOST, "/v1/models", "--cacert", str(lab.ca), "--tls-max", "1.1")
    assert old_tls.returncode != 0


def test_a_trusted_ca_guest_reaches_the_gateway_over_https_without_cacert(lab: Lab) -> None:
    url = f"https://{CHAT_HOST}/v1/models"
    resolve = f"{CHAT_HOST}:443:{lab.address(GATEWAY)}"
    argv = ["curl", "-sS", "-m", "10", "--resolve", resolve, url]
    result = lab.driver.exec(CLIENT, argv, timeout=20)
    assert result.ok, result.stderr
    assert json.loads(result.stdout)["backend"] == "phxt-lab-model-b"
    # A guest without the feature does not trust it (curl 60: unverifiable certificate).
    assert lab.driver.exec(MODEL_A, argv, timeout=20).returncode == 60


def test_the_client_shares_files_with_the_host_through_its_mount_point(lab: Lab) -> None:
    result = lab.driver.exec(CLIENT, ["sh", "-c", "echo hi > /shared/from-guest"], timeout=10)
    assert result.ok, result.stderr
    written = shared_dir(lab.state) / "from-guest"
    assert written.read_text() == "hi\n"
    assert (written.stat().st_uid, written.stat().st_gid) == (100_000, 100_000)


def test_api_answers_over_tls_too(lab: Lab) -> None:
    api = _curl_tls(lab, API_HOST, "/v1/models", "--cacert", str(lab.ca))
    assert api.returncode == 0, api.stderr
    assert {m["id"] for m in json.loads(api.stdout)["data"]} == {"demo-chat", "demo-embed"}


def test_http_redirects_to_https(lab: Lab) -> None:
    response = httpx.get(f"{lab.base_url}/some/page", headers={"Host": CHAT_HOST}, timeout=10)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{CHAT_HOST}/some/page"


def test_model_servers_admit_the_gateway_and_refuse_other_guests(lab: Lab) -> None:
    model_a = f"http://{lab.address(MODEL_A)}:8000/health"
    assert lab.curl_from(GATEWAY, model_a) == 200
    assert lab.curl_from(MODEL_B, model_a) == 0
    assert lab.curl_from(CLIENT, model_a) == 0  # a running guest: the template is stopped


def test_broken_deploy_keeps_the_old_config_serving(lab: Lab) -> None:
    inventory = lab.inventory
    good = gateway_bundle(inventory, GATEWAY, lab.state)
    broken = dataclasses.replace(
        good,
        files={
            **good.files,
            "tree/sites-available/zz-broken": b"server {\n    listen 8081;\n    no_such_directive on;\n}\n",
        },
    )
    pid = lab.nginx_master_pid()
    failures: list[str] = []
    successes = 0
    stop = threading.Event()

    def client_loop() -> None:
        nonlocal successes
        with httpx.Client(base_url=lab.base_url, timeout=5) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/chat/completions", json=_chat("demo-chat"))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code == 200:
                    successes += 1
                else:
                    failures.append(str(response.status_code))

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        with pytest.raises(Exception, match="no_such_directive") as failed:
            run_bundle(lab.driver, GATEWAY, broken)
    finally:
        time.sleep(0.5)
        stop.set()
        thread.join(timeout=30)
    assert "nginx" in str(failed.value)
    assert failures == []
    assert successes > 0
    assert lab.nginx_master_pid() == pid
    health = httpx.get(f"{lab.base_url}/phoenix/health", timeout=5).json()
    assert health["routes"] == 4


def test_redeploying_the_same_inventory_changes_nothing(lab: Lab) -> None:
    pid = lab.nginx_master_pid()
    listing = ["sh", "-c", "ls -liR --time-style=full-iso /etc/nginx/phoenix/live/ssl/"]
    certs_before = lab.driver.exec(GATEWAY, listing, timeout=10).stdout
    mutations_before = len(lab.driver.log.mutations())
    lab.converge()
    assert len(lab.driver.log.mutations()) == mutations_before
    # Run the same bundle again by hand: the script finds nothing to do and does not reload.
    output = run_bundle(lab.driver, GATEWAY, gateway_bundle(lab.inventory, GATEWAY, lab.state))
    assert "unchanged" in output
    assert lab.nginx_master_pid() == pid
    assert lab.driver.exec(GATEWAY, listing, timeout=10).stdout == certs_before


def test_status_is_healthy_then_a_stopped_model_shows_in_both_tables(lab: Lab) -> None:
    inventory = lab.inventory
    guests = {g.ctid: g for g in gather_status(inventory, lab.driver)}
    assert {guests[c].health for c in (GATEWAY, MODEL_A, MODEL_B)} == {"ok"}
    _gw, routes = gather_route_status(inventory, lab.driver, GATEWAY_APP)
    assert {r.match: r.health for r in routes} == {
        "demo-chat": "ok",
        "demo-embed": "ok",
        "/echo-a/": "ok",
        CHAT_HOST: "ok",
    }

    lab.power(MODEL_B, "stop")
    try:
        guests = {g.ctid: g for g in gather_status(inventory, lab.driver)}
        assert guests[MODEL_B].state == "stopped"
        assert guests[MODEL_B].health == "not running"
        _gw, routes = gather_route_status(inventory, lab.driver, GATEWAY_APP)
        by_match = {r.match: r.health for r in routes}
        assert by_match["demo-embed"] == "down" and by_match["demo-chat"] == "ok"
        with httpx.Client(base_url=lab.base_url, timeout=15) as client:
            down = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "x"})
            up = client.post("/v1/chat/completions", json=_chat("demo-chat"))
        # No backend received it: 503 with Retry-After, after at most the 1 s connect timeout.
        assert down.status_code == 503
        assert down.headers["retry-after"] == "10"
        assert down.json()["error"]["code"] == "upstream_unavailable"
        assert down.headers["content-type"].startswith("application/json")
        assert "demo-embed" in down.json()["error"]["message"]
        assert up.status_code == 200
        # demo-embed has one backend, which nginx alone would never mark down (max_fails
        # counts only in upstreams of several servers): every request would wait the
        # connect timeout again. Within the failure window the next ones fail fast.
        took = []
        with httpx.Client(base_url=lab.base_url, timeout=15) as client:
            for _ in range(5):
                started = time.monotonic()
                again = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "x"})
                took.append(time.monotonic() - started)
                assert again.status_code == 503 and again.headers["retry-after"] == "10"
                assert again.json()["error"]["code"] == "upstream_unavailable"
        # Never the 1 s connect timeout again (the median: this shared machine adds noise).
        assert statistics.median(took) < 0.05 and max(took) < 0.5, took
    finally:
        lab.power(MODEL_B, "start")


def test_a_stopped_gateway_with_a_broken_live_config_is_repaired_by_one_converge(
    lab: Lab,
) -> None:
    """Drift by hand: nginx stopped in the gateway and one of its live files broken. The
    route table says so (it probes behind the gateway's own check), and one converge runs
    the gateway's bundle again (its health check fails), which re-stages the tree,
    checks it with `nginx -t` and starts nginx."""
    break_it = (
        "systemctl stop nginx && "
        "site=$(ls -d /etc/nginx/phoenix/live/sites-available/* | head -n 1) && "
        'echo "this is not nginx;" >> "$site"'
    )
    res = lab.driver.exec(GATEWAY, ["sh", "-c", break_it], timeout=60)
    assert res.ok, res
    _gw, routes = gather_route_status(lab.inventory, lab.driver, GATEWAY_APP)
    assert {r.health for r in routes} == {"down"}
    outcome = converge(
        lab.inventory,
        lab.driver,
        None,
        PlanOptions(gateway=GATEWAY_APP),
        reporter=CollectingReporter(),
        state_dir=lab.state,
    )
    assert outcome.result.ok, outcome.result
    redone = [s for s in outcome.plan.steps if s.ctid == GATEWAY]
    assert [s.kind for s in redone] == ["application", "health_check"]
    assert lab.driver.exec(GATEWAY, ["systemctl", "is-active", "nginx"], timeout=30).ok
    check = ["nginx", "-t", "-q", "-c", "/etc/nginx/phoenix/live/nginx.conf"]
    assert lab.driver.exec(GATEWAY, check, timeout=30).ok
    with httpx.Client(base_url=lab.base_url, timeout=15) as client:
        assert client.post("/v1/chat/completions", json=_chat("demo-chat")).status_code == 200
    _gw, routes = gather_route_status(lab.inventory, lab.driver, GATEWAY_APP)
    assert {r.health for r in routes} == {"ok"}


def _chat_timed(client: httpx.Client) -> tuple[int, str, float]:
    """(status, answering backend, seconds) of one chat request through the gateway."""
    start = time.perf_counter()
    response = client.post("/v1/chat/completions", json=_chat("demo-chat"))
    elapsed = time.perf_counter() - start
    backend = response.json().get("backend", "") if response.status_code == 200 else ""
    return response.status_code, backend, elapsed


def _backend_states(lab: Lab, model: str) -> dict[str, str]:
    status = httpx.get(f"{lab.base_url}/phoenix/status", timeout=5).json()
    entry = next(m for m in status["models"] if m["id"] == model)
    return {b["address"]: b["state"] for b in entry["backends"]}


def test_a_killed_backend_is_skipped_and_the_next_request_answers_from_the_other(
    lab: Lab,
) -> None:
    """A second server of demo-chat joins the lab (one converge: a new guest and a gateway
    reload), then the first is killed (`lxc-stop -k`, as a crash). The request that meets the
    dead backend is retried on the live one (it never received it); from then on the dead
    backend is skipped: the next request answers from the other in under 100 ms, and
    /phoenix/status shows it down."""
    raw = json.loads((lab.etc / "phoenix_lxc_configs.json").read_text())
    twin = json.loads(json.dumps(raw["lxc_configs"][str(MODEL_A)]))
    twin["name"] = "phxt-lab-model-a2"
    twin["network_config"]["ip"] = lab.host.address(HOSTS["804"])
    raw["lxc_configs"][str(MODEL_A2)] = twin
    (lab.etc / "phoenix_lxc_configs.json").write_text(json.dumps(raw))
    started = time.monotonic()
    lab.converge()
    print(f"converge adding a second demo-chat server: {time.monotonic() - started:.1f} s")
    dead, live = f"{lab.address(MODEL_A)}:8000", f"{lab.address(MODEL_A2)}:8000"
    with httpx.Client(base_url=lab.base_url, timeout=15) as client:
        # least_conn with no request in flight takes turns: both answer.
        seen = {_chat_timed(client)[1] for _ in range(4)}
        assert seen == {"phxt-lab-model-a", "phxt-lab-model-a2"}

        stop = ["lxc-stop", "-P", str(lab.host.lxc_path), "-n", str(MODEL_A), "-k"]
        subprocess.run(stop, check=True, capture_output=True, timeout=60)
        # Until one request has met the dead backend (at most every second one, taking turns),
        # each is answered by the live one: a retry costs at most the 1 s connect timeout.
        first = [_chat_timed(client) for _ in range(2)]
        assert [(code, backend) for code, backend, _ in first] == [
            (200, "phxt-lab-model-a2"),
            (200, "phxt-lab-model-a2"),
        ]
        assert max(t for _, _, t in first) < 2.0, first
        nxt = [_chat_timed(client) for _ in range(10)]
    assert all(code == 200 and backend == "phxt-lab-model-a2" for code, backend, _ in nxt), nxt
    times_ms = [round(t * 1000, 1) for _, _, t in nxt]
    assert times_ms[0] < 100, times_ms  # the very next request skips the dead backend
    assert sorted(times_ms)[len(times_ms) // 2] < 100, times_ms
    print(f"after the kill: {[round(t * 1000, 1) for *_, t in first]} ms; next: {times_ms} ms")

    # The metrics log is flushed within 1 s: then the status shows what the gateway saw.
    deadline = time.monotonic() + 5
    states = _backend_states(lab, "demo-chat")
    while states.get(dead) != "down" and time.monotonic() < deadline:
        time.sleep(0.25)
        states = _backend_states(lab, "demo-chat")
    assert states == {dead: "down", live: "up"}
    health = httpx.get(f"{lab.base_url}/phoenix/status", timeout=5).json()
    assert health["status"] == "degraded"


SCREENSHOT_ENV = "PHOENIX_STATUS_SCREENSHOT"  # set: the page's PNG is also written there


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium (installed by scripts/install-deps.sh --tests); all it writes stays
    in `tmp` (pytest's, removed with it)."""
    argv = [
        "chromium",
        "--headless",
        "--no-sandbox",  # root
        "--disable-gpu",
        f"--user-data-dir={tmp / 'profile'}",
        f"--crash-dumps-dir={tmp / 'crashes'}",
        "--virtual-time-budget=5000",  # lets the page's fetch of /phoenix/status finish
        *args,
    ]
    # Chromium also writes under $HOME (~/.config, ~/.cache: crash settings, dconf): there too.
    env = {
        **os.environ,
        "HOME": str(tmp),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
    }
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)


def _rows(dom: str, tbody: str) -> list[list[str]]:
    body = re.search(f'<tbody id="{tbody}">(.*?)</tbody>', dom, re.S)
    assert body is not None, dom
    return [
        [
            html.unescape(re.sub("<[^>]+>", "", cell))
            for cell in re.findall("<td[^>]*>(.*?)</td>", row)
        ]
        for row in re.findall("<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def test_the_status_page_renders_the_gateways_view_in_a_real_browser(
    lab: Lab, tmp_path: Path
) -> None:
    """The page is static HTML whose script fetches /phoenix/status: Chromium runs it, and
    the rendered tables must show every backend with the state and counts the JSON says
    (after the test above: one demo-chat server killed, so the page says degraded)."""
    with httpx.Client(base_url=lab.base_url, timeout=10) as client:
        embedded = client.post("/v1/embeddings", json={"model": "demo-embed", "input": "x"})
        assert embedded.status_code == 200, embedded.text
    time.sleep(1.3)  # the metrics log is flushed within 1 s
    url = f"{lab.base_url}/phoenix/"
    dumped = _chromium(tmp_path, "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    status = httpx.get(f"{lab.base_url}/phoenix/status", timeout=5).json()
    dom = dumped.stdout
    assert f'<span id="status" class="pill {status["status"]}">{status["status"]}</span>' in dom
    assert f"version {status['version']} · config {status['config']}" in html.unescape(dom)
    backends = _rows(dom, "backends")
    expected = [
        [m["id"], b["address"], b["state"], str(b["answered"]), str(b["failed"])]
        for m in status["models"]
        for b in m["backends"]
    ]
    assert [row[:5] for row in backends] == expected
    assert {row[0] for row in backends} == {"demo-chat", "demo-embed"}
    requests = {row[0]: row[1:4] for row in _rows(dom, "requests")}
    for model in status["models"]:
        counts = [str(model["requests"].get(k, 0)) for k in ("2xx", "4xx", "5xx")]
        assert requests[model["id"]] == counts
    assert int(requests["demo-embed"][0]) >= 1

    png = tmp_path / "status.png"
    shot = _chromium(tmp_path, f"--screenshot={png}", "--window-size=1100,430", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    if os.environ.get(SCREENSHOT_ENV):
        Path(os.environ[SCREENSHOT_ENV]).write_bytes(data)

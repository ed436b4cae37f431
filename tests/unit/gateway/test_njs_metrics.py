"""metrics.js in the njs interpreter: the lines of /metrics and the JSON of /phoenix/status
from a metrics log written the way nginx writes it (api_site.metrics_log_format), across
scrapes (checkpoint), a partly written line and a rotated log. To add a case: append log
lines with `logged(...)`, scrape, and compare `series(...)`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phoenix.gateway.api_site import metrics_log_format
from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.keys import key_hash
from phoenix.inventory import load_inventory
from tests.unit.gateway.conftest import net, vllm
from tests.unit.gateway.njs import NjsGateway, Request

ALPHA = "10.9.0.21:8001"
BETA_1, BETA_2 = "10.9.0.22:8000", "10.9.0.23:8000"
NOW_MS = 1_700_000_000_000.0


@pytest.fixture
def gateway(tmp_path: Path) -> NjsGateway:
    return make_gateway(tmp_path, {})


@pytest.fixture
def keyed(tmp_path: Path) -> NjsGateway:
    keys = [{"name": name, "sha256": key_hash(f"key-of-{name}")} for name in ("team-a", "ci")]
    return make_gateway(tmp_path, {"api_keys": keys})


def make_gateway(tmp_path: Path, gateway: dict[str, Any]) -> NjsGateway:
    config = tmp_path / "etc"
    config.mkdir()
    configs = {
        "101": {"name": "gw", "network_config": net("10.9.0.2"), "gateway": gateway},
        "201": {
            "name": "m1",
            "network_config": net("10.9.0.21"),
            "vllm_engine_config": vllm("alpha", 8001),
        },
        "202": {
            "name": "m2",
            "network_config": net("10.9.0.22"),
            "vllm_engine_config": vllm("beta"),
        },
        "203": {
            "name": "m3",
            "network_config": net("10.9.0.23"),
            "vllm_engine_config": vllm("beta"),
        },
    }
    (config / "phoenix_hypervisor_config.json").write_text("{}")
    (config / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))
    rendered, _ = render_gateway(load_inventory(config), 101, None, "derived")
    metrics = {"log": str(tmp_path / "metrics.log"), "state": str(tmp_path / "checkpoint.json")}
    gw = NjsGateway(rendered, tmp_path / "njs", metrics=metrics)
    assert gw.table["backends"] == {"alpha": [ALPHA], "beta": [BETA_1, BETA_2]}
    return gw


def test_the_log_format_has_the_fields_metrics_js_reads() -> None:
    fields = [
        "$msec",
        "$phx_model",
        "$status",
        "$upstream_addr",
        "$upstream_status",
        "$upstream_header_time",
        "$upstream_response_time",
    ]
    assert metrics_log_format(False).split("\\t") == [*fields, "-", "$phx_usage"]
    assert metrics_log_format(True).split("\\t") == [*fields, "$phx_key", "$phx_usage"]


def logged(
    gw: NjsGateway,
    model: str,
    status: int,
    addrs: str = "-",
    statuses: str = "-",
    header_times: str = "-",
    times: str = "-",
    at_ms: float = NOW_MS - 60_000,
    newline: bool = True,
    key: str | None = None,
    usage: str = "-",
) -> None:
    """One line as nginx appends it to the metrics log ($msec is seconds.millis); without
    `key`, as written before key and usage were logged."""
    fields = [f"{at_ms / 1000:.3f}", model, str(status), addrs, statuses, header_times, times]
    if key is not None:
        fields += [key, usage]
    with open(gw.table["metrics"]["log"], "a") as log:
        log.write("\t".join(fields) + ("\n" if newline else ""))


def scrape(gw: NjsGateway, handler: str = "metrics.prometheus") -> Any:
    variables = {"msec": f"{NOW_MS / 1000:.3f}", "connections_active": "3"}
    variables |= {"connections_reading": "0", "connections_writing": "1"}
    variables["connections_waiting"] = "2"
    answer = gw.one(Request(handler, method="GET", uri="/metrics", variables=variables))
    assert answer.error is None, answer.error
    assert answer.status == 200 and answer.body is not None
    if handler == "metrics.status":
        return answer.json()
    assert answer.headers is not None
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return answer.body


def series(text: str, name: str) -> dict[str, str]:
    """{labels: value} of one metric's sample lines."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line[len(name) :].rpartition(" ")
            out[labels] = value
    return out


def test_no_log_yet_every_backend_is_up_and_nothing_counted(gateway: NjsGateway) -> None:
    text = scrape(gateway)
    assert series(text, "phoenix_gateway_requests_total") == {}
    assert series(text, "phoenix_gateway_backend_up") == {
        f'{{model="alpha",backend="{ALPHA}"}}': "1",
        f'{{model="beta",backend="{BETA_1}"}}': "1",
        f'{{model="beta",backend="{BETA_2}"}}': "1",
    }
    assert series(text, "phoenix_gateway_connections") == {
        '{state="active"}': "3",
        '{state="reading"}': "0",
        '{state="writing"}': "1",
        '{state="waiting"}': "2",
    }
    info = series(text, "phoenix_gateway_info")
    assert info == {
        f'{{version="{gateway.table["version"]}",config="{gateway.table["config"]}"}}': "1"
    }
    for line in text.splitlines():  # every sample has HELP and TYPE before it
        if not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert f"# TYPE {name} " in text or f"# TYPE {name.rsplit('_', 1)[0]} " in text


def test_requests_by_model_status_and_backend(gateway: NjsGateway) -> None:
    logged(gateway, "alpha", 200, ALPHA, "200", "0.010", "0.250")
    logged(gateway, "alpha", 200, ALPHA, "200", "0.020", "0.500")
    logged(gateway, "zeta", 404)  # a name a client made up is not a label
    logged(gateway, "", 400)
    # failover: the first backend refused (no header), the second answered
    logged(gateway, "beta", 200, f"{BETA_1}, {BETA_2}", "502, 200", "-, 0.005", "0.001, 0.100")
    # no live upstreams: nginx names the upstream, not a backend
    logged(gateway, "beta", 503, "model_beta", "-", "-", "-")
    text = scrape(gateway)
    assert series(text, "phoenix_gateway_requests_total") == {
        '{model="alpha",status="200"}': "2",
        '{model="",status="404"}': "1",
        '{model="",status="400"}': "1",
        '{model="beta",status="200"}': "1",
        '{model="beta",status="503"}': "1",
    }
    assert series(text, "phoenix_gateway_upstream_response_seconds_sum") == {
        '{model="alpha"}': "0.750",
        '{model="beta"}': "0.101",
    }
    assert series(text, "phoenix_gateway_upstream_response_seconds_count") == {
        '{model="alpha"}': "2",
        '{model="beta"}': "1",
    }
    attempts = series(text, "phoenix_gateway_backend_attempts_total")
    assert attempts == {
        f'{{model="alpha",backend="{ALPHA}",outcome="answered"}}': "2",
        f'{{model="alpha",backend="{ALPHA}",outcome="failed"}}': "0",
        f'{{model="beta",backend="{BETA_1}",outcome="answered"}}': "0",
        f'{{model="beta",backend="{BETA_1}",outcome="failed"}}': "1",
        f'{{model="beta",backend="{BETA_2}",outcome="answered"}}': "1",
        f'{{model="beta",backend="{BETA_2}",outcome="failed"}}': "0",
    }
    assert series(text, "phoenix_gateway_backend_up") == {
        f'{{model="alpha",backend="{ALPHA}"}}': "1",
        f'{{model="beta",backend="{BETA_1}"}}': "0",
        f'{{model="beta",backend="{BETA_2}"}}': "1",
    }


def test_scrapes_count_each_line_once_and_wait_for_a_whole_line(gateway: NjsGateway) -> None:
    logged(gateway, "alpha", 200, ALPHA, "200", "0.010", "0.010")
    assert series(scrape(gateway), "phoenix_gateway_requests_total") == {
        '{model="alpha",status="200"}': "1"
    }
    logged(gateway, "alpha", 500, ALPHA, "500", "0.010", "0.010")
    logged(gateway, "alpha", 200, ALPHA, "200", "0.010", "0.010", newline=False)  # being written
    assert series(scrape(gateway), "phoenix_gateway_requests_total") == {
        '{model="alpha",status="200"}': "1",
        '{model="alpha",status="500"}': "1",
    }
    with open(gateway.table["metrics"]["log"], "a") as log:
        log.write("\n")
    assert series(scrape(gateway), "phoenix_gateway_requests_total") == {
        '{model="alpha",status="200"}': "2",
        '{model="alpha",status="500"}': "1",
    }


def test_a_rotated_log_restarts_the_counts(gateway: NjsGateway) -> None:
    for _ in range(3):
        logged(gateway, "alpha", 200, ALPHA, "200", "0.010", "0.010")
    scrape(gateway)
    log = Path(gateway.table["metrics"]["log"])
    log.unlink()  # a new file (another inode), as logrotate leaves it
    logged(gateway, "beta", 200, BETA_2, "200", "0.010", "0.010")
    assert series(scrape(gateway), "phoenix_gateway_requests_total") == {
        '{model="beta",status="200"}': "1"
    }
    log.write_text("")  # truncated in place: shorter than the checkpoint's offset
    logged(gateway, "alpha", 404)
    assert series(scrape(gateway), "phoenix_gateway_requests_total") == {
        '{model="alpha",status="404"}': "1"
    }


def test_status_json_shows_backends_states_and_classes(gateway: NjsGateway) -> None:
    logged(gateway, "alpha", 200, ALPHA, "200", "0.010", "0.030")
    logged(gateway, "alpha", 503, ALPHA, "502", "-", "0.001", at_ms=NOW_MS - 2_000)
    logged(gateway, "beta", 200, BETA_1, "200", "0.010", "0.010")
    logged(gateway, "beta", 504, BETA_2, "504", "-", "-", at_ms=NOW_MS - 30_000)
    status = scrape(gateway, "metrics.status")
    assert status["status"] == "degraded" and "state" not in status
    assert status["requests"] == {"2xx": 2, "5xx": 2}
    assert status["connections"] == {"active": 3, "reading": 0, "writing": 1, "waiting": 2}
    assert status["config"] == gateway.table["config"]
    by_id = {m["id"]: m for m in status["models"]}
    assert by_id["alpha"]["requests"] == {"2xx": 1, "5xx": 1}
    assert by_id["alpha"]["upstream_avg_ms"] == 15.5
    assert by_id["alpha"]["backends"] == [
        {"address": ALPHA, "state": "down", "answered": 1, "failed": 1, "last_failure_s_ago": 2}
    ]
    assert [(b["address"], b["state"]) for b in by_id["beta"]["backends"]] == [
        (BETA_1, "up"),
        (BETA_2, "down, probing again"),  # failed longer ago than fail_timeout
    ]


def test_status_is_ok_when_every_backend_answered(gateway: NjsGateway) -> None:
    logged(gateway, "beta", 200, BETA_1, "200", "0.010", "0.010")
    status = scrape(gateway, "metrics.status")
    assert status["status"] == "ok"
    states = {b["address"]: b["state"] for m in status["models"] for b in m["backends"]}
    assert states == {ALPHA: "unknown", BETA_1: "up", BETA_2: "unknown"}


def test_tokens_are_counted_per_model_and_key_from_the_servers_usage(keyed: NjsGateway) -> None:
    ok = (ALPHA, "200", "0.010", "0.200")
    logged(keyed, "alpha", 200, *ok, key="team-a", usage="16 8")
    logged(keyed, "alpha", 200, *ok, key="team-a", usage="20 4")
    logged(keyed, "alpha", 200, *ok, key="ci", usage="3 0")  # embeddings: prompt only
    logged(keyed, "alpha", 200, *ok, key="ci", usage="-")  # a stream without include_usage
    logged(keyed, "alpha", 200, *ok, key="nobody", usage="1 1")  # not a declared key
    logged(keyed, "zeta", 404, key="team-a", usage="9 9")  # no served model: no label
    logged(keyed, "beta", 200, BETA_1, "200", "0.010", "0.010", key="ci", usage="5 7")
    text = scrape(keyed)
    assert series(text, "phoenix_gateway_tokens_total") == {
        '{model="alpha",key="team-a",type="prompt"}': "36",
        '{model="alpha",key="team-a",type="completion"}': "12",
        '{model="alpha",key="ci",type="prompt"}': "3",
        '{model="alpha",key="ci",type="completion"}': "0",
        '{model="alpha",key="",type="prompt"}': "1",
        '{model="alpha",key="",type="completion"}': "1",
        '{model="beta",key="ci",type="prompt"}': "5",
        '{model="beta",key="ci",type="completion"}': "7",
    }
    assert series(text, "phoenix_gateway_usage_requests_total") == {
        '{model="alpha",key="team-a"}': "2",
        '{model="alpha",key="ci"}': "1",
        '{model="alpha",key=""}': "1",
        '{model="beta",key="ci"}': "1",
    }
    # Counted once: a second scrape reads nothing new.
    assert (
        series(scrape(keyed), "phoenix_gateway_tokens_total")[
            '{model="alpha",key="team-a",type="prompt"}'
        ]
        == "36"
    )
    status = scrape(keyed, "metrics.status")
    alpha = next(m for m in status["models"] if m["id"] == "alpha")
    assert alpha["tokens"] == {
        "prompt": 40,
        "completion": 13,
        "by_key": {
            "team-a": {"prompt": 36, "completion": 12, "requests": 2},
            "ci": {"prompt": 3, "completion": 0, "requests": 1},
            "": {"prompt": 1, "completion": 1, "requests": 1},
        },
    }


def test_charts_bucket_requests_and_tokens_over_the_last_ten_minutes(gateway: NjsGateway) -> None:
    ok = (ALPHA, "200", "0.010", "0.200")
    logged(gateway, "alpha", 200, *ok, at_ms=NOW_MS - 1_000, key="-", usage="10 5")
    logged(gateway, "alpha", 200, *ok, at_ms=NOW_MS - 2_000, key="-", usage="1 1")
    logged(gateway, "alpha", 503, at_ms=NOW_MS - 25_000, key="-")
    logged(gateway, "alpha", 200, *ok, at_ms=NOW_MS - 3_600_000, key="-", usage="7 7")  # old
    logged(gateway, "beta", 200, BETA_1, "200", "0.01", "0.01", at_ms=NOW_MS - 500)
    status = scrape(gateway, "metrics.status")
    charts = {m["id"]: m["series"] for m in status["models"]}
    alpha = charts["alpha"]
    assert alpha["step_s"] == 10 and len(alpha["requests"]) == len(alpha["tokens"]) == 60
    assert alpha["end"] == int(NOW_MS / 1000) // 10 * 10

    def at(ago_ms: int) -> int:  # the chart index of a moment
        return int((NOW_MS - ago_ms) / 1000) // 10 - int(NOW_MS / 1000) // 10 + 59

    assert at(1_000) == at(2_000) == 58 and at(25_000) == 56 and at(500) == 58
    assert alpha["requests"][58] == 2 and alpha["tokens"][58] == 17
    assert alpha["requests"][56] == 1 and alpha["tokens"][56] == 0
    assert sum(alpha["requests"]) == 3  # the hour-old request is out of the window
    assert sum(charts["beta"]["requests"]) == 1 and sum(charts["beta"]["tokens"]) == 0
    # The checkpoint keeps only the window's buckets.
    state = json.loads(Path(gateway.table["metrics"]["state"]).read_text())
    assert all(len(buckets) <= 61 for buckets in state["series"].values())

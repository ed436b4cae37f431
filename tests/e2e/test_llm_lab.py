"""The llama.cpp lab (examples/llm) on real LXC: llama.cpp built in a guest from the source
the `llama-cpp-python` sdist on PyPI carries, serving the tiny model Phoenix makes with
`gguf`, behind gateway 101, with the official `openai` SDK as the client.

The inventory is examples/llm's, moved onto the test slot's bridge with test CTIDs (77xx).
The host's download cache is the real one (`/var/cache/phoenix/downloads`, or
`$PHOENIX_DOWNLOAD_CACHE`): the sdist is fetched once per host, and llama-server is built
once per source checksum (the first guest's build is kept there), so only a host's first
run pays the build. One lab per module; tests run in file order on it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix.cli.gateway_app import GATEWAY as GATEWAY_APP
from phoenix.drivers.lxc import LxcDriver
from phoenix.gateway.keys import key_hash
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.planner import PlanOptions
from phoenix.plan.run import converge
from phoenix.recipes import hostcache, llamacpp, tiny_gguf
from tests.e2e.conftest import LxcHost, destroy_guests, open_for_guests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(5400)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm"
CTIDS = {"900": 7760, "101": 7761, "811": 7762}
HOSTS = {"900": 160, "101": 161, "811": 162}
BASE, GATEWAY, LLAMA = 7760, 7761, 7762
MODEL = "tiny-llama"
KEYS = {"team-a": "phx-test-team-a-0123456789", "team-b": "phx-test-team-b-9876543210"}


@dataclass
class Lab:
    host: LxcHost
    etc: Path
    state: Path
    driver: LxcDriver

    @property
    def inventory(self) -> Inventory:
        return load_inventory(self.etc)

    @property
    def base_url(self) -> str:
        return f"http://{self.host.ip(HOSTS['101'])}"

    def converge(self, driver: LxcDriver | None = None) -> float:
        started = time.monotonic()
        outcome = converge(
            self.inventory,
            driver or self.driver,
            None,
            PlanOptions(gateway=GATEWAY_APP),
            reporter=CollectingReporter(),
            state_dir=self.state,
        )
        assert outcome.result.ok, outcome.result
        return time.monotonic() - started

    def in_llama(self, *argv: str) -> str:
        result = self.driver.exec(LLAMA, list(argv), timeout=30)
        assert result.ok, result
        return result.stdout

    def slots(self) -> list[dict[str, Any]]:
        """llama-server's own view of its slots, asked inside its guest."""
        out = self.in_llama("curl", "-fsS", "http://127.0.0.1:8081/slots")
        slots = json.loads(out)
        assert isinstance(slots, list)
        return slots

    def client(self, key: str = KEYS["team-a"]) -> Any:
        import openai

        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=key, max_retries=0)


def _inventory_for(host: LxcHost, models: Path) -> dict[str, Any]:
    data = json.loads((EXAMPLE / "phoenix_lxc_configs.json").read_text())
    out: dict[str, Any] = {}
    for old, entry in data["lxc_configs"].items():
        entry["network_config"].update(
            bridge=host.bridge, ip=host.address(HOSTS[old]), gw=host.gateway
        )
        entry["name"] = entry["name"].replace("llm-", "phxt-llm-")
        if "template" in entry:
            entry["template"] = host.template
        if "clone_from_ctid" in entry:
            entry["clone_from_ctid"] = str(CTIDS[entry["clone_from_ctid"]])
        entry["dependencies"] = [str(CTIDS[d]) for d in entry.get("dependencies", [])]
        for rule in entry.get("firewall", {}).get("rules", []):
            rule["source"] = host.ip(HOSTS["101"])
        for mount in entry.get("mount_points", []):
            mount["host_path"] = str(models)
        if "gateway" in entry:
            entry["gateway"]["api_keys"] = [
                {"name": name, "sha256": key_hash(key)} for name, key in KEYS.items()
            ]
        out[str(CTIDS[old])] = entry
    return {"lxc_configs": out}


def make_model(models: Path) -> Path:
    """The tiny model, as `phoenix model tiny` makes it (vocabulary from the real source)."""
    source = hostcache.fetch(llamacpp.source_url(llamacpp.DEFAULT_SOURCE), llamacpp.DEFAULT_SHA256)
    vocab = tiny_gguf.vocab_from_source(source, models.parent / "vocab.gguf")
    out = models / "tiny-llama.gguf"
    tiny_gguf.write_model(vocab, out)
    return out


@pytest.fixture(scope="module")
def lab(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("llm")
    etc, state, models = root / "etc", root / "state", root / "models"
    etc.mkdir()
    open_for_guests(models).mkdir()
    make_model(models)
    hypervisor = json.loads((EXAMPLE / "phoenix_hypervisor_config.json").read_text())
    hypervisor["phoenix"].update(
        lxc_path=str(lxc_host.lxc_path),
        state_dir=str(state),
        template_cache=str(lxc_host.template_cache),
    )
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hypervisor))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps(_inventory_for(lxc_host, models)))
    lab = Lab(lxc_host, etc, state, lxc_host.driver())
    try:
        took = lab.converge()
        print(f"\nllm lab converged in {took:.0f}s")
        yield lab
    finally:
        destroy_guests(lxc_host.driver(), sorted(CTIDS.values(), reverse=True))


def test_llama_cpp_was_built_from_the_pypi_source_for_this_guest(lab: Lab) -> None:
    record = lab.in_llama("cat", "/opt/llama.cpp/.phoenix-archive")
    assert record == f"pypi:llama-cpp-python==0.3.36 {llamacpp.DEFAULT_SHA256} cpu"
    # A real llama.cpp binary: it says which build it is.
    version = lab.driver.exec(LLAMA, ["/opt/llama.cpp/llama-server", "--version"], timeout=30)
    assert "version:" in (version.stdout + version.stderr)
    build = hostcache.cached_build(llamacpp.build_name(lab.inventory.guests[LLAMA].model_dump()))
    assert build is not None  # kept on the host for the next guest and the next run


def test_models_list_names_the_model_the_engine_loaded(lab: Lab) -> None:
    models = lab.client().models.list()
    assert [m.id for m in models.data] == [MODEL]
    direct = json.loads(lab.in_llama("curl", "-fsS", "http://127.0.0.1:8081/v1/models"))
    meta = direct["data"][0]["meta"]
    assert meta["n_vocab"] == 32000 and meta["n_embd"] == 64  # the tiny model's real shape


def test_chat_answers_with_the_engines_own_usage(lab: Lab) -> None:
    reply = lab.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}], max_tokens=12
    )
    assert reply.model == MODEL and reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 12 or reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 3  # the chat template around two words


def test_streaming_chat_delivers_tokens_as_separate_chunks(lab: Lab) -> None:
    stream = lab.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count"}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    pieces, arrivals, usage = [], [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            arrivals.append(time.monotonic())
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == 24
    # A chunk per token, as the engine produces them (llama.cpp holds back a token that
    # ends inside a UTF-8 character until the character is whole, so a few may merge).
    assert len(pieces) >= 18, pieces
    assert arrivals[-1] > arrivals[0]  # they arrived over time, not as one block


def test_completions(lab: Lab) -> None:
    done = lab.client().completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8)
    assert done.choices[0].text and done.usage is not None
    assert done.usage.prompt_tokens >= 4


def test_embeddings(lab: Lab) -> None:
    out = lab.client().embeddings.create(model=MODEL, input=["hello world", "goodbye"])
    assert [len(d.embedding) for d in out.data] == [64, 64]
    assert out.data[0].embedding != out.data[1].embedding
    assert out.usage.prompt_tokens >= 3


def test_an_unknown_model_is_the_sdks_not_found(lab: Lab) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        lab.client().chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert "no-such-model" in str(missing.value)


def test_a_client_that_aborts_a_stream_frees_its_slot(lab: Lab) -> None:
    """Closing the connection mid-generation stops llama.cpp generating for it: the slot is
    idle again within a second (without the abort it would generate for many seconds)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Go on"}],
        "max_tokens": 3000,
        "stream": True,
        "ignore_eos": True,
    }
    headers = {"Authorization": f"Bearer {KEYS['team-a']}"}
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{lab.base_url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        got = [line for line, _ in zip(lines, range(6), strict=False) if line]
        assert got and got[0].startswith("data: ")
        assert any(slot["is_processing"] for slot in lab.slots())
    closed = time.monotonic()
    while any(slot["is_processing"] for slot in lab.slots()):
        assert time.monotonic() - closed < 1.0, "llama.cpp still generates for a closed client"
        time.sleep(0.05)


def _tokens(lab: Lab) -> dict[str, int]:
    """phoenix_gateway_tokens_total samples of the model, as /metrics gives them."""
    text = httpx.get(f"{lab.base_url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("phoenix_gateway_tokens_total{") and f'model="{MODEL}"' in line:
            labels, _, value = line.rpartition(" ")
            out[labels.split(",key=", 1)[1].rstrip("}")] = int(value)
    return out


def test_usage_is_counted_per_key_exactly_as_the_engine_reported_it(lab: Lab) -> None:
    time.sleep(1.3)  # the metrics log is flushed within 1 s
    before = _tokens(lab)
    client = lab.client(KEYS["team-b"])
    prompt = completion = 0
    for n in (3, 5):
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=n
        )
        assert reply.usage is not None
        prompt += reply.usage.prompt_tokens
        completion += reply.usage.completion_tokens
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "More"}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            prompt += chunk.usage.prompt_tokens
            completion += chunk.usage.completion_tokens
    embedded = client.embeddings.create(model=MODEL, input="some words to embed")
    prompt += embedded.usage.prompt_tokens
    time.sleep(1.3)
    after = _tokens(lab)

    def delta(key: str, kind: str) -> int:
        label = f'"{key}",type="{kind}"'
        return after.get(label, 0) - before.get(label, 0)

    assert (delta("team-b", "prompt"), delta("team-b", "completion")) == (prompt, completion)
    assert delta("team-a", "prompt") == delta("team-a", "completion") == 0


def test_the_status_page_charts_the_models_requests_and_tokens(lab: Lab, tmp_path: Path) -> None:
    from tests.e2e.test_lab import _chromium

    dumped = _chromium(tmp_path, "--dump-dom", f"{lab.base_url}/phoenix/")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    box = dom.split(f'data-model="{MODEL}"', 1)[1]
    requests = re.search(r'class="requests" data-values="([0-9,]+)"', box)
    tokens = re.search(r'class="tokens" data-values="([0-9,]+)"', box)
    assert requests and tokens
    values = [int(v) for v in tokens.group(1).split(",")]
    assert len(values) == 60 and sum(values) > 0
    assert sum(int(v) for v in requests.group(1).split(",")) > 0
    assert "team-b" in dom  # the usage table names the key


def test_a_second_converge_rebuilds_nothing_restarts_nothing_changes_nothing(lab: Lab) -> None:
    argv = ["systemctl", "show", "-p", "MainPID", "--value", "phoenix-llamacpp"]
    pid = lab.in_llama(*argv).strip()
    again = lab.host.driver()
    took = lab.converge(again)
    assert again.log.mutations() == []
    assert lab.in_llama(*argv).strip() == pid
    assert took < 120, f"a converged re-run took {took:.0f}s"

"""The gateway routes to Ollama guests like any model server: each model an Ollama guest
pulls (`ollama_models`) is routed to its address and Ollama's port, where Ollama answers
the OpenAI API under `/v1`."""

from __future__ import annotations

from phoenix.gateway.routes import derive_routes, model_routes
from phoenix.inventory import load_inventory
from tests.conftest import shared_fixture


def test_guest_914s_models_are_routed_to_ollama() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-gpu-lab"))
    routes, problems = model_routes(inventory)
    assert problems == []
    by_model = {r.model: r for r in routes}
    assert [b.hostport for b in by_model["llama3.2:1b"].backends] == ["10.0.0.114:11434"]
    assert [b.ctid for b in by_model["llama3.2:1b"].backends] == [914]
    assert [b.hostport for b in by_model["qwen2.5-7b"].backends] == ["10.0.0.110:8000"]
    gateway, _ = derive_routes(inventory)
    assert "llama3.2:1b" in {m.model for m in gateway.models}


def test_an_ollama_port_and_several_models_are_honoured() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-gpu-lab"))
    guest = inventory.guests[914]
    inventory.guests[914] = guest.model_copy(
        update={"ollama_port": 11500, "ollama_models": ["llama3.2:1b", "qwen3:0.6b"]}
    )
    routes, _ = model_routes(inventory)
    ports = {r.model: [b.hostport for b in r.backends] for r in routes}
    assert ports["llama3.2:1b"] == ["10.0.0.114:11500"]
    assert ports["qwen3:0.6b"] == ["10.0.0.114:11500"]


def test_models_without_the_ollama_feature_or_application_are_not_routed() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-gpu-lab"))
    guest = inventory.guests[914]
    inventory.guests[914] = guest.model_copy(
        update={"features": ["nvidia"], "application_script": None}
    )
    routes, _ = model_routes(inventory)
    assert "llama3.2:1b" not in {r.model for r in routes}

"""Which models a guest serves, in one place: the gateway routes them, validate checks the
keys that name them, and `gateway key add` accepts them."""

from __future__ import annotations

from phoenix.inventory.core import Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.names import LLAMACPP_APP_SCRIPT, LLAMACPP_PORT, OLLAMA_APP_SCRIPT, OLLAMA_PORT


def served_models(guest: LxcGuest) -> list[tuple[str, int]]:
    """(model, port) pairs a guest serves: its vLLM/OpenAI-style model, and each model an
    Ollama guest pulls (`ollama_models`; Ollama answers the OpenAI API under `/v1` on its
    own port, so it is routed like any model server), and a llama.cpp guest's
    `llamacpp_alias`."""
    out: list[tuple[str, int]] = []
    if guest.served_model is not None:
        out.append(guest.served_model)
    alias = guest.llamacpp_alias
    if guest.application_script == LLAMACPP_APP_SCRIPT and alias and alias not in dict(out):
        out.append((alias, guest.llamacpp_port or LLAMACPP_PORT))
    runs_ollama = "ollama" in guest.features or guest.application_script == OLLAMA_APP_SCRIPT
    if runs_ollama:
        port = guest.ollama_port or OLLAMA_PORT
        out += [(model, port) for model in guest.ollama_models if model not in dict(out)]
    return out


def inventory_models(inventory: Inventory) -> set[str]:
    """Every model name some non-template guest of the inventory serves."""
    return {
        model
        for guest in inventory.guests.values()
        if not guest.is_clone_source
        for model, _ in served_models(guest)
    }

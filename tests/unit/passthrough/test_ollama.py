"""Ollama's recipes from the inventory: pinned archive and checksum source, port, models."""

from __future__ import annotations

from phoenix.inventory import load_inventory
from phoenix.plan.planner import guest_entry
from phoenix.recipes.applications import application_bundle
from phoenix.recipes.features import feature_bundle
from phoenix.recipes.ollama import DEFAULT_OLLAMA_VERSION, app_files, feature_env
from tests.conftest import shared_fixture


def test_the_pinned_release_is_checked_against_its_own_sums() -> None:
    env = feature_env({})
    base = f"https://github.com/ollama/ollama/releases/download/v{DEFAULT_OLLAMA_VERSION}"
    assert env == {
        "PHOENIX_OLLAMA_URL": f"{base}/ollama-linux-amd64.tgz",
        "PHOENIX_OLLAMA_SUMS_URL": f"{base}/sha256sum.txt",
    }


def test_a_local_archive_with_its_checksum() -> None:
    sha = "AB" * 32
    env = feature_env({"ollama_archive_url": "http://10.0.3.1:8080/o.tgz", "ollama_sha256": sha})
    assert env == {
        "PHOENIX_OLLAMA_URL": "http://10.0.3.1:8080/o.tgz",
        "PHOENIX_OLLAMA_SHA256": sha.lower(),
    }


def test_port_and_models_as_plain_files() -> None:
    files = app_files({"ollama_port": 11500, "ollama_models": ["llama3.2:1b", "qwen3"]})
    assert files == {"ollama-port": b"11500\n", "ollama-models.txt": b"llama3.2:1b\nqwen3\n"}
    assert app_files({})["ollama-port"] == b"11434\n"


def test_guest_914_of_the_fixture_has_its_feature_and_application() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    entry = guest_entry(inventory.guests[914])
    feature, why = feature_bundle(inventory, "ollama", entry)
    assert why is None and feature is not None and "PHOENIX_OLLAMA_URL" in feature.env
    app, why = application_bundle(inventory, 914, entry, None)
    assert why is None and app is not None and app.script_name == "app_ollama.sh"

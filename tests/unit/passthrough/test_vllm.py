"""vLLM's arguments and pip spec from the inventory (the real 2025-10-03 fixture)."""

from __future__ import annotations

import json

from phoenix.inventory import load_inventory
from phoenix.plan.planner import guest_entry
from phoenix.recipes.applications import application_bundle
from phoenix.recipes.features import feature_bundle
from phoenix.recipes.vllm import DEFAULT_VLLM_VERSION, engine_argv, pip_spec, service
from tests.conftest import shared_fixture


def test_sections_in_order_true_is_a_flag_false_and_null_are_left_out() -> None:
    entry = {
        "vllm_engine_config": {
            "ModelConfig": {"model": "Qwen/Qwen2-7B", "trust_remote_code": True, "seed": None},
            "CacheConfig": {"gpu_memory_utilization": 0.9, "enable_prefix_caching": False},
            "ParallelConfig": {"tensor_parallel_size": 2},
            "ServerConfig": {"host": "0.0.0.0", "port": 8001, "served_model_name": "qwen"},
        }
    }
    assert engine_argv(entry) == [
        "--model", "Qwen/Qwen2-7B", "--trust-remote-code",
        "--gpu-memory-utilization", "0.9",
        "--tensor-parallel-size", "2",
        "--host", "0.0.0.0", "--port", "8001", "--served-model-name", "qwen",
    ]  # fmt: skip
    assert service(entry)["port"] == 8001 and service(entry)["served_model_name"] == "qwen"


def test_the_flat_form_of_the_fixture() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    entry = guest_entry(inventory.guests[950])
    argv = engine_argv(entry)
    assert argv[:2] == ["--model", "Qwen/Qwen2.5-7B-Instruct-AWQ"]
    assert "--trust-remote-code" in argv and argv[argv.index("--port") + 1] == "8000"
    assert service(entry)["served_model_name"] == "qwen2.5-7b-awq"


def test_pip_spec_is_pinned_and_overridable() -> None:
    assert pip_spec({}) == f"vllm=={DEFAULT_VLLM_VERSION}"
    assert pip_spec({"vllm_version": "0.9.2"}) == "vllm==0.9.2"
    url = "http://10.0.3.1:8080/vllm-0.0.1-py3-none-any.whl"
    assert pip_spec({"vllm_version": "0.9.2", "vllm_package": url}) == url


def test_every_vllm_guest_of_the_fixture_gets_a_feature_and_an_application() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    vllm_guests = [c for c, g in inventory.guests.items() if "vllm" in g.features]
    assert len(vllm_guests) >= 5
    for ctid in vllm_guests:
        entry = guest_entry(inventory.guests[ctid])
        feature, why = feature_bundle(inventory, "vllm", entry)
        assert why is None and feature is not None
        assert feature.env["PHOENIX_VLLM_SPEC"] == f"vllm=={DEFAULT_VLLM_VERSION}"
        app, why = application_bundle(inventory, ctid, entry, None)
        assert why is None and app is not None and app.script_name == "app_vllm.sh"
        shipped = json.loads(app.files["vllm-service.json"])
        assert shipped == service(entry) and shipped["served_model_name"]

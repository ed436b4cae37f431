"""examples/llm: valid, and its llama.cpp guest is routed by the gateway under its alias
(the name llama-server answers to), with the source from PyPI and the build cache named."""

from __future__ import annotations

from pathlib import Path

from phoenix.gateway.routes import derive_routes
from phoenix.inventory import load_inventory
from phoenix.inventory.served import served_models
from phoenix.plan.planner import guest_entry
from phoenix.recipes import llamacpp
from phoenix.recipes.applications import application_bundle
from tests.unit.inventory.helpers import validate_json

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llm"


def test_the_example_is_valid_and_routes_its_model_to_the_llama_guest() -> None:
    code, problems, _ = validate_json(EXAMPLE)
    assert code == 0 and all(p["severity"] == "warning" for p in problems)
    inventory = load_inventory(EXAMPLE)
    routes, _ = derive_routes(inventory)
    assert [(m.model, [b.hostport for b in m.backends]) for m in routes.models] == [
        ("tiny-llama", ["10.213.60.21:8081"])
    ]


def test_the_alias_is_served_and_passed_to_llama_server() -> None:
    inventory = load_inventory(EXAMPLE)
    guest = inventory.guests[811]
    assert served_models(guest) == [("tiny-llama", 8081)]
    assert served_models(guest.model_copy(update={"application_script": None})) == []
    bundle, why = application_bundle(inventory, 811, guest_entry(guest), None)
    assert why is None and bundle is not None
    exec_line = bundle.files["llamacpp-exec"].decode()
    assert '"--port" "8081" "--alias" "tiny-llama" "--ctx-size"' in exec_line
    assert bundle.host_files[llamacpp.SOURCE_FILE].url == (
        "pypi:llama-cpp-python==0.3.36#vendor/llama.cpp"
    )
    assert bundle.build_cache == llamacpp.build_name(guest_entry(guest))
    assert bundle.timeout == llamacpp.BUILD_TIMEOUT

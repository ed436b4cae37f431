"""llama.cpp's application data: the unit's ExecStart quoted for systemd on the host."""

from __future__ import annotations

from phoenix.inventory import load_inventory
from phoenix.plan.planner import guest_entry
from phoenix.recipes.applications import application_bundle
from phoenix.recipes.llamacpp import app_files, systemd_quote
from tests.conftest import shared_fixture


def test_exec_line_quotes_every_argument() -> None:
    files = app_files(
        {"llamacpp_model": "/models/a b.gguf", "llamacpp_port": 9000, "llamacpp_args": ['50%"x']}
    )
    assert files["llamacpp-exec"] == (
        b'"/opt/llama.cpp/llama-server" "--model" "/models/a b.gguf" "--host" "0.0.0.0" '
        b'"--port" "9000" "50%%\\"x"\n'
    )
    assert systemd_quote("a\\b") == '"a\\\\b"'


def test_guest_917_of_the_fixture_gets_the_built_in_application() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    app, why = application_bundle(inventory, 917, guest_entry(inventory.guests[917]), None)
    assert why is None and app is not None and app.script_name == "app_llamacpp.sh"
    assert app.files["llamacpp-sha256"] == b"\n"  # not in that inventory: the script says so

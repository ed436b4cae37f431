"""Operator keys: the status endpoints (/metrics, /phoenix/status, /phoenix/,
/phoenix/health) read from any address with `Authorization: Bearer <operator key>`, beside
the address allow-list; an operator key uses no model and leaves the API as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.keys import key_hash
from phoenix.gateway.nginx import Directive, parse_file
from phoenix.inventory import load_inventory
from tests.unit.gateway.nginx_t import render_and_check
from tests.unit.gateway.njs import NjsGateway, Request
from tests.unit.gateway.test_render import Make

LAB = Path(__file__).resolve().parents[3] / "examples" / "lab"
STATUS_URIS = ("/metrics", "/phoenix/status", "/phoenix/", "/phoenix/health")
runner = CliRunner()


def _operators(lab_configs: dict[str, Any], **gateway: Any) -> dict[str, Any]:
    lab_configs["101"]["gateway"].update(
        operator_keys=[{"name": "prom", "sha256": key_hash("phx-op")}], **gateway
    )
    return lab_configs


def _directives(tmp_path: Path, text: bytes) -> list[Directive]:
    path = tmp_path / "conf"
    path.write_bytes(text)
    directives, errors = parse_file(path)
    assert errors == []
    return directives


def _walk(directives: list[Directive]) -> list[Directive]:
    return [x for top in directives for x in top.walk()]


def test_with_operator_keys_the_status_endpoints_take_the_address_or_the_key(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    inventory = make_inventory(_operators(lab_configs))
    rendered, _ = render_gateway(inventory, 101, tmp_path / "s", "derived")
    top = _directives(tmp_path, rendered.files["sites-available/phoenix-api"])
    geo = next(x for x in top if x.name == "geo")
    assert geo.args == ["$phx_status_addr"]
    assert [(x.name, *x.args) for x in geo.block or []] == [
        ("default", "0"),
        ("127.0.0.1", "1"),
        ("::1", "1"),
        ("10.9.0.0/24", "1"),  # the default: the gateway's own subnet
    ]
    js_set = next(x for x in top if x.name == "js_set")
    assert js_set.args == ["$phx_operator", "router.operatorName"]
    denied = next(x for x in top if x.name == "map")
    assert denied.args == ["$phx_status_addr:$phx_operator", "$phx_status_denied"]
    locations = {x.args[-1]: x for x in _walk(top) if x.name == "location"}
    for uri in STATUS_URIS:
        body = locations[uri].block or []
        assert not [x for x in body if x.name in ("allow", "deny")], uri
        guard = next(x for x in body if x.name == "if")
        assert guard.args == ["$phx_status_denied"]
        assert [(x.name, *x.args) for x in guard.block or []] == [("return", "403")]
    # The API's own locations do not look at the operator key.
    chat = locations["/v1/chat/completions"]
    assert not any(x.name == "if" and x.args == ["$phx_status_denied"] for x in chat.walk())


def test_without_operator_keys_the_rule_stays_nginxs_allow_list(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    rendered, _ = render_gateway(make_inventory(lab_configs), 101, tmp_path / "s", "derived")
    top = _directives(tmp_path, rendered.files["sites-available/phoenix-api"])
    assert not [x for x in top if x.name in ("geo", "js_set", "map")]
    assert "operators" in rendered.files["njs/phoenix_models.js"].decode()


def test_operator_keys_pass_nginx_t(lab_configs: dict[str, Any], tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "phoenix_hypervisor_config.json").write_text("{}")
    configs = _operators(lab_configs, status_allow=["192.0.2.0/28", "2001:db8::/32"])
    configs["101"]["gateway"]["api_keys"] = [{"name": "team", "sha256": key_hash("phx-team")}]
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))
    assert render_and_check(etc, 101) is None


def test_the_operator_name_is_the_bearer_tokens_operator_key_only(
    make_inventory: Make, lab_configs: dict[str, Any], tmp_path: Path
) -> None:
    configs = _operators(lab_configs)
    configs["101"]["gateway"]["api_keys"] = [{"name": "team", "sha256": key_hash("phx-team")}]
    rendered, _ = render_gateway(make_inventory(configs), 101, tmp_path / "s", "derived")
    njs = NjsGateway(rendered, tmp_path / "njs")

    def status(auth: str | None) -> Request:
        headers = {"Authorization": auth} if auth is not None else {}
        return Request("router.operatorName", "GET", "/metrics", headers)

    answers = njs.run(
        [
            status("Bearer phx-op"),
            status("bearer  phx-op "),
            status("Bearer phx-team"),  # a client key reads no status
            status("Bearer phx-opx"),
            status("phx-op"),
            status(None),
        ]
    )
    assert [a.error for a in answers] == [None] * 6
    assert [a.value for a in answers] == ["prom", "prom", "", "", "", ""]
    # ...and an operator key is no client key: it reaches no model.
    (as_client,) = njs.run(
        [Request("router.keyName", "GET", "/v1/models", {"Authorization": "Bearer phx-op"})]
    )
    assert as_client.value == ""


def test_key_names_and_hashes_are_unique_across_both_lists(
    make_inventory: Make, lab_configs: dict[str, Any]
) -> None:
    from phoenix.errors import InventoryError

    configs = _operators(lab_configs)
    configs["101"]["gateway"]["api_keys"] = [{"name": "prom", "sha256": key_hash("phx-x")}]
    try:
        make_inventory(configs)
    except InventoryError as exc:
        assert "operator_keys: name repeated: prom" in str(exc)
    else:
        raise AssertionError("a name used by a client and an operator key validated")


def _lab(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    shutil.copytree(LAB, etc)
    return etc


def test_key_add_operator_stores_a_status_only_key(tmp_path: Path) -> None:
    etc = _lab(tmp_path)
    added = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "prom", "--operator"])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("phx-")
    gateway = load_inventory(etc).guests[101].gateway
    assert gateway is not None
    assert gateway.api_keys == []  # the API stays as open as it was
    assert [(k.name, k.sha256) for k in gateway.operator_keys] == [("prom", key_hash(key))]
    listed = runner.invoke(app, ["-c", str(etc), "gateway", "key", "list"])
    assert "the API is open" in listed.output and "prom  operator" in listed.output
    again = runner.invoke(app, ["-c", str(etc), "gateway", "key", "add", "prom"])
    assert again.exit_code == 1 and "exists already" in again.output
    removed = runner.invoke(app, ["-c", str(etc), "gateway", "key", "remove", "prom"])
    assert removed.exit_code == 0, removed.output
    gateway = load_inventory(etc).guests[101].gateway
    assert gateway is not None and gateway.operator_keys == []


def test_an_operator_key_takes_no_models_or_limit(tmp_path: Path) -> None:
    etc = _lab(tmp_path)
    before = (etc / "phoenix_lxc_configs.json").read_text()
    for extra in (["--models", "demo-chat"], ["--rpm", "10"]):
        args = ["-c", str(etc), "gateway", "key", "add", "prom", "--operator", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "do not apply" in result.output, result.output
    assert (etc / "phoenix_lxc_configs.json").read_text() == before

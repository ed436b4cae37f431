from __future__ import annotations

import hashlib
from typing import Any

import pytest

from phoenix.errors import GatewayError
from phoenix.gateway import routes as gw_routes
from phoenix.gateway.routes import Target, derive_routes, find_gateway
from phoenix.inventory import load_inventory
from tests.unit.gateway.conftest import FIXTURES, MakeInventory

Make = MakeInventory


def test_models_from_engine_config_and_flat_keys(
    make_inventory: Make, lab_configs: dict[str, Any]
) -> None:
    routes, problems = derive_routes(make_inventory(lab_configs))
    assert problems == []
    by_model = {m.model: m for m in routes.models}
    assert set(by_model) == {"alpha", "beta"}  # the template's model is not routed
    assert [b.hostport for b in by_model["alpha"].backends] == ["10.9.0.21:8001"]
    assert [b.hostport for b in by_model["beta"].backends] == ["10.9.0.22:8000", "10.9.0.23:8002"]
    assert len({m.upstream for m in routes.models}) == 2


def test_gateway_found_by_block_or_compat_script(
    make_inventory: Make, lab_configs: dict[str, Any]
) -> None:
    assert find_gateway(make_inventory(lab_configs)) == 101
    configs = dict(lab_configs)
    gw = dict(configs.pop("101"))
    gw.pop("gateway")
    gw["application_script"] = "phoenix_hypervisor_lxc_101.sh"
    configs["150"] = gw
    assert find_gateway(make_inventory(configs)) == 150


def test_path_and_host_routes_resolve_ctids(
    make_inventory: Make, lab_configs: dict[str, Any]
) -> None:
    routes, _ = derive_routes(make_inventory(lab_configs))
    paths = {p.path: p for p in routes.paths}
    assert set(paths) == {"/qdrant/", "/webui/"}
    assert paths["/qdrant/"].target.proxy_pass("/qdrant/") == "http://route_qdrant/"
    assert paths["/webui/"].target.proxy_pass("/webui/", strip=False) == "http://route_webui"
    hosts = {h.hostname: h for h in routes.hosts}
    assert hosts["n8n.lab.test"].target.backends[0].hostport == "10.9.0.24:5678"
    assert hosts["ext.lab.test"].target.proxy_pass() == "http://127.0.0.1:9000/base/"
    assert routes.route_count == 6
    assert routes.tls_sites() == {
        "phoenix-api": ["api.lab.test", "10.9.0.2"],
        "host-n8n.lab.test": ["n8n.lab.test"],
    }


def test_address_overrides(make_inventory: Make, lab_configs: dict[str, Any]) -> None:
    routes, _ = derive_routes(make_inventory(lab_configs), addresses={201: "127.0.0.2"})
    alpha = next(m for m in routes.models if m.model == "alpha")
    assert alpha.backends[0].hostport == "127.0.0.2:8001"


def test_route_to_template_is_a_problem(make_inventory: Make, lab_configs: dict[str, Any]) -> None:
    lab_configs["101"]["gateway"]["path_routes"].append({"path": "/t", "ctid": 900, "port": 1})
    inventory = make_inventory(lab_configs)
    with pytest.raises(GatewayError, match="template"):
        derive_routes(inventory)
    _, problems = derive_routes(inventory, strict=False)
    assert any("900" in p for p in problems)


def test_not_a_gateway(make_inventory: Make, lab_configs: dict[str, Any]) -> None:
    with pytest.raises(GatewayError, match="not a gateway"):
        derive_routes(make_inventory(lab_configs), 201)


@pytest.mark.parametrize("fixture", ["phoenix-etc-2025-10-03", "phoenix-etc-seed"])
def test_fixture_models(fixture: str) -> None:
    inventory = load_inventory(FIXTURES / fixture)
    routes, _ = derive_routes(inventory)
    assert routes.ctid == 101
    by_model = {m.model: sorted(b.ctid or 0 for b in m.backends) for m in routes.models}
    # Templates 910-912 serve nothing; 801 and 951 serve one model: one upstream.
    assert by_model == {
        "Qwen3-4B-FP8": [802],
        "ibm-granite/granite-embedding-english-r2": [801, 951],
        "qwen2.5-7b-awq": [950],
    }


@pytest.mark.parametrize(
    ("url", "strip", "expected"),
    [
        # nginx replaces the location prefix with the URI: `/keep/x` must reach
        # `/base/keep/x`, never `/basex` (the prefix glued to the path without a slash).
        ("http://10.0.0.5/base", False, "http://10.0.0.5/base/keep/"),
        ("http://10.0.0.5/base/", False, "http://10.0.0.5/base/keep/"),
        ("http://10.0.0.5/base", True, "http://10.0.0.5/base/"),
        ("http://10.0.0.5/base/", True, "http://10.0.0.5/base/"),
        ("http://10.0.0.5", False, "http://10.0.0.5"),
        ("http://10.0.0.5/", True, "http://10.0.0.5/"),
    ],
)
def test_url_paths_join_the_request_path_with_a_slash(url: str, strip: bool, expected: str) -> None:
    target = Target("http", url=url)
    assert target.proxy_pass("/keep/", strip) == expected
    # A host route's location is `/`: `/x` reaches `/base/x` whether or not the URL ends in '/'.
    if url.rstrip("/") != "http://10.0.0.5":
        assert target.proxy_pass() == "http://10.0.0.5/base/"


def test_a_host_routes_file_name_fits_a_file_name_and_stays_unique() -> None:
    assert gw_routes.host_file_name("Chat.Lab.TEST") == "chat.lab.test"
    fits = "a" * 120
    assert gw_routes.host_file_name(fits) == fits
    long = "b" * 200
    digest = hashlib.sha256(long.encode()).hexdigest()[:16]
    assert gw_routes.host_file_name(long) == "b" * 103 + "-" + digest
    assert len(gw_routes.host_file_name(long)) == 120
    assert gw_routes.host_file_name("a" * 121) != gw_routes.host_file_name("a" * 121 + "c")
    assert gw_routes.host_cert("Phoenix-API") == "host-phoenix-api"  # never the API's own


def test_upstream_names_are_slugs_made_unique() -> None:
    assert gw_routes._slug("Qwen/Qwen2.5-7B") == "qwen_qwen2_5_7b"
    assert gw_routes._slug("--") == "x"
    taken: set[str] = set()
    assert [gw_routes._unique("m", taken) for _ in range(3)] == ["m", "m_2", "m_3"]
    assert taken == {"m", "m_2", "m_3"}

"""Synthetic inventories for gateway unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import pytest

from phoenix.inventory import Inventory, load_inventory
from tests.conftest import FIXTURES

__all__ = ["FIXTURES"]


def net(ip: str) -> dict[str, str]:
    return {"name": "eth0", "bridge": "vmbr0", "ip": f"{ip}/24", "gw": "10.9.0.1"}


def vllm(model: str, port: int = 8000) -> dict[str, Any]:
    return {"ServerConfig": {"port": port, "served_model_name": model}}


class MakeInventory(Protocol):
    """Loads an inventory of these guests from a config dir `name` under tmp_path."""

    def __call__(self, configs: dict[str, Any], name: str = "etc") -> Inventory: ...


@pytest.fixture
def make_inventory(tmp_path: Path) -> MakeInventory:
    def make(configs: dict[str, Any], name: str = "etc") -> Inventory:
        config = tmp_path / name
        config.mkdir(exist_ok=True)
        (config / "phoenix_hypervisor_config.json").write_text("{}")
        (config / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": configs}))
        return load_inventory(config)

    return make


@pytest.fixture
def lab_configs() -> dict[str, Any]:
    return {
        "900": {
            "name": "tpl",
            "network_config": net("10.9.0.90"),
            "template_snapshot_name": "base",
            "vllm_engine_config": vllm("tpl-model"),
        },
        "101": {
            "name": "gw",
            "network_config": net("10.9.0.2"),
            "gateway": {
                "hostnames": ["api.lab.test"],
                "path_routes": [
                    {"path": "/qdrant", "ctid": 204, "port": 6333},
                    {
                        "path": "/webui/",
                        "ctid": 204,
                        "port": 8080,
                        "websocket": True,
                        "strip_prefix": False,
                        "name": "webui",
                    },
                ],
                "host_routes": [
                    {"hostname": "n8n.lab.test", "ctid": 204, "port": 5678, "websocket": True},
                    {
                        "hostname": "ext.lab.test",
                        "url": "http://127.0.0.1:9000/base/",
                        "tls": False,
                    },
                ],
            },
        },
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
            "vllm_served_model_name": "beta",
            "vllm_port": 8002,
        },
        "204": {"name": "svc", "network_config": net("10.9.0.24")},
    }

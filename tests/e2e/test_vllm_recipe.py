"""The vLLM recipes in a real guest, against a stand-in vLLM wheel served from the host.

The wheel (built here, no registry) is a package `vllm` whose
`vllm.entrypoints.openai.api_server` is Phoenix's demo model server, so install into
/opt/vllm, the unit, its arguments from vllm_engine_config, restart on a change and the
health check (/health, /v1/models listing the served name) all run for real. No GPU and no
real vLLM: the README says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix.inventory import load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.run import converge
from tests.e2e.conftest import LxcHost, destroy_guests, serve_directory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CTID = 7750
ROOT = Path(__file__).resolve().parents[2]
API_SERVER = '''"""Stand-in for vLLM's OpenAI server (Phoenix tests): the demo model server."""
import argparse

from vllm._demo_server import main as serve


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args, _ = parser.parse_known_args()
    serve(["--model", args.served_model_name or args.model, "--host", args.host,
           "--port", str(args.port)])


if __name__ == "__main__":
    run()
'''


def build_wheel(directory: Path) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD with hashes), made with zipfile."""
    files = {
        "vllm/__init__.py": '__version__ = "0.0.1"\n',
        "vllm/_demo_server.py": (ROOT / "src/phoenix/demo/model_server.py").read_text(),
        "vllm/entrypoints/__init__.py": "",
        "vllm/entrypoints/openai/__init__.py": "",
        "vllm/entrypoints/openai/api_server.py": API_SERVER,
        "vllm-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: vllm\nVersion: 0.0.1\n",
        "vllm-0.0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: phoenix-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{name},sha256={b64},{len(text.encode())}")
    record.append("vllm-0.0.1.dist-info/RECORD,,")
    files["vllm-0.0.1.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / "vllm-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


@pytest.fixture(scope="module")
def wheel_url(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in wheel served on the lab bridge's host address."""
    directory = tmp_path_factory.mktemp("wheels")
    wheel = build_wheel(directory)
    with serve_directory(lxc_host, directory) as base:
        yield f"{base}/{wheel.name}"


def write_inventory(host: LxcHost, etc: Path, state: Path, url: str, max_len: int) -> None:
    hypervisor = json.loads((ROOT / "examples/lab/phoenix_hypervisor_config.json").read_text())
    hypervisor["phoenix"].update(
        lxc_path=str(host.lxc_path), state_dir=str(state), template_cache=str(host.template_cache)
    )
    guest: dict[str, Any] = {
        "name": "phxt-vllm",
        "template": host.template,
        "memory_mb": 512,
        "swap_mb": 256,
        "cores": 1,
        "storage_size_gb": 4,
        "network_config": {
            "name": "eth0", "bridge": host.bridge, "ip": host.address(50), "gw": host.gateway,
        },
        "unprivileged": True,
        "features": ["vllm"],
        "vllm_package": url,
        "application_script": "phoenix_hypervisor_lxc_vllm.sh",
        "vllm_engine_config": {
            "ModelConfig": {"model": "stand/in-model", "max_model_len": max_len},
            "CacheConfig": {"enable_prefix_caching": False},
            "ServerConfig": {"host": "0.0.0.0", "port": 8000, "served_model_name": "stand-in"},
        },
    }  # fmt: skip
    etc.mkdir(exist_ok=True)
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hypervisor))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {str(CTID): guest}}))


def main_pid(host: LxcHost) -> str:
    driver = host.driver()
    result = driver.exec(CTID, ["systemctl", "show", "-p", "MainPID", "--value", "phoenix-vllm"])
    assert result.ok, result
    return result.stdout.strip()


def unit_text(host: LxcHost) -> str:
    result = host.driver().exec(CTID, ["cat", "/etc/systemd/system/phoenix-vllm.service"])
    assert result.ok, result
    return result.stdout


def test_vllm_installs_serves_restarts_on_change_and_stays_converged(
    lxc_host: LxcHost, wheel_url: str, tmp_path: Path
) -> None:
    etc, state = tmp_path / "etc", tmp_path / "state"
    write_inventory(lxc_host, etc, state, wheel_url, 2048)
    driver = lxc_host.driver()
    try:
        outcome = converge(
            load_inventory(etc), driver, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok, outcome.result
        models = httpx.get(f"http://{lxc_host.ip(50)}:8000/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["stand-in"]
        unit = unit_text(lxc_host)
        assert '"--model" "stand/in-model" "--max-model-len" "2048"' in unit
        assert "prefix-caching" not in unit  # false is left out
        assert driver.exec(CTID, ["/opt/vllm/bin/python", "-c", "import vllm"]).ok
        pid = main_pid(lxc_host)

        # Converged: nothing runs again and the server keeps its process.
        again = lxc_host.driver()
        outcome = converge(
            load_inventory(etc), again, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok and again.log.mutations() == []
        assert main_pid(lxc_host) == pid

        # A changed engine argument restarts the service with it.
        write_inventory(lxc_host, etc, state, wheel_url, 4096)
        outcome = converge(
            load_inventory(etc), driver, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok, outcome.result
        assert '"--max-model-len" "4096"' in unit_text(lxc_host)
        assert main_pid(lxc_host) != pid
        health = httpx.get(f"http://{lxc_host.ip(50)}:8000/health", timeout=10)
        assert health.status_code == 200
    finally:
        destroy_guests(lxc_host.driver(), [CTID])

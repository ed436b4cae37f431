"""llama.cpp's application in a real guest, against a stand-in release archive served from
the host (its `llama-server` answers /health and /v1/models for the model file it was
given), with the model file brought in by a read-only mount point: checksum, install, the
unit's arguments, health, idempotence and restart on a changed argument run for real.
No real llama.cpp and no GPU: the README says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix.inventory import load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.run import converge
from tests.e2e.conftest import LxcHost, destroy_guests, open_for_guests, serve_directory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CTID = 7752
ROOT = Path(__file__).resolve().parents[2]
STAND_IN = r'''#!/usr/bin/env python3
"""Stand-in for llama.cpp's llama-server (Phoenix tests)."""
import argparse, json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8080)
args, _ = parser.parse_known_args()
open(args.model, "rb").close()  # a missing model file fails the start, as llama.cpp does


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = {"status": "ok"}
        elif self.path == "/v1/models":
            body = {"object": "list", "data": [{"id": os.path.basename(args.model)}]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
'''
PREPARE = """#!/bin/sh
set -eu
command -v python3 >/dev/null && command -v curl >/dev/null && exit 0
apt-get update -q && apt-get install -y -q --no-install-recommends python3 curl ca-certificates
"""


@pytest.fixture(scope="module")
def archive(
    lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    directory = tmp_path_factory.mktemp("llamacpp-release")
    path = directory / "llama-bin.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = STAND_IN.encode()
        info = tarfile.TarInfo("build/bin/llama-server")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with serve_directory(lxc_host, directory) as base:
        yield f"{base}/{path.name}", sha


def write_inventory(
    host: LxcHost, etc: Path, state: Path, url: str, sha: str, models: Path, ctx: str
) -> None:
    hypervisor = json.loads((ROOT / "examples/lab/phoenix_hypervisor_config.json").read_text())
    hypervisor["phoenix"].update(
        lxc_path=str(host.lxc_path), state_dir=str(state), template_cache=str(host.template_cache)
    )
    guest: dict[str, Any] = {
        "name": "phxt-llamacpp", "template": host.template, "memory_mb": 512, "swap_mb": 256,
        "cores": 1, "storage_size_gb": 4, "unprivileged": True,
        "network_config": {
            "name": "eth0", "bridge": host.bridge, "ip": host.address(52), "gw": host.gateway,
        },
        "features": ["prepare"],
        "mount_points": [{"host_path": str(models), "container_path": "/models", "read_only": True}],
        "application_script": "phoenix_hypervisor_lxc_957.sh",
        "llamacpp_archive_url": url, "llamacpp_sha256": sha,
        "llamacpp_model": "/models/tiny.gguf", "llamacpp_args": ["--ctx-size", ctx],
    }  # fmt: skip
    (etc / "scripts").mkdir(parents=True, exist_ok=True)
    (etc / "scripts" / "phoenix_hypervisor_feature_install_prepare.sh").write_text(PREPARE)
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hypervisor))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {str(CTID): guest}}))


def test_llama_server_installs_serves_restarts_on_change_and_stays_converged(
    lxc_host: LxcHost, archive: tuple[str, str], tmp_path: Path
) -> None:
    url, sha = archive
    etc, state, models = tmp_path / "etc", tmp_path / "state", tmp_path / "models"
    open_for_guests(models).mkdir()
    (models / "tiny.gguf").write_bytes(b"GGUF stand-in")
    write_inventory(lxc_host, etc, state, url, sha, models, "2048")
    driver = lxc_host.driver()
    base = f"http://{lxc_host.ip(52)}:8081"

    def run() -> None:
        outcome = converge(
            load_inventory(etc), driver, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok, outcome.result

    def pid() -> str:
        argv = ["systemctl", "show", "-p", "MainPID", "--value", "phoenix-llamacpp"]
        return driver.exec(CTID, argv).stdout.strip()

    try:
        run()
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        assert httpx.get(f"{base}/v1/models", timeout=10).json()["data"][0]["id"] == "tiny.gguf"
        unit = driver.exec(CTID, ["cat", "/etc/systemd/system/phoenix-llamacpp.service"]).stdout
        assert (
            '"--model" "/models/tiny.gguf" "--host" "0.0.0.0" "--port" "8081" "--ctx-size" "2048"'
            in unit
        )
        first = pid()

        again = lxc_host.driver()
        outcome = converge(
            load_inventory(etc), again, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok and again.log.mutations() == []
        assert pid() == first

        write_inventory(lxc_host, etc, state, url, sha, models, "4096")
        run()
        assert pid() != first
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    finally:
        destroy_guests(lxc_host.driver(), [CTID])

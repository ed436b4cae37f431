"""The Ollama recipes in a real guest, against a stand-in release archive served from the
host (its `bin/ollama` answers `serve` with /api/tags and /v1/models and records `pull`s),
so the archive's checksum, the install, the unit with OLLAMA_HOST, health and the pulls
run for real. No real Ollama and no model: the README says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix.errors import CommandFailed
from phoenix.inventory import load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.planner import guest_entry
from phoenix.plan.run import converge
from phoenix.recipes.features import feature_bundle
from phoenix.recipes.runner import run_bundle
from tests.e2e.conftest import LxcHost, destroy_guests, serve_directory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CTID = 7751
ROOT = Path(__file__).resolve().parents[2]
STAND_IN = r'''#!/usr/bin/env python3
"""Stand-in for the ollama binary (Phoenix tests): serve, pull, --version."""
import json, os, sys, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = os.environ.get("OLLAMA_MODELS", "/var/lib/ollama/models")
STATE, LOG = os.path.join(MODELS, "stand-in.json"), os.path.join(MODELS, "pulls.log")


def load():
    try:
        return json.load(open(STATE))
    except (OSError, ValueError):
        return []


class Handler(BaseHTTPRequestHandler):
    def answer(self, body, code=200):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/api/tags":
            return self.answer({"models": [{"name": m, "model": m} for m in load()]})
        if self.path == "/v1/models":
            return self.answer({"object": "list", "data": [{"id": m} for m in load()]})
        self.answer({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = body["model"] if ":" in body["model"] else body["model"] + ":latest"
        models = load()
        if name not in models:
            json.dump(models + [name], open(STATE, "w"))
        open(LOG, "a").write(name + "\n")
        self.answer({"status": "success"})


def main():
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    address, _, port = host.rpartition(":")
    if sys.argv[1:2] == ["serve"]:
        ThreadingHTTPServer((address, int(port)), Handler).serve_forever()
    elif sys.argv[1:2] == ["pull"]:
        request = urllib.request.Request(
            f"http://{host}/api/pull", data=json.dumps({"model": sys.argv[2]}).encode())
        print(urllib.request.urlopen(request).read().decode())
    else:
        print("ollama version is 0.0.0-phoenix-stand-in")


main()
'''
PREPARE = """#!/bin/sh
# Test feature: what the stand-in needs (python3) and the recipes use (curl).
set -eu
command -v python3 >/dev/null && command -v curl >/dev/null && exit 0
apt-get update -q && apt-get install -y -q --no-install-recommends python3 curl ca-certificates
"""


def build_archive(directory: Path) -> tuple[Path, str]:
    archive = directory / "ollama-linux-amd64.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        data = STAND_IN.encode()
        info = tarfile.TarInfo("bin/ollama")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def archive(
    lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    directory = tmp_path_factory.mktemp("ollama-release")
    path, sha = build_archive(directory)
    with serve_directory(lxc_host, directory) as base:
        yield f"{base}/{path.name}", sha


def write_inventory(
    host: LxcHost, etc: Path, state: Path, url: str, sha: str, models: list[str]
) -> None:
    hypervisor = json.loads((ROOT / "examples/lab/phoenix_hypervisor_config.json").read_text())
    hypervisor["phoenix"].update(
        lxc_path=str(host.lxc_path), state_dir=str(state), template_cache=str(host.template_cache)
    )
    guest: dict[str, Any] = {
        "name": "phxt-ollama", "template": host.template, "memory_mb": 512, "swap_mb": 256,
        "cores": 1, "storage_size_gb": 4, "unprivileged": True,
        "network_config": {
            "name": "eth0", "bridge": host.bridge, "ip": host.address(51), "gw": host.gateway,
        },
        "features": ["prepare", "ollama"],
        "application_script": "phoenix_hypervisor_lxc_955.sh",
        "ollama_archive_url": url, "ollama_sha256": sha, "ollama_models": models,
    }  # fmt: skip
    (etc / "scripts").mkdir(parents=True, exist_ok=True)
    (etc / "scripts" / "phoenix_hypervisor_feature_install_prepare.sh").write_text(PREPARE)
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hypervisor))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {str(CTID): guest}}))


def test_ollama_installs_checks_its_archive_serves_and_pulls_once(
    lxc_host: LxcHost, archive: tuple[str, str], tmp_path: Path
) -> None:
    url, sha = archive
    etc, state = tmp_path / "etc", tmp_path / "state"
    write_inventory(lxc_host, etc, state, url, sha, ["tinyllama"])
    driver = lxc_host.driver()

    def run() -> None:
        outcome = converge(
            load_inventory(etc), driver, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok, outcome.result

    def pulls() -> list[str]:
        res = driver.exec(CTID, ["cat", "/var/lib/ollama/models/pulls.log"])
        return res.stdout.split()

    try:
        run()
        tags = httpx.get(f"http://{lxc_host.ip(51)}:11434/api/tags", timeout=10).json()
        assert [m["name"] for m in tags["models"]] == ["tinyllama:latest"]
        unit = driver.exec(CTID, ["cat", "/etc/systemd/system/phoenix-ollama.service"]).stdout
        assert "Environment=OLLAMA_HOST=0.0.0.0:11434" in unit

        again = lxc_host.driver()
        outcome = converge(
            load_inventory(etc), again, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok and again.log.mutations() == []

        # A model added: only it is pulled; the one already there is not pulled again.
        write_inventory(lxc_host, etc, state, url, sha, ["tinyllama", "qwen3:0.6b"])
        run()
        assert pulls() == ["tinyllama:latest", "qwen3:0.6b"]
        listed = httpx.get(f"http://{lxc_host.ip(51)}:11434/v1/models", timeout=10).json()
        assert {m["id"] for m in listed["data"]} == {"tinyllama:latest", "qwen3:0.6b"}

        # An archive that does not match its checksum is refused; the install stays.
        inventory = load_inventory(etc)
        bundle, _ = feature_bundle(inventory, "ollama", guest_entry(inventory.guests[CTID]))
        assert bundle is not None
        bad = dataclasses.replace(
            bundle,
            env={**bundle.env, "PHOENIX_OLLAMA_SHA256": "0" * 64, "PHOENIX_OLLAMA_URL": url + "?x"},
        )
        with pytest.raises(CommandFailed, match="checksum mismatch"):
            run_bundle(driver, CTID, bad)
        assert driver.exec(CTID, ["/opt/ollama/bin/ollama", "--version"]).ok
    finally:
        destroy_guests(lxc_host.driver(), [CTID])

"""setup_gateway.sh, the deploy script that runs in the gateway guest, run here in a temp
root with a stub `nginx` (tests/unit/gateway/stub_nginx.py): the `nginx -t` gate (a
bundle nginx refuses never goes live, and nothing is reloaded), the switch and the health
check against the config nginx loaded, and the retention of the live and the previous
release (the rollback target). The real nginx runs the same script in
tests/e2e/test_gateway_host.py; this one fails in a second."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from phoenix.gateway.bundle import SCRIPT_NAME, render_gateway
from phoenix.gateway.layout import Layout, RenderedGateway, asset
from phoenix.gateway.render import write_tree
from phoenix.inventory import load_inventory
from tests.unit.gateway.conftest import net, vllm

STUB = Path(__file__).with_name("stub_nginx.py")
BROKEN = "phoenix_test_broken"  # the stub's `nginx -t` refuses a tree containing this


class FakeNginx:
    """The temp root, the stub's record of calls, and the health endpoint answering with
    the config id of the tree nginx last loaded (as /phoenix/health does)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "gateway"
        self.calls = tmp / "nginx-calls.jsonl"
        self.loaded = tmp / "nginx-loaded"
        self.pid_file = tmp / "nginx.pid"
        self.bin = tmp / "bin" / "nginx"
        self.bin.parent.mkdir()
        self.bin.write_text(f"#!{sys.executable}\n" + STUB.read_text())
        self.bin.chmod(0o755)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.port = self.server.server_address[1]
        self.renders = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        loaded = self.loaded

        class Health(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tree = Path(loaded.read_text()) if loaded.exists() else None
                if self.path != "/phoenix/health" or tree is None:
                    self.send_error(404)
                    return
                table = (tree / "njs" / "phoenix_models.js").read_text()
                config = json.loads(table[table.index("{") :].rstrip().rstrip(";"))["config"]
                body = json.dumps({"status": "ok", "config": config}, separators=(",", ":"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        return Health

    def bundle(self, model_port: int, broken: bool = False) -> tuple[Path, RenderedGateway]:
        """A bundle as Phoenix pushes it into /tmp/phoenix_run (one per `model_port`)."""
        self.renders += 1
        config = self.tmp / f"etc{self.renders}"
        config.mkdir()
        guests = {
            "101": {
                "name": "gw",
                "network_config": net("10.9.0.2"),
                "gateway": {"http_port": self.port},
            },
            "201": {
                "name": "m1",
                "network_config": net("10.9.0.21"),
                "vllm_engine_config": vllm("alpha", model_port),
            },
        }
        (config / "phoenix_hypervisor_config.json").write_text("{}")
        (config / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": guests}))
        layout = Layout(user=getpass.getuser(), metrics_dir=str(self.tmp / "metrics"))
        rendered, _ = render_gateway(load_inventory(config), 101, None, "derived", layout)
        run_dir = self.tmp / f"run{self.renders}"
        write_tree(rendered, run_dir, asset(SCRIPT_NAME))
        if broken:
            with (run_dir / "tree" / "sites-available" / "phoenix-api").open("a") as site:
                site.write(f"{BROKEN} on;\n")
        return run_dir, rendered

    def deploy(self, run_dir: Path) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PHOENIX_GATEWAY_ROOT": str(self.root),
            "PHOENIX_SERVICE": "direct",
            "PHOENIX_NGINX_BIN": str(self.bin),
            "PHOENIX_PID_FILE": str(self.pid_file),
            "PHOENIX_SKIP_INSTALL": "1",
            "STUB_NGINX_CALLS": str(self.calls),
            "STUB_NGINX_LOADED": str(self.loaded),
            "STUB_NGINX_PID": str(os.getpid()),  # a live process: `kill -0` finds nginx
        }
        return subprocess.run(
            ["bash", str(run_dir / SCRIPT_NAME)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def actions(self) -> list[str]:
        """What the script asked of nginx, in order: test, start, reload."""
        if not self.calls.exists():
            return []
        out = []
        for line in self.calls.read_text().splitlines():
            args = json.loads(line)
            out.append("test" if "-t" in args else "reload" if "-s" in args else "start")
        return out

    def releases(self) -> set[str]:
        return {p.name for p in (self.root / "releases").iterdir()}

    def live(self) -> str:
        return os.readlink(self.root / "live")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[FakeNginx]:
    fake = FakeNginx(tmp_path)
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def test_first_deploy_tests_then_switches_starts_and_checks_health(nginx: FakeNginx) -> None:
    run_dir, rendered = nginx.bundle(8001)
    done = nginx.deploy(run_dir)
    assert done.returncode == 0, done.stderr + done.stdout
    assert nginx.actions() == ["test", "start"]
    (release,) = nginx.releases()
    assert release.endswith("-" + rendered.config_id)
    assert nginx.live() == f"releases/{release}"
    assert nginx.loaded.read_text() == str((nginx.root / "releases" / release).resolve())
    assert f"healthy: /phoenix/health reports config {rendered.config_id}" in done.stdout
    site = nginx.root / "live" / "sites-enabled" / "phoenix-api"
    assert site.is_symlink() and os.readlink(site) == "../sites-available/phoenix-api"
    assert (nginx.tmp / "metrics").is_dir()


def test_a_bundle_nginx_refuses_never_goes_live(nginx: FakeNginx) -> None:
    good, rendered = nginx.bundle(8001)
    assert nginx.deploy(good).returncode == 0
    before = nginx.releases(), nginx.live(), nginx.actions()
    bad, _ = nginx.bundle(8002, broken=True)
    done = nginx.deploy(bad)
    assert done.returncode != 0
    assert f'unknown directive "{BROKEN}"' in done.stderr  # nginx's own message
    assert "the live config is unchanged" in done.stderr
    assert nginx.actions() == [*before[2], "test"]  # tested, never reloaded
    assert (nginx.releases(), nginx.live()) == before[:2]  # no stage left behind
    assert str(rendered.config_id) in nginx.loaded.read_text()


def test_keeps_the_live_and_the_previous_release(nginx: FakeNginx) -> None:
    ids = []
    for port in (8001, 8002, 8003):
        run_dir, rendered = nginx.bundle(port)
        done = nginx.deploy(run_dir)
        assert done.returncode == 0, done.stderr + done.stdout
        ids.append(rendered.config_id)
    assert nginx.actions() == ["test", "start", "test", "reload", "test", "reload"]
    releases = nginx.releases()
    assert sorted(r.rsplit("-", 1)[1] for r in releases) == sorted(ids[1:])
    assert nginx.live().endswith("-" + ids[2])
    previous = next(r for r in releases if r.endswith("-" + ids[1]))
    assert (nginx.root / "releases" / previous / "nginx.conf").is_file()  # rollback target


def test_an_unchanged_bundle_changes_nothing(nginx: FakeNginx) -> None:
    run_dir, _ = nginx.bundle(8001)
    assert nginx.deploy(run_dir).returncode == 0
    before = nginx.releases(), nginx.live()
    again = nginx.deploy(run_dir)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout and "nothing to do" in again.stdout
    assert nginx.actions() == ["test", "start"]
    assert (nginx.releases(), nginx.live()) == before

"""The NVIDIA runfile is downloaded once per host, not once per guest: the host fetches it
into its download cache (checksum checked when the inventory gives one), and each guest's
nvidia bundle gets it pushed beside the script, which installs from it without a download.
The optional CUDA toolkit is skipped, saying so, without `nvidia_repo_url`."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from phoenix.errors import DriverError
from phoenix.inventory import load_inventory
from phoenix.plan.planner import guest_entry
from phoenix.recipes import hostcache, runner
from phoenix.recipes.bundle import RUN_DIR, Bundle, HostFile
from phoenix.recipes.features import feature_bundle
from phoenix.recipes.registry import builtin_scripts_dir
from phoenix.runners.base import CommandResult, Stdin
from tests.conftest import shared_fixture

RUNFILE = "NVIDIA-Linux-x86_64-580.159.04.run"
PROC = Path(__file__).parents[2] / "fixtures" / "nvidia-h200" / "proc-driver-nvidia-version.txt"
# A stand-in runfile: "installs" the user-space library into the test root.
STAND_IN = b'#!/bin/sh\nmkdir -p "$PHOENIX_NVIDIA_ROOT/usr/lib/x86_64-linux-gnu"\n' \
    b': > "$PHOENIX_NVIDIA_ROOT/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.159.04"\n'  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server for one runfile; yields (its URL, the paths requested)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / RUNFILE).write_bytes(STAND_IN)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{RUNFILE}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


class Guest:
    """Answers every exec with success; keeps what was pushed into it."""

    def __init__(self) -> None:
        self.pushed: dict[str, Stdin] = {}

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        if list(argv[:3]) == ["sh", "-c", runner.PUSH_SCRIPT] and stdin is not None:
            self.pushed[f"{ctid}:{argv[-1]}"] = stdin
        return CommandResult(0, "", "")


def test_three_guests_one_download(
    server: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, requests = server
    monkeypatch.setenv("PHOENIX_DOWNLOAD_CACHE", str(tmp_path / "cache"))
    bundle = Bundle(
        "feature-nvidia", "feature_nvidia.sh", b"#!/bin/sh\n", host_files={RUNFILE: HostFile(url)}
    )
    guest = Guest()
    for ctid in (910, 914, 917):
        runner.run_bundle(guest, ctid, bundle)  # type: ignore[arg-type]
    assert requests == [f"/{RUNFILE}"]
    # Each guest is sent the cached file itself, streamed by the runner (never ~400 MB of
    # bytes held in memory per guest).
    cached = tmp_path / "cache" / RUNFILE
    assert guest.pushed == {f"{c}:{RUN_DIR}/{RUNFILE}": cached for c in (910, 914, 917)}
    assert cached.read_bytes() == STAND_IN


def test_a_checksum_is_checked_and_a_bad_download_is_not_kept(
    server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, requests = server
    cache = tmp_path / "cache"
    with pytest.raises(DriverError, match="is not the inventory's"):
        hostcache.fetch(url, "0" * 64, cache)
    assert not (cache / RUNFILE).exists() and not (cache / f"{RUNFILE}.part").exists()
    good = hashlib.sha256(STAND_IN).hexdigest()
    assert hostcache.fetch(url, good, cache).read_bytes() == STAND_IN
    hostcache.fetch(url, good.upper(), cache)
    assert len(requests) == 2  # the failed one and the first good one; the third reused it
    # A cached file changed behind Phoenix's back (other size) is fetched again.
    (cache / RUNFILE).write_bytes(b"truncated")
    assert hostcache.fetch(url, None, cache).read_bytes() == STAND_IN
    assert len(requests) == 3


def test_the_nvidia_bundle_names_the_runfile_for_the_host_to_fetch() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-gpu-lab"))
    bundle, why = feature_bundle(inventory, "nvidia", guest_entry(inventory.guests[910]))
    assert why is None and bundle is not None
    top = inventory.lxc_file
    assert top is not None and top.nvidia_runfile_url is not None
    assert bundle.host_files == {RUNFILE: HostFile(top.nvidia_runfile_url, None)}
    assert bundle.env["PHOENIX_NVIDIA_RUNFILE"] == RUNFILE
    assert bundle.env["PHOENIX_NVIDIA_REPO_URL"] == top.nvidia_repo_url
    sha = "a" * 64
    entry = {**guest_entry(inventory.guests[910]), "nvidia_runfile_sha256": sha}
    pinned, _ = feature_bundle(inventory, "nvidia", entry)
    assert pinned is not None and pinned.host_files[RUNFILE].sha256 == sha
    assert pinned.digest != bundle.digest


def test_the_script_installs_from_the_pushed_runfile_without_downloading(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RUNFILE).write_bytes(STAND_IN)
    root = tmp_path / "root"
    env = {
        "PATH": "/usr/bin:/bin",
        "PHOENIX_NVIDIA_ROOT": str(root),
        "PHOENIX_NVIDIA_PROC_VERSION": str(PROC),
        # Unreachable: a download would fail the run.
        "PHOENIX_NVIDIA_RUNFILE_URL": f"http://127.0.0.1:9/{RUNFILE}",
        "PHOENIX_NVIDIA_RUNFILE": RUNFILE,
    }
    script = builtin_scripts_dir() / "feature_nvidia.sh"
    done = subprocess.run(
        ["sh", str(script)], cwd=run_dir, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from the host's download cache" in done.stdout
    assert "downloading" not in done.stdout
    assert (root / "var/lib/phoenix/nvidia-userspace-version").read_text() == "580.159.04"
    assert "CUDA toolkit is not installed" in done.stdout and "nvidia_repo_url" in done.stdout

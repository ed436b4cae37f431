"""llama.cpp's `llama-server` as a built-in application (the original's script for guest
917, `phoenix_hypervisor_lxc_957.sh`, was deleted while the inventory names it).

Installed from a release archive (`.zip` as llama.cpp publishes, or `.tar.gz`), checked by
`llamacpp_sha256`, into /opt/llama.cpp; served by the unit `phoenix-llamacpp` with
`--model <llamacpp_model> --host 0.0.0.0 --port <llamacpp_port>` (and `--alias
<llamacpp_alias>`, the model name the gateway routes) plus `llamacpp_args`;
healthy when `/health` answers. Keys (additions): `llamacpp_archive_url` (default: the
pinned CPU build below), `llamacpp_sha256` (required: llama.cpp publishes no checksum
file), `llamacpp_model`, `llamacpp_port` (8081), `llamacpp_args`.

`llamacpp_archive_url` may instead name llama.cpp's source as the `llama-cpp-python` sdist
on PyPI carries it: `pypi:llama-cpp-python==VERSION` (`llamacpp_sha256` is then the sdist's,
as PyPI lists it). The host fetches it once with pip into its download cache, repacks
`vendor/llama.cpp` as a source archive (`phoenix.recipes.pypi_source`) and pushes it beside
the bundle: the guest needs no internet and builds it.

The archive is either a release build (it holds `llama-server`, used as it is) or llama.cpp's
source (a `CMakeLists.txt`): the source is built in the guest with `-DGGML_CUDA=ON` when the
CUDA toolkit's `nvcc` is there (the nvidia feature installs it from `nvidia_repo_url`), as
a plain CPU build otherwise, and rebuilt once `nvcc` appears.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from phoenix.names import LLAMACPP_APP_SCRIPT as LLAMACPP_APP_SCRIPT
from phoenix.names import LLAMACPP_PORT
from phoenix.recipes.bundle import HostFile
from phoenix.recipes.pypi_source import is_pypi

DEFAULT_PORT = LLAMACPP_PORT
DEFAULT_BUILD = "b6600"
DEFAULT_URL = (
    "https://github.com/ggml-org/llama.cpp/releases/download/"
    f"{DEFAULT_BUILD}/llama-{DEFAULT_BUILD}-bin-ubuntu-x64.zip"
)
# llama.cpp's source as llama-cpp-python 0.3.36 carries it; the sdist's sha256 on PyPI.
DEFAULT_SOURCE = "pypi:llama-cpp-python==0.3.36"
DEFAULT_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SOURCE_SUBDIR = "vendor/llama.cpp"
# The name the host-fetched source archive has in the run dir (the script looks for it).
SOURCE_FILE = "llamacpp-source.tar.gz"
MODEL_FILE = "llamacpp-model-file"
# A source build on one or two shared cores takes tens of minutes; a release install, one.
BUILD_TIMEOUT = 7200.0


REQUIRED = {
    "llamacpp_sha256": "the archive's sha256 (`sha256sum` of the file at llamacpp_archive_url; "
    "llama.cpp publishes none)",
    "llamacpp_model": "the GGUF model file's path inside the guest (a mount point can bring it, "
    "or llamacpp_model_url)",
}


def missing(entry: Mapping[str, Any]) -> str | None:
    """What the application cannot run without, said with how to add it; None when set."""
    absent = [key for key in REQUIRED if not entry.get(key)]
    if not absent:
        return None
    how = "; ".join(f"{key}: {REQUIRED[key]}" for key in absent)
    return f"llama.cpp needs {', '.join(absent)} in this guest's entry ({how})"


def source_url(url: str) -> str:
    """A `pypi:` source as the download cache names it (with llama.cpp's folder)."""
    return url if "#" in url else f"{url}#{SOURCE_SUBDIR}"


def host_files(entry: Mapping[str, Any]) -> dict[str, HostFile]:
    """What the host fetches once into its cache and pushes: the source archive, for a
    `pypi:` archive URL, and the model file from `llamacpp_model_url`."""
    files = {}
    url = str(entry.get("llamacpp_archive_url") or "")
    if is_pypi(url):
        files[SOURCE_FILE] = HostFile(source_url(url), str(entry.get("llamacpp_sha256") or ""))
    model_url = entry.get("llamacpp_model_url")
    if model_url:
        files[MODEL_FILE] = HostFile(str(model_url), entry.get("llamacpp_model_sha256") or None)
    return files


def build_name(entry: Mapping[str, Any]) -> str:
    """The host's name for a llama-server built from this guest's archive (one per source
    checksum: every guest of the host building the same source shares it)."""
    url = str(entry.get("llamacpp_archive_url") or DEFAULT_URL)
    sha = str(entry.get("llamacpp_sha256") or "").lower()
    return f"llama-server-{hashlib.sha256(f'{url} {sha}'.encode()).hexdigest()[:24]}.tar.gz"


def app_files(entry: Mapping[str, Any]) -> dict[str, bytes]:
    """The application's data as plain files (one value, or one argument, a line)."""
    url = entry.get("llamacpp_archive_url") or DEFAULT_URL
    sha = str(entry.get("llamacpp_sha256") or "").lower()
    model = str(entry.get("llamacpp_model") or "")
    port = entry.get("llamacpp_port") or DEFAULT_PORT
    args = ["--model", model, "--host", "0.0.0.0", "--port", str(port)]
    if entry.get("llamacpp_alias"):
        args += ["--alias", str(entry["llamacpp_alias"])]
    extra = entry.get("llamacpp_args")
    if isinstance(extra, list):
        args += [str(a) for a in extra]
    argv = ["/opt/llama.cpp/llama-server", *args]
    return {
        "llamacpp-exec": (" ".join(systemd_quote(a) for a in argv) + "\n").encode(),
        "llamacpp-model": f"{model}\n".encode(),
        "llamacpp-url": f"{url}\n".encode(),
        "llamacpp-sha256": f"{sha}\n".encode(),
        "llamacpp-port": f"{port}\n".encode(),
        "llamacpp-build-name": f"{build_name(entry)}\n".encode(),
    }


def systemd_quote(arg: str) -> str:
    """One ExecStart argument, passed as written: double-quoted, `\\` and `"` escaped, `%`
    doubled (systemd's specifiers) and `$` doubled (systemd expands `$VAR` and `${VAR}` in
    ExecStart from the unit's environment, quoted or not)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'

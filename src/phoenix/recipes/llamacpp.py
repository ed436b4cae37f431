"""llama.cpp's `llama-server` as a built-in application (the original's script for guest
917, `phoenix_hypervisor_lxc_957.sh`, was deleted while the inventory names it).

Installed from a release archive (`.zip` as llama.cpp publishes, or `.tar.gz`), checked by
`llamacpp_sha256`, into /opt/llama.cpp; served by the unit `phoenix-llamacpp` with
`--model <llamacpp_model> --host 0.0.0.0 --port <llamacpp_port>` plus `llamacpp_args`;
healthy when `/health` answers. Keys (additions): `llamacpp_archive_url` (default: the
pinned CPU build below), `llamacpp_sha256` (required: llama.cpp publishes no checksum
file), `llamacpp_model`, `llamacpp_port` (8081), `llamacpp_args`.

The archive is either a release build (it holds `llama-server`, used as it is) or llama.cpp's
source (a `CMakeLists.txt`): the source is built in the guest with `-DGGML_CUDA=ON` when the
CUDA toolkit's `nvcc` is there (the nvidia feature installs it from `nvidia_repo_url`), as
a plain CPU build otherwise, and rebuilt once `nvcc` appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LLAMACPP_APP_SCRIPT = "phoenix_hypervisor_lxc_957.sh"
DEFAULT_BUILD = "b6600"
DEFAULT_URL = (
    "https://github.com/ggml-org/llama.cpp/releases/download/"
    f"{DEFAULT_BUILD}/llama-{DEFAULT_BUILD}-bin-ubuntu-x64.zip"
)


REQUIRED = {
    "llamacpp_sha256": "the archive's sha256 (`sha256sum` of the file at llamacpp_archive_url; "
    "llama.cpp publishes none)",
    "llamacpp_model": "the GGUF model file's path inside the guest (a mount point can bring it)",
}


def missing(entry: Mapping[str, Any]) -> str | None:
    """What the application cannot run without, said with how to add it; None when set."""
    absent = [key for key in REQUIRED if not entry.get(key)]
    if not absent:
        return None
    how = "; ".join(f"{key}: {REQUIRED[key]}" for key in absent)
    return f"llama.cpp needs {', '.join(absent)} in this guest's entry ({how})"


def app_files(entry: Mapping[str, Any]) -> dict[str, bytes]:
    """The application's data as plain files (one value, or one argument, a line)."""
    url = entry.get("llamacpp_archive_url") or DEFAULT_URL
    sha = str(entry.get("llamacpp_sha256") or "").lower()
    model = str(entry.get("llamacpp_model") or "")
    port = entry.get("llamacpp_port")
    args = ["--model", model, "--host", "0.0.0.0", "--port", str(port or 8081)]
    extra = entry.get("llamacpp_args")
    if isinstance(extra, list):
        args += [str(a) for a in extra]
    argv = ["/opt/llama.cpp/llama-server", *args]
    return {
        "llamacpp-exec": (" ".join(systemd_quote(a) for a in argv) + "\n").encode(),
        "llamacpp-model": f"{model}\n".encode(),
        "llamacpp-url": f"{url}\n".encode(),
        "llamacpp-sha256": f"{sha}\n".encode(),
        "llamacpp-port": f"{port or 8081}\n".encode(),
    }


def systemd_quote(arg: str) -> str:
    """One ExecStart argument: double-quoted, `\\` and `"` escaped, `%` doubled."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'

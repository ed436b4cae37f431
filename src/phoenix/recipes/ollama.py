"""Ollama as built-in recipes: which release archive the `ollama` feature installs (and the
checksum it must have), and what the application's unit serves (port, models to pull).

Inventory keys (additions): `ollama_version` (pinned default below), `ollama_archive_url`
(a mirror or a local archive; wins over the version), `ollama_sha256` (the archive's
checksum; without it the release's own `sha256sum.txt` is fetched and checked),
`ollama_port` (default 11434), `ollama_models` (pulled when missing; never removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix.names import OLLAMA_APP_SCRIPT as OLLAMA_APP_SCRIPT

DEFAULT_OLLAMA_VERSION = "0.12.3"
RELEASES = "https://github.com/ollama/ollama/releases/download"
ARCHIVE = "ollama-linux-amd64.tgz"


def _text(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def feature_env(entry: Mapping[str, Any]) -> dict[str, str]:
    """The feature's environment: archive URL, and the checksum or where to read it."""
    version = _text(entry, "ollama_version") or DEFAULT_OLLAMA_VERSION
    url = _text(entry, "ollama_archive_url") or f"{RELEASES}/v{version}/{ARCHIVE}"
    env = {"PHOENIX_OLLAMA_URL": url}
    sha = _text(entry, "ollama_sha256")
    if sha:
        env["PHOENIX_OLLAMA_SHA256"] = sha.lower()
    else:
        env["PHOENIX_OLLAMA_SUMS_URL"] = f"{RELEASES}/v{version}/sha256sum.txt"
    return env


def app_files(entry: Mapping[str, Any]) -> dict[str, bytes]:
    """The application's data: its port, and the models one a line."""
    port = entry.get("ollama_port")
    models = entry.get("ollama_models")
    names = [m for m in models if isinstance(m, str)] if isinstance(models, list) else []
    return {
        "ollama-port": f"{port if isinstance(port, int) else 11434}\n".encode(),
        "ollama-models.txt": "".join(f"{m}\n" for m in names).encode(),
    }

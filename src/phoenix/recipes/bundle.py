"""A bundle: what the host pushes into a guest to run one recipe.

The host packs `script` (run as `/tmp/phoenix_run/<script_name>`), the files it needs and
the guest's inventory entry (`/tmp/phoenix_run/guest.json`) into one tarball, pushes it,
unpacks it into `/tmp/phoenix_run`, runs the script there, and removes the folder. The
digest identifies the bundle: a guest that already ran a bundle with the same digest does
not run it again (that is what makes a converged re-run change nothing).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RUN_DIR = "/tmp/phoenix_run"
BUILD_CACHE_DIR = "/var/lib/phoenix/build-cache"
BUILD_FILE = "phoenix-build-cache"


@dataclass(frozen=True)
class HostFile:
    """A large download the host fetches once into its cache and pushes beside the bundle
    (an NVIDIA runfile is ~400 MB: one download per host, not one per guest). It is named
    in the digest by URL and checksum, never read while planning."""

    url: str
    sha256: str | None = None


@dataclass(frozen=True)
class Bundle:
    """One recipe to run inside a guest.

    `name` is stable per recipe (e.g. "feature-base_setup", "application", "gateway") and
    keys the applied-marker in the guest; `files` maps relative paths under the run dir to
    their contents; `env` is passed to the script; `timeout` bounds its run (seconds).
    """

    name: str
    script_name: str
    script: bytes
    files: Mapping[str, bytes] = field(default_factory=dict)
    entry: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 1800.0
    # Pushed into the run dir under these names from the host's download cache.
    host_files: Mapping[str, HostFile] = field(default_factory=dict)
    # A build the recipe may leave in the guest (BUILD_CACHE_DIR/<name>): the host keeps it
    # and pushes it to the next guest running the same recipe (as BUILD_FILE in the run
    # dir), which uses it instead of building again. Named in the digest; whether the host
    # has it yet is not (a converged guest stays converged when the cache fills).
    build_cache: str | None = None

    @functools.cached_property
    def digest(self) -> str:
        """sha256 over everything the guest receives (stable across runs; computed once)."""
        h = hashlib.sha256()
        h.update(self.name.encode() + b"\0" + self.script_name.encode() + b"\0" + self.script)
        for path in sorted(self.files):
            h.update(b"\0file\0" + path.encode() + b"\0" + self.files[path])
        h.update(b"\0entry\0" + json.dumps(self.entry, sort_keys=True, default=str).encode())
        for key in sorted(self.env):
            h.update(b"\0env\0" + key.encode() + b"=" + self.env[key].encode())
        for name in sorted(self.host_files):
            f = self.host_files[name]
            h.update(b"\0fetch\0" + f"{name}={f.url}#{f.sha256 or ''}".encode())
        if self.build_cache:
            h.update(b"\0build\0" + self.build_cache.encode())
        return h.hexdigest()

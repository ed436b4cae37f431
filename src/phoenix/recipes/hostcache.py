"""The host's download cache: a large file a recipe needs is fetched once per host, and a
build a guest made is kept for the next guest (`builds/`, see `Bundle.build_cache`).

`fetch` downloads a URL into the cache (`/var/cache/phoenix/downloads`, or
`$PHOENIX_DOWNLOAD_CACHE`) under its own file name, beside a small record of where it came
from and how big it was. A later fetch of the same URL reuses the file when its sha256 is
the one the inventory gives, or (no checksum given) when its size is the recorded one. A
lock per file name makes guests converged in parallel share one download. Downloads use
Python's HTTP client: no shell ever sees the URL.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from phoenix.errors import DriverError
from phoenix.files import sha256_of, write_atomic
from phoenix.recipes import pypi_source

DEFAULT_CACHE = Path("/var/cache/phoenix/downloads")
CHUNK = 1 << 20


def cache_dir() -> Path:
    return Path(os.environ.get("PHOENIX_DOWNLOAD_CACHE") or DEFAULT_CACHE)


def file_name(url: str) -> str:
    """The URL's last path segment (what the cached file is called)."""
    name = Path(urlsplit(url).path).name
    if not name or name in (".", "..") or name.startswith("."):
        raise DriverError(f"cannot name a download after {url!r}: it has no file name")
    return name


def _record(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.with_name(path.name + ".source").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _reusable(path: Path, url: str, sha256: str | None) -> bool:
    if not path.is_file():
        return False
    record = _record(path)
    if record.get("url") != url or record.get("size") != path.stat().st_size:
        return False
    if sha256 is None:
        return True
    if record.get("sha256") == sha256.lower():
        return True
    return sha256_of(path) == sha256.lower()


def fetch(url: str, sha256: str | None = None, cache: Path | None = None) -> Path:
    """The cached file for `url`, downloaded when missing or not the recorded one.
    `pypi:NAME==VERSION#SUBDIR`: that folder of the package's sdist, as a source archive
    (`phoenix.recipes.pypi_source`; `sha256` is the sdist's)."""
    if pypi_source.is_pypi(url):
        source = pypi_source.parse(url)
        root = cache or cache_dir()
        root.mkdir(parents=True, exist_ok=True)
        with (root / (source.archive_name + ".lock")).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return pypi_source.source_archive(url, sha256, root)
    if urlsplit(url).scheme not in ("http", "https", "file"):
        raise DriverError(f"cannot download {url!r}: only http, https and file URLs")
    root = cache or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / file_name(url)
    with (root / (path.name + ".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _reusable(path, url, sha256):
            return path
        part = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
                shutil.copyfileobj(response, out, CHUNK)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise DriverError(f"downloading {url} into {root}: {exc}") from None
        digest = sha256_of(part)
        if sha256 is not None and digest != sha256.lower():
            part.unlink(missing_ok=True)
            raise DriverError(
                f"{url}: downloaded sha256 {digest} is not the inventory's {sha256.lower()}"
            )
        part.replace(path)
        record = {"url": url, "size": path.stat().st_size, "sha256": digest}
        path.with_name(path.name + ".source").write_text(json.dumps(record) + "\n")
        return path


def build_path(name: str, cache: Path | None = None) -> Path:
    """Where the host keeps a build a guest made (`Bundle.build_cache`)."""
    if not name or "/" in name or name.startswith("."):
        raise DriverError(f"bad build cache name {name!r}")
    return (cache or cache_dir()) / "builds" / name


def cached_build(name: str, cache: Path | None = None) -> Path | None:
    path = build_path(name, cache)
    return path if path.is_file() else None


def keep_build(name: str, data: bytes, cache: Path | None = None) -> Path:
    """Store a build (atomically: a reader sees all of it or none)."""
    path = build_path(name, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path

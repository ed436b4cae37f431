"""A source tree carried by a PyPI source distribution, as a source archive in the host's
download cache.

`llama-cpp-python`'s sdist carries llama.cpp's own source under `vendor/llama.cpp`: with
only the package registries reachable, that is how a guest gets real llama.cpp source.
A download-cache URL `pypi:NAME==VERSION#SUBDIR` names it: pip downloads the sdist once
per host (`pip download --no-deps --no-binary :all:`, argv only: no shell sees the
requirement), its sha256 is checked against the inventory's, and SUBDIR is repacked as
`SUBDIR's last name/...` into a `.tar.gz` the llama.cpp application accepts. The repack
is deterministic (sorted members, fixed owners, gzip without a timestamp), so the same
sdist gives the same archive checksum on every host; that checksum is recorded beside it.
Model files under `models/` are left out except `KEEP` (the tiny model's vocabulary).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from phoenix.errors import DriverError
from phoenix.files import sha256_of

SCHEME = "pypi:"
# A pinned requirement only: a name and an exact version (no options, no URLs, no ranges).
REQUIREMENT = re.compile(
    r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)"
)
SUBDIR = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
KEEP = frozenset({"models/ggml-vocab-llama-spm.gguf"})
PIP_TIMEOUT = 900


@dataclass(frozen=True)
class PypiSource:
    """`pypi:NAME==VERSION#SUBDIR`, parsed."""

    name: str
    version: str
    subdir: str

    @property
    def archive_name(self) -> str:
        """The cached archive's file name (one per package, version and subdirectory)."""
        leaf = self.subdir.rsplit("/", 1)[-1]
        return f"{leaf}-src-{self.name}-{self.version}.tar.gz"


def is_pypi(url: str) -> bool:
    return url.startswith(SCHEME)


def parse(url: str) -> PypiSource:
    """The parsed URL, or a one-line error saying what a valid one looks like."""
    body, _, subdir = url.removeprefix(SCHEME).partition("#")
    req = REQUIREMENT.fullmatch(body)
    if not url.startswith(SCHEME) or req is None:
        raise DriverError(
            f"{url!r} is not a pinned PyPI source (pypi:NAME==VERSION#SUBDIR, e.g. "
            "pypi:llama-cpp-python==0.3.36#vendor/llama.cpp)"
        )
    if not SUBDIR.fullmatch(subdir) or ".." in subdir.split("/"):
        raise DriverError(f"{url!r}: the part after '#' must be a folder inside the sdist")
    return PypiSource(req.group(1), req.group(2), subdir)


def record_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".source")


def _recorded(archive: Path, url: str, sdist_sha256: str) -> bool:
    try:
        record = json.loads(record_path(archive).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("url") == url
        and record.get("sdist_sha256") == sdist_sha256
        and archive.is_file()
        and record.get("size") == archive.stat().st_size
    )


def download_sdist(source: PypiSource, dest: Path) -> Path:
    """pip's download of the sdist into `dest` (pip prepares its metadata: it may fetch
    the package's build backend into a throwaway environment)."""
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", "--dest", str(dest), f"{source.name}=={source.version}",
    ]  # fmt: skip
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"pip download {source.name}=={source.version}: {exc}") from None
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DriverError(f"pip download {source.name}=={source.version} failed: {tail[0]}")
    found = [p for p in dest.iterdir() if p.name.endswith((".tar.gz", ".zip"))]
    if len(found) != 1:
        raise DriverError(f"pip download {source.name}=={source.version}: no single sdist")
    return found[0]


def repack(sdist: Path, subdir: str, out: Path) -> int:
    """Write `subdir` of the sdist (a .tar.gz) into `out` as `<leaf>/...`, deterministic;
    returns how many members were written."""
    leaf = subdir.rsplit("/", 1)[-1]
    written = 0
    with tarfile.open(sdist, "r:gz") as src:
        members = []
        for member in src.getmembers():
            parts = member.name.split("/", 1)
            inner = parts[1] if len(parts) == 2 else ""
            if not (inner == subdir or inner.startswith(subdir + "/")):
                continue
            rel = inner[len(subdir) :].lstrip("/")
            if not (member.isfile() or member.isdir()) or _left_out(rel):
                continue
            members.append((f"{leaf}/{rel}".rstrip("/"), member))
        if not members:
            raise DriverError(f"{sdist.name} has no folder {subdir}")
        members.sort(key=lambda pair: pair[0])
        with (
            out.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst,
        ):
            for name, member in members:
                info = tarfile.TarInfo(name)
                info.type, info.size = member.type, member.size if member.isfile() else 0
                info.mode = 0o755 if member.isdir() or member.mode & 0o111 else 0o644
                info.mtime = member.mtime
                data = src.extractfile(member) if member.isfile() else None
                dst.addfile(info, data)
                written += 1
    return written


def _left_out(rel: str) -> bool:
    """Model files (tens of MB of test vocabularies), except the one kept, and VCS data."""
    if rel == ".git" or rel.startswith(".git/"):
        return True
    return rel.startswith("models/") and ".gguf" in rel and rel not in KEEP


def source_archive(url: str, sdist_sha256: str | None, cache: Path) -> Path:
    """The cached archive for `url` (made once per host; the sdist's sha256 is checked)."""
    source = parse(url)
    if not sdist_sha256:
        raise DriverError(f"{url}: the sdist's sha256 is required (PyPI lists it per file)")
    want = sdist_sha256.lower()
    archive = cache / source.archive_name
    if _recorded(archive, url, want):
        return archive
    with tempfile.TemporaryDirectory(dir=cache, prefix=".pypi-") as tmp:
        sdist = download_sdist(source, Path(tmp))
        got = sha256_of(sdist)
        if got != want:
            raise DriverError(f"{url}: the sdist {sdist.name} has sha256 {got}, not {want}")
        part = archive.with_name(archive.name + ".part")
        try:
            repack(sdist, source.subdir, part)
        except (OSError, tarfile.TarError) as exc:
            part.unlink(missing_ok=True)
            raise DriverError(f"{url}: repacking {sdist.name}: {exc}") from None
        part.replace(archive)
    record = {
        "url": url,
        "sdist": sdist.name,
        "sdist_sha256": want,
        "sha256": sha256_of(archive),
        "size": archive.stat().st_size,
    }
    record_path(archive).write_text(json.dumps(record) + "\n")
    return archive

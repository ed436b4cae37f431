"""llama.cpp's source from a PyPI sdist: the `pypi:` URL grammar (nothing but a pinned
requirement reaches pip), the deterministic repack, the sdist checksum, the cache record,
and the llama.cpp application's bundle carrying the archive as a host file."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from phoenix.errors import DriverError
from phoenix.recipes import hostcache, llamacpp, pypi_source
from phoenix.recipes.bundle import HostFile

URL = "pypi:llama-cpp-python==0.3.36#vendor/llama.cpp"


def make_sdist(path: Path, extra: bytes = b"") -> Path:
    """An sdist shaped like llama-cpp-python's: the package, and llama.cpp under vendor/."""
    files = {
        "llama_cpp_python-0.3.36/pyproject.toml": b"[project]\n",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt": b"project(llama)\n" + extra,
        "llama_cpp_python-0.3.36/vendor/llama.cpp/scripts/build.sh": b"#!/bin/sh\n",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf": b"GGUF v",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf": b"GGUF big",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf.inp": b"in",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/x.jinja": b"{{ x }}",
        "llama_cpp_python-0.3.36/vendor/llama.cpp/.git/HEAD": b"ref",
        "llama_cpp_python-0.3.36/vendorless/llama.cpp/CMakeLists.txt": b"not this one",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.uname = len(data), 1667997420, 1000, "builder"
            info.mode = 0o775 if name.endswith(".sh") else 0o664
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "bad",
    [
        "pypi:llama-cpp-python",  # not pinned
        "pypi:llama-cpp-python>=0.3#vendor/llama.cpp",  # a range
        "pypi:--index-url=http://evil/==1#vendor/llama.cpp",  # a pip option
        "pypi:llama-cpp-python==0.3.36 --pre#vendor/llama.cpp",  # words after it
        "pypi:llama-cpp-python==0.3.36#../../etc",  # out of the sdist
        "pypi:llama-cpp-python==0.3.36#",  # no folder
        "https://example.invalid/llama.tar.gz",  # not pypi at all
    ],
)
def test_only_a_pinned_requirement_and_a_folder_inside_the_sdist_are_accepted(bad: str) -> None:
    with pytest.raises(DriverError, match=r"pypi:|folder inside"):
        pypi_source.parse(bad)


def test_a_pinned_requirement_is_parsed_and_names_its_archive() -> None:
    source = pypi_source.parse(URL)
    assert (source.name, source.version, source.subdir) == (
        "llama-cpp-python", "0.3.36", "vendor/llama.cpp",
    )  # fmt: skip
    assert source.archive_name == "llama.cpp-src-llama-cpp-python-0.3.36.tar.gz"


def test_the_repack_keeps_the_folder_only_and_is_the_same_bytes_every_time(
    tmp_path: Path,
) -> None:
    sdist = make_sdist(tmp_path / "llama_cpp_python-0.3.36.tar.gz")
    one, two = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    assert pypi_source.repack(sdist, "vendor/llama.cpp", one) == 4
    pypi_source.repack(sdist, "vendor/llama.cpp", two)
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert sorted(n for n, m in names.items() if m.isfile()) == [
        "llama.cpp/CMakeLists.txt",
        "llama.cpp/models/ggml-vocab-llama-spm.gguf",  # the tiny model's vocabulary
        "llama.cpp/models/templates/x.jinja",
        "llama.cpp/scripts/build.sh",
    ]
    assert names["llama.cpp/scripts/build.sh"].mode == 0o755
    assert names["llama.cpp/CMakeLists.txt"].mode == 0o644
    assert {(m.uid, m.uname) for m in names.values()} == {(0, "")}


def test_a_sdist_without_the_folder_is_refused(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "s.tar.gz")
    with pytest.raises(DriverError, match="has no folder vendor/nothing"):
        pypi_source.repack(sdist, "vendor/nothing", tmp_path / "out.tar.gz")


class FakePip:
    """pip download, as far as the cache sees it: the sdist appears in --dest."""

    def __init__(self, sdist: Path) -> None:
        self.sdist, self.calls = sdist, 0

    def __call__(self, source: pypi_source.PypiSource, dest: Path) -> Path:
        self.calls += 1
        out = dest / self.sdist.name
        out.write_bytes(self.sdist.read_bytes())
        return out


def test_the_cache_checks_the_sdist_records_the_archive_and_downloads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdist = make_sdist(tmp_path / "llama_cpp_python-0.3.36.tar.gz")
    good = hashlib.sha256(sdist.read_bytes()).hexdigest()
    pip = FakePip(sdist)
    monkeypatch.setattr(pypi_source, "download_sdist", pip)
    cache = tmp_path / "cache"

    with pytest.raises(DriverError, match=f"has sha256 {good}, not {'0' * 64}"):
        hostcache.fetch(URL, "0" * 64, cache)
    made = {p.name for p in cache.iterdir()}
    assert made == {"llama.cpp-src-llama-cpp-python-0.3.36.tar.gz.lock"}  # nothing half-made

    archive = hostcache.fetch(URL, good.upper(), cache)
    record = json.loads((cache / (archive.name + ".source")).read_text())
    assert record == {
        "url": URL, "sdist": sdist.name, "sdist_sha256": good,
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "size": archive.stat().st_size,
    }  # fmt: skip
    assert hostcache.fetch(URL, good, cache) == archive and pip.calls == 2
    assert [p.name for p in cache.iterdir() if p.name.startswith(".pypi-")] == []

    with pytest.raises(DriverError, match="sha256 is required"):
        hostcache.fetch(URL, None, cache)


def test_a_changed_sdist_checksum_makes_a_new_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    first = make_sdist(tmp_path / "a" / "llama_cpp_python-0.3.36.tar.gz")
    monkeypatch.setattr(pypi_source, "download_sdist", FakePip(first))
    cache = tmp_path / "cache"
    archive = hostcache.fetch(URL, hashlib.sha256(first.read_bytes()).hexdigest(), cache)
    before = archive.read_bytes()
    (tmp_path / "b").mkdir()
    second = make_sdist(tmp_path / "b" / first.name, b"# patched\n")
    monkeypatch.setattr(pypi_source, "download_sdist", FakePip(second))
    hostcache.fetch(URL, hashlib.sha256(second.read_bytes()).hexdigest(), cache)
    assert archive.read_bytes() != before


def test_pip_gets_the_pinned_requirement_as_one_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def run(argv: list[str], **_: object) -> object:
        seen.append(argv)
        (tmp_path / "llama_cpp_python-0.3.36.tar.gz").write_bytes(b"x")

        class Done:
            returncode, stdout, stderr = 0, "", ""

        return Done()

    monkeypatch.setattr("phoenix.recipes.pypi_source.subprocess.run", run)
    got = pypi_source.download_sdist(pypi_source.parse(URL), tmp_path)
    assert got.name == "llama_cpp_python-0.3.36.tar.gz"
    [argv] = seen
    assert argv[1:] == [
        "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
        "--dest", str(tmp_path), "llama-cpp-python==0.3.36",
    ]  # fmt: skip


def test_the_application_bundle_carries_the_source_as_a_host_file() -> None:
    entry = {
        "llamacpp_archive_url": "pypi:llama-cpp-python==0.3.36",
        "llamacpp_sha256": llamacpp.DEFAULT_SHA256,
        "llamacpp_model": "/models/tiny.gguf",
    }
    assert llamacpp.host_files(entry) == {
        "llamacpp-source.tar.gz": HostFile(URL, llamacpp.DEFAULT_SHA256)
    }
    assert llamacpp.host_files({"llamacpp_archive_url": "https://x.invalid/a.zip"}) == {}

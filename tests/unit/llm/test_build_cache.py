"""llama.cpp is built once per source checksum on a host: the first guest's build is kept
in the host's cache (read back from the guest), later guests get it pushed and install it
instead of building, unless it was built for another flavour, OS or CPU; a guest that
already has it changes nothing."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from phoenix.recipes import hostcache, runner
from phoenix.recipes.bundle import BUILD_CACHE_DIR, BUILD_FILE, RUN_DIR, Bundle
from phoenix.recipes.llamacpp import app_files, build_name
from phoenix.recipes.registry import builtin_scripts_dir
from phoenix.runners.base import CommandResult, Stdin
from tests.unit.passthrough.test_llamacpp import STUBS, _stubs

NAME = "llama-server-0123456789abcdef01234567.tar.gz"


class Guests:
    """Each exec succeeds; guest 1 has a build left for the host, the others none."""

    def __init__(self, build: bytes) -> None:
        self.build, self.pushed, self.removed = build, {}, []  # type: ignore[var-annotated]

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        if list(argv[:3]) == ["sh", "-c", runner.PUSH_SCRIPT]:
            assert isinstance(stdin, Path)
            self.pushed[(ctid, argv[-1])] = stdin.read_bytes()
        if list(argv[:3]) == ["sh", "-c", runner.COLLECT_SCRIPT]:
            assert argv[-1] == f"{BUILD_CACHE_DIR}/{NAME}"
            if ctid != 1:
                return CommandResult(3, "", "")
            return CommandResult(0, base64.encodebytes(self.build).decode(), "")
        if list(argv[:2]) == ["rm", "-f"]:
            self.removed.append((ctid, argv[-1]))
        return CommandResult(0, "", "")


def test_the_first_guests_build_is_kept_and_pushed_to_the_next_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOENIX_DOWNLOAD_CACHE", str(tmp_path / "cache"))
    built = b"\x1f\x8b binary build \x00\xff" * 1000
    guests = Guests(built)
    bundle = Bundle("application", "app.sh", b"#!/bin/sh\n", build_cache=NAME)
    runner.run_bundle(guests, 1, bundle)  # type: ignore[arg-type]
    assert (tmp_path / "cache/builds" / NAME).read_bytes() == built
    assert guests.removed == [(1, f"{BUILD_CACHE_DIR}/{NAME}")]
    assert guests.pushed == {}
    for ctid in (2, 3):
        runner.run_bundle(guests, ctid, bundle)  # type: ignore[arg-type]
    assert guests.pushed == {(c, f"{RUN_DIR}/{BUILD_FILE}"): built for c in (2, 3)}


def test_whether_the_host_has_the_build_is_not_part_of_the_digest(tmp_path: Path) -> None:
    plain = Bundle("application", "app.sh", b"#!/bin/sh\n")
    cached = Bundle("application", "app.sh", b"#!/bin/sh\n", build_cache=NAME)
    assert plain.digest != cached.digest  # the name is
    hostcache.keep_build(NAME, b"x", tmp_path)
    assert cached.digest == Bundle("application", "app.sh", b"#!/bin/sh\n", build_cache=NAME).digest
    with pytest.raises(Exception, match="bad build cache name"):
        hostcache.build_path("../escape", tmp_path)


def test_the_build_name_follows_the_source_checksum() -> None:
    entry = {"llamacpp_archive_url": "pypi:llama-cpp-python==0.3.36", "llamacpp_sha256": "a" * 64}
    assert build_name(entry) == build_name({**entry, "llamacpp_model": "/other.gguf"})
    assert build_name(entry) != build_name({**entry, "llamacpp_sha256": "b" * 64})
    assert build_name(entry).startswith("llama-server-") and build_name(entry).endswith(".tar.gz")


def _run_dir(tmp_path: Path, name: str) -> Path:
    source = tmp_path / "src" / "llama.cpp"
    source.mkdir(parents=True, exist_ok=True)
    (source / "CMakeLists.txt").write_text("project(llama)\n")
    model = tmp_path / "model.gguf"
    model.write_text("")
    entry = {
        "llamacpp_archive_url": "pypi:llama-cpp-python==0.3.36",
        "llamacpp_sha256": "c" * 64,
        "llamacpp_model": str(model),
    }
    run_dir = tmp_path / name
    run_dir.mkdir()
    for file, data in app_files(entry).items():
        (run_dir / file).write_bytes(data)
    with tarfile.open(run_dir / "llamacpp-source.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="llama.cpp")
    shutil.copy(builtin_scripts_dir() / "app_llamacpp.sh", run_dir / "app.sh")
    return run_dir


def _run(run_dir: Path, stubs: Path, root: Path, log: Path) -> str:
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "PHOENIX_LLAMACPP_ROOT": str(root),
           "CMAKE_LOG": str(log)}  # fmt: skip
    done = subprocess.run(
        ["sh", str(run_dir / "app.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_guest_installs_the_pushed_build_instead_of_building(tmp_path: Path) -> None:
    stubs = _stubs(tmp_path / "stubs", STUBS)
    log = tmp_path / "cmake.log"
    first = _run_dir(tmp_path, "run1")
    name = (first / "llamacpp-build-name").read_text().strip()
    _run(first, stubs, tmp_path / "root1", log)
    assert log.exists()  # built
    left = tmp_path / "root1/var/lib/phoenix/build-cache" / name
    with tarfile.open(left) as tar:
        assert sorted(tar.getnames()) == ["bin/llama-server", "build-platform"]
        platform = tar.extractfile("build-platform").read().decode()  # type: ignore[union-attr]
    assert platform.startswith("cpu ")

    log.unlink()
    second = _run_dir(tmp_path, "run2")
    shutil.copy(left, second / BUILD_FILE)
    out = _run(second, stubs, tmp_path / "root2", log)
    assert not log.exists() and "another guest built" in out
    installed = tmp_path / "root2/opt/llama.cpp"
    assert (installed / "llama-server").resolve() == installed / "bin/llama-server"
    assert (installed / ".phoenix-archive").read_text().endswith(" cpu")

    # A build for another platform (here: CUDA) is not used: this guest builds its own.
    other = io.BytesIO()
    with tarfile.open(left) as tar, tarfile.open(fileobj=other, mode="w:gz") as out_tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "build-platform":
                data = data.replace(b"cpu ", b"cuda ")
            member.size = len(data)
            out_tar.addfile(member, io.BytesIO(data))
    third = _run_dir(tmp_path, "run3")
    (third / BUILD_FILE).write_bytes(other.getvalue())
    _run(third, stubs, tmp_path / "root3", log)
    assert log.exists()


def test_a_pushed_build_gets_its_openmp_runtime_before_it_is_used(tmp_path: Path) -> None:
    """A guest that never built has no libgomp1 (build-essential brings it to the builder):
    the pushed build's missing library is installed, or the guest builds for itself."""
    marker = tmp_path / "libgomp-installed"
    stubs = _stubs(
        tmp_path / "stubs",
        STUBS
        | {
            "ldd": f'#!/bin/sh\n[ -f "{marker}" ] && echo "libgomp.so.1 => /lib/libgomp.so.1"'
            ' || echo "libgomp.so.1 => not found"\n',
            "apt-get": f'#!/bin/sh\necho "apt-get $*" >> "{tmp_path}/apt.log"\n'
            f'case "$*" in *libgomp1*) : > "{marker}";; esac\n',
        },
    )
    log = tmp_path / "cmake.log"
    first = _run_dir(tmp_path, "run1")
    name = (first / "llamacpp-build-name").read_text().strip()
    plain = _stubs(tmp_path / "plain", STUBS)
    _run(first, plain, tmp_path / "root1", log)  # the builder
    log.unlink()
    second = _run_dir(tmp_path, "run2")
    shutil.copy(tmp_path / "root1/var/lib/phoenix/build-cache" / name, second / BUILD_FILE)
    out = _run(second, stubs, tmp_path / "root2", log)
    assert "installing the build's runtime library libgomp1" in out
    assert "another guest built" in out and not log.exists()
    assert "install -y -q --no-install-recommends libgomp1" in (tmp_path / "apt.log").read_text()

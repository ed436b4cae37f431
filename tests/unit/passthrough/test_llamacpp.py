"""llama.cpp's application data: the unit's ExecStart quoted for systemd on the host."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

from phoenix.inventory import load_inventory
from phoenix.plan.planner import guest_entry
from phoenix.recipes.applications import application_bundle
from phoenix.recipes.llamacpp import app_files, systemd_quote
from phoenix.recipes.registry import builtin_scripts_dir
from tests.conftest import shared_fixture
from tests.unit.inventory.helpers import validate_json


def test_exec_line_quotes_every_argument() -> None:
    files = app_files(
        {"llamacpp_model": "/models/a b.gguf", "llamacpp_port": 9000, "llamacpp_args": ['50%"x']}
    )
    assert files["llamacpp-exec"] == (
        b'"/opt/llama.cpp/llama-server" "--model" "/models/a b.gguf" "--host" "0.0.0.0" '
        b'"--port" "9000" "50%%\\"x"\n'
    )
    assert systemd_quote("a\\b") == '"a\\\\b"'


def test_guest_917_of_the_fixture_gets_the_built_in_application() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    entry = guest_entry(inventory.guests[917]) | {"llamacpp_sha256": "b" * 64}
    app, why = application_bundle(inventory, 917, entry | {"llamacpp_model": "/m.gguf"}, None)
    assert why is None and app is not None and app.script_name == "app_llamacpp.sh"


def test_guest_917_is_told_what_it_lacks_and_how_to_add_it() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    entry = guest_entry(inventory.guests[917])
    app, why = application_bundle(inventory, 917, entry, None)
    assert app is None and why is not None
    assert "llama.cpp needs llamacpp_sha256, llamacpp_model" in why
    assert "sha256sum" in why and "GGUF" in why
    code, problems, _ = validate_json(shared_fixture("phoenix-etc-2025-10-03"))
    assert code == 0  # a warning: the rest of the lab converges
    [found] = [p for p in problems if p["path"] == "lxc_configs.917"]
    assert found["severity"] == "warning" and "llamacpp_model" in found["message"]
    done, _ = application_bundle(
        inventory, 917, {**entry, "llamacpp_sha256": "a" * 64, "llamacpp_model": "/m.gguf"}, None
    )
    assert done is not None


STUBS = {
    # Downloads: the URL is a file path; health: answered.
    "curl": '#!/bin/sh\nout=""; last=""\nwhile [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift;; '
    '*) last=$1;; esac; shift; done\n[ "$out" = /dev/null ] && exit 0\ncp "${last#file://}" "$out"\n',
    "systemctl": "#!/bin/sh\nexit 0\n",
    "c++": "#!/bin/sh\nexit 0\n",
    "apt-get": '#!/bin/sh\necho "apt-get must not run here" >&2\nexit 1\n',
    # Records its arguments; the configure step makes the server binary.
    "cmake": '#!/bin/sh\necho "$*" >> "$CMAKE_LOG"\nif [ "$1" = -S ]; then '
    'mkdir -p "$4/bin" && printf "#!/bin/sh\\n" > "$4/bin/llama-server"; fi\n',
}


def _stubs(where: Path, names: dict[str, str]) -> Path:
    where.mkdir()
    for name, text in names.items():
        (where / name).write_text(text)
        (where / name).chmod(0o755)
    return where


def test_a_source_archive_is_built_for_the_cpu_then_with_cuda_once_nvcc_is_there(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src" / "llama.cpp-b6600"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("project(llama)\n")
    archive = tmp_path / "llama.cpp-b6600.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="llama.cpp-b6600")
    model = tmp_path / "model.gguf"
    model.write_text("")
    entry = {
        "llamacpp_archive_url": f"file://{archive}",
        "llamacpp_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "llamacpp_model": str(model),
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, data in app_files(entry).items():
        (run_dir / name).write_bytes(data)
    shutil.copy(builtin_scripts_dir() / "app_llamacpp.sh", run_dir / "app.sh")
    plain = _stubs(tmp_path / "stubs", STUBS)
    cuda = _stubs(tmp_path / "cuda", {"nvcc": "#!/bin/sh\necho 'release 13.0'\n"})
    log = tmp_path / "cmake.log"
    root = tmp_path / "root"

    def run(path: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": path, "PHOENIX_LLAMACPP_ROOT": str(root), "CMAKE_LOG": str(log)}
        done = subprocess.run(
            ["sh", str(run_dir / "app.sh")], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    run(f"{plain}:/usr/bin:/bin")
    assert "-DGGML_CUDA=OFF" in log.read_text() and "-DGGML_CUDA=ON" not in log.read_text()
    assert (root / "opt/llama.cpp/.phoenix-archive").read_text().endswith(" cpu")
    log.unlink()
    done = run(f"{cuda}:{plain}:/usr/bin:/bin")
    assert f"-DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER={cuda}/nvcc" in log.read_text()
    assert "with CUDA" in done.stdout
    assert (root / "opt/llama.cpp/.phoenix-archive").read_text().endswith(" cuda")
    assert (root / "opt/llama.cpp/llama-server").exists()
    log.unlink()
    run(f"{cuda}:{plain}:/usr/bin:/bin")  # converged: nothing rebuilt
    assert not log.exists()


def test_a_source_archive_the_host_pushed_is_built_without_any_download(tmp_path: Path) -> None:
    source = tmp_path / "src" / "llama.cpp"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("project(llama)\n")
    model = tmp_path / "model.gguf"
    model.write_text("")
    entry = {
        "llamacpp_archive_url": "pypi:llama-cpp-python==0.3.36",
        "llamacpp_sha256": "c" * 64,  # the sdist's: the host checked it
        "llamacpp_model": str(model),
    }
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, data in app_files(entry).items():
        (run_dir / name).write_bytes(data)
    with tarfile.open(run_dir / "llamacpp-source.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="llama.cpp")
    shutil.copy(builtin_scripts_dir() / "app_llamacpp.sh", run_dir / "app.sh")
    no_download = STUBS | {
        "curl": '#!/bin/sh\ncase "$*" in *health*) exit 0;; esac\necho "curl $*" >&2; exit 9\n'
    }
    stubs = _stubs(tmp_path / "stubs", no_download)
    log, root = tmp_path / "cmake.log", tmp_path / "root"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "PHOENIX_LLAMACPP_ROOT": str(root),
           "CMAKE_LOG": str(log)}  # fmt: skip
    done = subprocess.run(
        ["sh", str(run_dir / "app.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fetched and checked by the host" in done.stdout
    configure, build = log.read_text().splitlines()
    assert "-DCMAKE_BUILD_TYPE=Release" in configure and "-DLLAMA_BUILD_TESTS=OFF" in configure
    assert "-DBUILD_SHARED_LIBS=OFF" in configure and "-DLLAMA_BUILD_EXAMPLES=OFF" in configure
    assert "--target llama-server" in build
    installed = root / "opt/llama.cpp"
    assert sorted(p.name for p in installed.iterdir()) == [
        ".phoenix-archive",
        "bin",
        "build-platform",
        "llama-server",
    ]  # the source tree and objects are gone
    assert (installed / "llama-server").resolve() == installed / "bin/llama-server"
    assert (
        installed / ".phoenix-archive"
    ).read_text() == f"pypi:llama-cpp-python==0.3.36 {'c' * 64} cpu"


def test_a_model_from_a_url_is_fetched_by_the_host_and_installed_at_llamacpp_model(
    tmp_path: Path,
) -> None:
    from phoenix.recipes.bundle import HostFile
    from phoenix.recipes.llamacpp import MODEL_FILE, host_files

    model = tmp_path / "models" / "real.gguf"  # not there yet: the URL brings it
    entry = {
        "llamacpp_archive_url": "pypi:llama-cpp-python==0.3.36",
        "llamacpp_sha256": "c" * 64,
        "llamacpp_model": str(model),
        "llamacpp_model_url": "https://models.example/real.gguf",
        "llamacpp_model_sha256": "d" * 64,
    }
    assert host_files(entry)[MODEL_FILE] == HostFile("https://models.example/real.gguf", "d" * 64)
    source = tmp_path / "src" / "llama.cpp"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("project(llama)\n")
    stubs = _stubs(tmp_path / "stubs", STUBS)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "PHOENIX_LLAMACPP_ROOT": str(tmp_path / "root"),
           "CMAKE_LOG": str(tmp_path / "cmake.log")}  # fmt: skip

    def run(weights: bytes) -> str:
        run_dir = tmp_path / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        for name, data in app_files(entry).items():
            (run_dir / name).write_bytes(data)
        with tarfile.open(run_dir / "llamacpp-source.tar.gz", "w:gz") as tar:
            tar.add(source, arcname="llama.cpp")
        (run_dir / MODEL_FILE).write_bytes(weights)
        shutil.copy(builtin_scripts_dir() / "app_llamacpp.sh", run_dir / "app.sh")
        done = subprocess.run(
            ["sh", str(run_dir / "app.sh")], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "installing the model file" in run(b"GGUF one")
    assert model.read_bytes() == b"GGUF one"
    assert "installing the model file" not in run(b"GGUF one")  # the same file: kept
    assert "installing the model file" in run(b"GGUF two")
    assert model.read_bytes() == b"GGUF two"

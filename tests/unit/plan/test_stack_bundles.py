"""The stack and volume bundles, built from the original tool's stack layout
(tests/fixtures/phoenix-vm-newest/stacks) and run for real with `sh` against a recording
`docker`/`mount`/`findmnt` on PATH: what reaches the guest, and the argv compose gets."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from phoenix.inventory.models import DockerStack, VmVolume
from phoenix.recipes import stacks, vmvolumes
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import pack
from tests.conftest import shared_fixture

NEWEST = shared_fixture("phoenix-vm-newest")


def _bundle(config_dir: Path, name: str, environment: str) -> Bundle:
    bundle, why = stacks.stack_bundle(config_dir, DockerStack(name=name, environment=environment))
    assert why is None and bundle is not None
    return bundle


def test_the_manifests_labels_become_an_override_and_its_variables_an_env_file() -> None:
    bundle = _bundle(NEWEST, "qdrant_service", "production")
    assert bundle.name == "stack-qdrant_service" and bundle.script_name == "stack_deploy.sh"
    assert set(bundle.files) == {
        "stack/docker-compose.yml",
        "stack/phoenix.json",
        "phoenix.env",
        "phoenix-override.yml",
    }
    assert bundle.files["phoenix.env"] == b""
    override = bundle.files["phoenix-override.yml"].decode()
    assert '"traefik.http.services.qdrant.loadbalancer.server.port=6333"' in override
    assert bundle.env == {
        "PHOENIX_STACK": "qdrant_service",
        "PHOENIX_STACK_PROJECT": "qdrant_service",
    }


def test_the_env_file_of_the_environment_then_the_manifests_variables_win(tmp_path: Path) -> None:
    shutil.copytree(NEWEST / "stacks", tmp_path / "stacks")
    dev = _bundle(tmp_path, "thinkheads_ai_app", "development")
    assert dev.files["phoenix.env"] == b"API_PORT=8001\nDATABASE_USER=dev_user\n"
    assert "phoenix-override.yml" not in dev.files
    (tmp_path / "stacks/thinkheads_ai_app/configs/production.env").write_text(
        "# comment\n\nAPI_PORT=1\nexport EXTRA=x=y\n"
    )
    prod = _bundle(tmp_path, "thinkheads_ai_app", "production")
    assert prod.files["phoenix.env"] == b"API_PORT=8000\nEXTRA=x=y\n"


def test_the_digest_follows_every_file_and_the_environment(tmp_path: Path) -> None:
    shutil.copytree(NEWEST / "stacks", tmp_path / "stacks")
    first = _bundle(tmp_path, "thinkheads_ai_app", "development").digest
    assert _bundle(tmp_path, "thinkheads_ai_app", "development").digest == first
    (tmp_path / "stacks/thinkheads_ai_app/configs/development.env").write_text("API_PORT=9\n")
    assert _bundle(tmp_path, "thinkheads_ai_app", "development").digest != first


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda d: (d / "docker-compose.yml").unlink(),
            "no compose file: {d}/docker-compose.yml not found",
        ),
        (lambda d: (d / "phoenix.json").write_text("{"), "{d}/phoenix.json: not readable JSON"),
        (
            lambda d: (d / "phoenix.json").write_text(
                '{"environments": {"development": {"variables": [{"name": "1X", "value": "v"}]}}}'
            ),
            "{d}/phoenix.json: environments.development.variables[0].name: '1X' is not a variable name",
        ),
        (
            lambda d: (d / "configs/development.env").write_text("NOEQUALS\n"),
            "{d}/configs/development.env:1: not KEY=VALUE",
        ),
        (
            lambda d: (d / "link").symlink_to("/etc/hostname"),
            "{d}/link: a link out of the stack's folder",
        ),
    ],
)
def test_a_broken_stack_folder_is_one_line_naming_the_path(
    tmp_path: Path, setup: object, message: str
) -> None:
    shutil.copytree(NEWEST / "stacks", tmp_path / "stacks")
    folder = tmp_path / "stacks" / "thinkheads_ai_app"
    setup(folder)  # type: ignore[operator]
    bundle, why = stacks.stack_bundle(
        tmp_path, DockerStack(name="thinkheads_ai_app", environment="development")
    )
    assert bundle is None and why is not None and "\n" not in why
    assert why.startswith(message.format(d=folder))


def _unpack(bundle: Bundle, into: Path) -> None:
    data = pack(bundle)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        # Debian 12's Python (3.11.2) has no extraction filters: the fresh-host run failed.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # our own bundle, into a temp dir


def _fake_bin(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_the_deploy_script_swaps_the_folder_in_and_runs_compose_up(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _unpack(_bundle(NEWEST, "qdrant_service", "production"), run)
    log = tmp_path / "docker.log"
    _fake_bin(tmp_path / "bin", "docker", f'echo "$PWD $*" >> {log}\n')
    root = tmp_path / "stacks"
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "PHOENIX_STACK": "qdrant_service",
        "PHOENIX_STACK_PROJECT": "qdrant_service",
        "PHOENIX_STACKS_ROOT": str(root),
    }
    for _ in range(2):  # a second deploy replaces the folder in place
        done = subprocess.run(
            ["sh", "./stack_deploy.sh"], cwd=run, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    target = root / "qdrant_service"
    assert sorted(p.name for p in target.iterdir()) == [
        ".phoenix-override.yml",
        ".phoenix.env",
        "docker-compose.yml",
        "phoenix.json",
    ]
    assert not (root / "qdrant_service.old").exists() and not (root / "qdrant_service.new").exists()
    flags = (
        "-p qdrant_service --env-file .phoenix.env -f docker-compose.yml -f .phoenix-override.yml"
    )
    calls = log.read_text().splitlines()
    assert f"{target} compose {flags} up -d --remove-orphans" in calls
    assert f"{target} compose {flags} ps" in calls


def test_the_deploy_script_refuses_a_vm_without_docker(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _unpack(_bundle(NEWEST, "qdrant_service", "production"), run)
    env = {
        "PATH": "/nonexistent",
        "PHOENIX_STACK": "qdrant_service",
        "PHOENIX_STACK_PROJECT": "qdrant_service",
        "PHOENIX_STACKS_ROOT": str(tmp_path / "stacks"),
    }
    done = subprocess.run(
        ["/bin/sh", "./stack_deploy.sh"], cwd=run, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "docker is not installed in this VM (feature docker first)" in done.stderr


def test_nfs_volumes_render_an_fstab_block_with_escapes() -> None:
    volume = VmVolume(
        type="nfs", name="v", server="10.0.0.13", path="/srv/a b", mount_point="/mnt/x#1"
    )
    assert vmvolumes.render_fstab([volume]) == (
        "10.0.0.13:/srv/a\\040b /mnt/x\\0431 nfs defaults,_netdev,nofail 0 0\n"
    )
    bundle = vmvolumes.volumes_bundle([volume])
    assert bundle is not None and bundle.files["volumes.list"] == b"10.0.0.13:/srv/a b\t/mnt/x#1\n"
    assert vmvolumes.volumes_bundle([]) is None

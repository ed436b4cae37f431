"""The nvidia feature's refusals, run by a real `sh` on the H200 host's
/proc/driver/nvidia/version (open kernel module 580.159.04)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from phoenix.inventory import load_inventory
from phoenix.plan.planner import guest_entry
from phoenix.recipes.features import feature_bundle
from phoenix.recipes.registry import builtin_scripts_dir
from tests.conftest import shared_fixture

SCRIPT = builtin_scripts_dir() / "feature_nvidia.sh"
PROC = Path(__file__).parents[2] / "fixtures" / "nvidia-h200" / "proc-driver-nvidia-version.txt"
URL = "https://us.download.nvidia.com/XFree86/Linux-x86_64/{v}/NVIDIA-Linux-x86_64-{v}.run"


def run(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PHOENIX_NVIDIA_ROOT": str(root)}
    base.setdefault("PHOENIX_NVIDIA_PROC_VERSION", str(PROC))
    return subprocess.run(
        ["sh", str(SCRIPT)], env=base | env, capture_output=True, text=True, check=False
    )


def test_a_runfile_of_another_version_is_refused_naming_both(tmp_path: Path) -> None:
    done = run(tmp_path, PHOENIX_NVIDIA_RUNFILE_URL=URL.format(v="580.76.05"))
    assert done.returncode == 2
    assert "580.76.05" in done.stderr and "580.159.04" in done.stderr
    assert not (tmp_path / "var/cache/phoenix").exists()  # refused before downloading


def test_a_host_other_than_the_inventory_expects_is_refused(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        PHOENIX_NVIDIA_RUNFILE_URL=URL.format(v="580.159.04"),
        PHOENIX_NVIDIA_DRIVER_VERSION="580.76.05",
    )
    assert done.returncode == 2
    assert "host runs NVIDIA kernel module 580.159.04" in done.stderr
    assert "nvidia_driver_version says 580.76.05" in done.stderr


def test_no_kernel_module_visible_says_what_to_check(tmp_path: Path) -> None:
    done = run(tmp_path, PHOENIX_NVIDIA_PROC_VERSION=str(tmp_path / "absent"))
    assert done.returncode == 2 and "gpu_assignment" in done.stderr


def test_installed_means_the_same_version_not_just_present(tmp_path: Path) -> None:
    lib = tmp_path / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libnvidia-ml.so.580.159.04").write_text("")
    stamp = tmp_path / "var/lib/phoenix/nvidia-userspace-version"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("580.159.04")
    done = run(tmp_path, PHOENIX_NVIDIA_RUNFILE_URL=URL.format(v="580.159.04"))
    assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
    # Another version recorded: not installed, so it would download (no network: fails).
    stamp.write_text("575.57.08")
    done = run(
        tmp_path, PHOENIX_NVIDIA_RUNFILE_URL="http://127.0.0.1:9/NVIDIA-Linux-x86_64-580.159.04.run"
    )
    assert done.returncode != 0 and "downloading" in done.stdout


def test_the_bundle_takes_the_top_level_runfile_and_a_guests_override() -> None:
    inventory = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    entry = guest_entry(inventory.guests[901])
    bundle, why = feature_bundle(inventory, "nvidia", entry)
    assert why is None and bundle is not None
    assert bundle.env["PHOENIX_NVIDIA_RUNFILE_URL"].endswith("NVIDIA-Linux-x86_64-580.76.05.run")
    assert bundle.env["PHOENIX_NVIDIA_DRIVER_VERSION"] == "580.76.05"
    own = URL.format(v="580.159.04")
    bundle, _ = feature_bundle(inventory, "nvidia", {**entry, "nvidia_runfile_url": own})
    assert bundle is not None and bundle.env["PHOENIX_NVIDIA_RUNFILE_URL"] == own

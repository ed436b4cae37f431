"""What a user waits for: the real `phoenix` CLI, run as a subprocess, on synthetic
inventories of many small guests (one template, the rest clones; every tenth with an
application, every fifth depending on its predecessor).

Prints the median wall time of each command over a few runs, interleaved (so machine noise
hits every row alike), its median CPU time (user + system, which a machine busy with other
work inflates far less), the time per guest, and how each compares with its target:

    --help < 0.3 s;  validate of 10,000 guests < 1 s;  plan --offline < 2 s;
    the Proxmox command preview (plan --offline --commands) < 3 s and linear.

    python bench/cli_bench.py [--sizes 1000 10000] [--repeat 3] [--only validate plan]
                              [--baseline OTHER/src]

--baseline runs every command a second time with another checkout's `src` first on the
path (`git archive COMMIT src | tar -x -C DIR`), in the same interleaved rounds: a before
and after measured side by side, under the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHOENIX = [str(Path(sys.executable).parent / "phoenix")]
COMMANDS = ("help", "validate", "plan", "preview")


def write_inventory(config_dir: Path, n: int) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "scripts").mkdir()
    (config_dir / "scripts" / "app.sh").write_text("#!/bin/sh\ntrue\n")
    hyp = {
        "phoenix": {
            "driver": "lxc",
            "state_dir": str(config_dir.parent / "state"),
            "lxc_path": str(config_dir.parent / "lxc"),
            "template_cache": str(config_dir.parent / "cache"),
        }
    }
    (config_dir / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
    guests: dict[str, Any] = {}
    for i in range(n):
        ctid = 1000 + i
        guest: dict[str, Any] = {
            "name": f"bench-{i}",
            "memory_mb": 512,
            "cores": 1,
            "storage_pool": "local-lvm",
            "storage_size_gb": 8,
            "network_config": {
                "name": "eth0",
                "bridge": "vmbr0",
                "ip": f"10.200.{i // 250}.{i % 250 + 2}/16",
                "gw": "10.200.255.254",
            },
            "features": ["base_setup"],
        }
        if i == 0:
            guest.update(
                template="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                template_snapshot_name="golden",
            )
        else:
            guest["clone_from_ctid"] = 1000
            if i % 10 == 0:
                guest["application_script"] = "app.sh"
            if i % 5 == 0:
                guest["dependencies"] = [str(ctid - 1)]
        guests[str(ctid)] = guest
    lxc = {"lxc_configs": guests}
    (config_dir / "phoenix_lxc_configs.json").write_text(json.dumps(lxc))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system: what a busy machine does not inflate) and
    the exit code of one run."""
    cpu = _children_cpu()
    start = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    return time.perf_counter() - start, _children_cpu() - cpu, res.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--baseline", type=Path, help="another checkout's src dir to compare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="phoenix-cli-bench-") as tmp:
        rows: dict[str, tuple[list[str], float | None, int]] = {}
        if "help" in args.only:
            rows["--help"] = ([*PHOENIX, "--help"], 0.3, 0)
        for n in args.sizes:
            etc = Path(tmp) / f"n{n}" / "etc"
            write_inventory(etc, n)
            c = ["-c", str(etc)]
            big = n >= 10000
            if "validate" in args.only:
                rows[f"validate ({n:,})"] = ([*PHOENIX, *c, "validate"], 1.0 if big else None, n)
            if "plan" in args.only:
                rows[f"plan --offline ({n:,})"] = (
                    [*PHOENIX, *c, "plan", "--offline"],
                    2.0 if big else None,
                    n,
                )
            if "preview" in args.only:
                rows[f"proxmox preview ({n:,})"] = (
                    [*PHOENIX, *c, "--driver", "proxmox", "plan", "--offline", "--commands"],
                    3.0 if big else None,
                    n,
                )
        runs: dict[str, tuple[list[str], dict[str, str] | None]] = {
            name: (argv, None) for name, (argv, _, _) in rows.items()
        }
        if args.baseline is not None:
            env = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}
            module = [sys.executable, "-m", "phoenix"]
            for name, (argv, _, n) in list(rows.items()):
                runs[f"{name} [baseline]"] = ([*module, *argv[1:]], env)
                rows[f"{name} [baseline]"] = (argv, None, n)
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        codes: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, (argv, run_env) in runs.items():
                seconds, cpu, code = timed(argv, run_env)
                times[name].append(seconds)
                cpus[name].append(cpu)
                codes[name] = code
        print(f"{'command':45} {'median':>9} {'cpu':>7} {'per guest':>11} {'target':>8}  verdict")
        for name in sorted(rows, key=lambda k: (k.removesuffix(" [baseline]"), k)):
            _, target, n = rows[name]
            med = statistics.median(times[name])
            per = f"{med / n * 1e3:.2f} ms" if n else ""
            tgt = f"< {target:g} s" if target else ""
            verdict = "" if target is None else ("met" if med < target else "not met")
            if codes[name] != 0:
                verdict += f" (exit {codes[name]})"
            cpu = statistics.median(cpus[name])
            print(f"{name:45} {med:8.2f}s {cpu:6.2f}s {per:>11} {tgt:>8}  {verdict}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Mutation testing of the modules whose rules matter: how many small changes to their
code (a flipped condition, a changed constant, a dropped argument) the fast tests catch.

Runs mutmut (docs/testing.md says why that tool) once per module, in its own scratch
folder under .mutation/, against only the unit tests of that module's area, niced, and
prints the score per module: killed / (killed + survived + no tests + timeouts counted
as killed, as mutmut does). The survivors are listed in .mutation/full/<module>/survivors.txt
(`mutmut show NAME` in that folder prints each one's diff).

    .venv/bin/python scripts/mutation.py                  # every module (long: hours here)
    .venv/bin/python scripts/mutation.py gateway/keys     # one module
    .venv/bin/python scripts/mutation.py --sample 24 --seed 7 --min-score 50
                       # a fixed seeded sample (CI: ./run-tests), fails under the score

Limits: only code run in the test process is mutated (tests that run `phoenix` in a
subprocess, or njs, see the original); the e2e suite is not used (it needs root and
takes many minutes per mutant)."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
# module (under src/phoenix) -> the unit tests of its area, run against each mutant
MODULES: dict[str, list[str]] = {
    "gateway/keys.py": ["tests/unit/gateway"],
    "gateway/routes.py": ["tests/unit/gateway"],
    "gateway/tls.py": ["tests/unit/gateway"],
    "gateway/api_site.py": ["tests/unit/gateway"],
    "gateway/render.py": ["tests/unit/gateway"],
    "plan/planner.py": ["tests/unit/plan"],
    "plan/journal.py": ["tests/unit/plan", "tests/unit/test_parse_errors.py"],
    "plan/run.py": ["tests/unit/plan"],
    "plan/executor.py": ["tests/unit/plan"],
    "plan/desired.py": ["tests/unit/inventory/test_desired.py", "tests/unit/plan"],
    "drivers/base.py": [
        "tests/unit/plan",
        "tests/unit/lxc",
        "tests/unit/inventory/test_desired.py",
    ],
    "drivers/lxc/firewall.py": ["tests/unit/lxc"],
    "drivers/lxc/config.py": ["tests/unit/lxc", "tests/unit/test_parse_errors.py"],
    "drivers/proxmox/commands.py": ["tests/unit/proxmox"],
    "drivers/proxmox/configure.py": ["tests/unit/proxmox"],
    "drivers/proxmox/firewall.py": ["tests/unit/proxmox"],
    "inventory/checks/*": ["tests/unit/inventory"],
    "files.py": ["tests/unit/test_files.py", "tests/unit/test_parse_errors.py"],
}
# What the tests read beside the code (copied into mutmut's mutants/ folder).
ALSO = ["examples", "README.md", "docs", "scripts", "bench", "demo", "run-tests", ".ci"]


@dataclass
class Score:
    module: str
    killed: int = 0
    survived: int = 0
    no_tests: int = 0
    timeout: int = 0
    other: int = 0
    survivors: tuple[str, ...] = ()

    @property
    def tested(self) -> int:
        return self.killed + self.survived + self.no_tests + self.timeout

    @property
    def percent(self) -> float:
        return 100.0 * (self.killed + self.timeout) / self.tested if self.tested else 100.0


def slug(module: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", module.removesuffix(".py").removesuffix("*")).strip("_")


def files_of(module: str) -> list[Path]:
    base = ROOT / "src" / "phoenix"
    if module.endswith("*"):
        return sorted(p for p in (base / module[:-1]).glob("*.py") if p.name != "__init__.py")
    return [base / module]


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)


def mutant_names(module: str) -> list[str]:
    """Every mutant mutmut makes of the module (its own generator, run here)."""
    from mutmut.mutation.file_mutation import mutate_file_contents

    names = []
    for path in files_of(module):
        mutated = mutate_file_contents(str(path), path.read_text())
        names += [f"{dotted(path)}.{n}" for n in mutated.mutant_names]
    return names


def prepare(module: str, tests: list[str], sampled: bool) -> Path:
    """A scratch project for one module: links to the repository, its own mutmut config
    (a sample gets its own, so it never disturbs a full run of the module)."""
    work = WORK / ("sample" if sampled else "full") / slug(module)
    work.mkdir(parents=True, exist_ok=True)
    for name in ["src", "tests", *ALSO]:
        link = work / name
        if not link.exists() and not link.is_symlink() and (ROOT / name).exists():
            link.symlink_to(ROOT / name)
    config = (ROOT / "pyproject.toml").read_text()
    only = [str(p.relative_to(ROOT)) for p in files_of(module)]
    config += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/phoenix"]\n'
        f"only_mutate = {json.dumps(only)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-m", "not e2e"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"also_copy = {json.dumps([a for a in ALSO if (ROOT / a).exists()])}\n"
    )
    (work / "pyproject.toml").write_text(config)
    return work


def run(module: str, names: list[str] | None, children: int) -> Score:
    work = prepare(module, MODULES[module], names is not None)
    shutil.rmtree(work / "mutants", ignore_errors=True)  # always the current code
    mutmut = Path(sys.executable).with_name("mutmut")
    argv = ["nice", "-n", "19", str(mutmut), "run", "--max-children", str(children)]
    log = work / "mutmut.log"
    with log.open("w") as out:
        done = subprocess.run(
            [*argv, *(names or [])], cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed on {module} (log: {log}):\n{tail}")
    return score(module, work, names)


def score(module: str, work: Path, names: list[str] | None) -> Score:
    from mutmut.stats import status_by_exit_code

    result = Score(module)
    survivors = []
    for path in files_of(module):
        meta = work / "mutants" / path.relative_to(ROOT).with_name(path.name + ".meta")
        if not meta.exists():
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if names is not None and name not in names:
                continue
            status = "not checked" if code is None else status_by_exit_code[code]
            if status == "killed":
                result.killed += 1
            elif status == "survived":
                result.survived += 1
                survivors.append(name)
            elif status == "no tests":
                result.no_tests += 1
                survivors.append(name)
            elif status == "timeout":
                result.timeout += 1
            else:
                result.other += 1
    result.survivors = tuple(sorted(survivors))
    (work / "survivors.txt").write_text("".join(f"{n}\n" for n in result.survivors))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="e.g. gateway/keys (default: all)")
    parser.add_argument("--sample", type=int, help="test only this many mutants, chosen by seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--min-score", type=float, help="exit 1 when the total is below this %%")
    args = parser.parse_args()
    chosen = []
    for wanted in args.modules or list(MODULES):
        match = [m for m in MODULES if m.removesuffix(".py") == wanted.removesuffix(".py")]
        if not match:
            parser.error(f"unknown module {wanted!r}; one of: {', '.join(MODULES)}")
        chosen += match
    plan: dict[str, list[str] | None] = {m: None for m in chosen}
    if args.sample:
        every = [(m, n) for m in chosen for n in mutant_names(m)]
        picked = random.Random(args.seed).sample(every, min(args.sample, len(every)))
        plan = {m: [n for pm, n in picked if pm == m] for m in chosen}
        plan = {m: names for m, names in plan.items() if names}
        print(f"sample: {len(picked)} of {len(every)} mutants, seed {args.seed}")
    os.environ.pop("PYTEST_ADDOPTS", None)
    scores = []
    print(f"{'module':<32} {'mutants':>7} {'killed':>7} {'survived':>8} {'no test':>7} score")
    for module, names in plan.items():
        s = run(module, names, args.children)
        scores.append(s)
        print(
            f"{module:<32} {s.tested:>7} {s.killed + s.timeout:>7} {s.survived:>8} "
            f"{s.no_tests:>7} {s.percent:5.1f}%",
            flush=True,
        )
    total = Score("total")
    for s in scores:
        total.killed += s.killed + s.timeout
        total.survived += s.survived
        total.no_tests += s.no_tests
    print(
        f"{'total':<32} {total.tested:>7} {total.killed:>7} {total.survived:>8} "
        f"{total.no_tests:>7} {total.percent:5.1f}%"
    )
    if args.min_score is not None and total.percent < args.min_score:
        print(f"mutation score {total.percent:.1f}% is under {args.min_score}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

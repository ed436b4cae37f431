#!/usr/bin/env python3
"""Mutation testing of the modules whose rules matter: how many small changes to their
code (a flipped condition, a changed constant, a dropped argument) the fast tests catch.

Runs mutmut (docs/testing.md says why that tool), niced, in a scratch folder under
.mutation/. A full run offers a module's mutants every fast test (mutmut runs each against
only the tests that called the mutated function) and keeps its folder, so the next run
reuses which tests reach which function; a sample offers only the tests of the module's
area, so CI stays quick. Prints the score per module: killed / (killed + survived + no
tests), timeouts counted as killed as mutmut does, and so is a mutant `mypy --strict`
rejects (CI runs it: such a change cannot land), and mutants listed in
scripts/mutation-equivalents.toml (no test can tell them from the original, for the
reason given there) left out. The survivors, each with its diff, are written to
.mutation/full/<module>.survivors.txt (a sample's under .mutation/sample/).

    .venv/bin/python scripts/mutation.py                  # every module (long: hours here)
    .venv/bin/python scripts/mutation.py gateway/keys     # one module
    .venv/bin/python scripts/mutation.py --survivors gateway/keys   # its survivors again
    .venv/bin/python scripts/mutation.py --rescore        # the last results, run nothing
    .venv/bin/python scripts/mutation.py --sample 24 --seed 7 --min-score 50
                       # a fixed seeded sample (CI: ./run-tests), fails under the score
    .venv/bin/python scripts/mutation.py --each 40 --seed 1 plan/run
                       # 40 mutants of each module, seeded, against every fast test

Limits: only code run in the test process is mutated (tests that run `phoenix` in a
subprocess, or njs, see the original); the e2e suite is not used (it needs root and
takes many minutes per mutant)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "scripts" / "mutation-equivalents.toml"
FAST_TESTS = ["tests/unit"]
# Tests that read the source as text, which mutmut rewrites (a trampoline per function).
NOT_ON_MUTANTS = [
    "tests/unit/test_dead_code.py",
    "tests/unit/test_mutation_equivalents.py",  # mutates the mutants again
]
# module (under src/phoenix) -> the unit tests of its area, offered to a sample's mutants
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
    equivalent: int = 0
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


PYTEST_ARGS = [
    *("-p", "no:cacheprovider", "-q", "-x", "-m", "not e2e"),
    *(f"--ignore={t}" for t in NOT_ON_MUTANTS),
]


def prepare(work: Path, modules: list[str], tests: list[str]) -> None:
    """A scratch project: links to the repository and a mutmut config that mutates the
    modules' files and offers their mutants `tests`."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ["src", "tests", *ALSO]:
        link = work / name
        if not link.exists() and not link.is_symlink() and (ROOT / name).exists():
            link.symlink_to(ROOT / name)
    config = (ROOT / "pyproject.toml").read_text()
    only = [str(p.relative_to(ROOT)) for m in modules for p in files_of(m)]
    config += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/phoenix"]\n'
        f"only_mutate = {json.dumps(only)}\n"
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"also_copy = {json.dumps([a for a in ALSO if (ROOT / a).exists()])}\n"
    )
    (work / "pyproject.toml").write_text(config)


def mutmut(work: Path, names: list[str], children: int) -> None:
    """Run mutmut on the named mutants (fnmatch patterns) in `work`."""
    exe = Path(sys.executable).with_name("mutmut")
    argv = ["nice", "-n", "19", str(exe), "run", "--max-children", str(children), *names]
    log = work / "mutmut.log"
    with log.open("w") as out:
        done = subprocess.run(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed in {work} (log: {log}):\n{tail}")


def each_sample(module: str, size: int, seed: int) -> list[str]:
    """`size` of the module's mutants, the same ones for the same seed and code (all of
    them when it has fewer)."""
    every = mutant_names(module)
    return sorted(random.Random(f"{seed}:{module}").sample(every, min(size, len(every))))


def run_full(
    module: str, children: int, survivors_only: bool, each: int | None = None, seed: int = 0
) -> Score:
    """Every mutant of the module (or only the last run's survivors, or a seeded sample of
    `each` of them) against every fast test. One scratch project serves all modules and
    is kept between runs: mutmut then reuses which tests reach which function, and runs
    only new tests to learn theirs."""
    work = WORK / "full"
    prepare(work, list(MODULES), FAST_TESTS)
    # mutmut copies the source once and keeps its copy: fresh each run, so assets such as
    # the njs files are current (its map of tests, mutmut-stats.json, is kept)
    shutil.rmtree(work / "mutants" / "src", ignore_errors=True)
    names = [f"{dotted(p)}.*" for p in files_of(module)]
    if each:
        names = each_sample(module, each, seed)
    before: dict[str, list[str]] = {}
    if survivors_only:
        before = json.loads(results_file(module).read_text())
        names = [n for n, (status, _) in before.items() if status in ("survived", "no tests")]
        if not names:
            return tally(module, before)
    mutmut(work, names, children)
    found = before | outcomes(module, work, names)
    results_file(module).write_text(json.dumps(found, indent=1, sort_keys=True))
    return tally(module, found)


def run_sample(plan: dict[str, list[str]], children: int) -> list[Score]:
    """The sampled mutants, each against its module's area tests, from a fresh project."""
    work = WORK / "sample"
    shutil.rmtree(work / "mutants", ignore_errors=True)  # always the current code
    tests = sorted({t for m in plan for t in MODULES[m]})
    prepare(work, list(plan), tests)
    mutmut(work, [n for names in plan.values() for n in names], children)
    return [tally(m, outcomes(m, work, names), work) for m, names in plan.items()]


@dataclass(frozen=True)
class Equivalent:
    """A mutant no test can tell from the original: the line it changes, before and after
    (stripped), in which function of which module, and why the change makes no difference."""

    module: str
    function: str
    was: str
    now: str
    why: str


def equivalents() -> list[Equivalent]:
    data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    return [Equivalent(**entry) for entry in data.get("equivalent", [])]


def change_of(diff: str) -> tuple[str, str]:
    """The lines a mutant's diff removes and adds, stripped and joined."""
    lines = diff.splitlines()[2:]  # past the --- and +++ headers
    was = "\n".join(x[1:].strip() for x in lines if x.startswith("-"))
    now = "\n".join(x[1:].strip() for x in lines if x.startswith("+"))
    return was, now


def function_of(name: str) -> str:
    """`phoenix.files.x_read_state__mutmut_3` -> read_state; methods keep their class."""
    local = name.rpartition(".")[2].rpartition("__mutmut_")[0]
    return local.removeprefix("x_").removeprefix("x\u01c1").replace("\u01c1", ".")


def outcomes(module: str, work: Path, names: list[str] | None) -> dict[str, list[str]]:
    """What mutmut found of the module's mutants (only `names`, when given): name ->
    [status, diff]; the diff only for a mutant no test killed."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    found = {}
    for path in files_of(module):
        mutated = work / "mutants" / path.relative_to(ROOT)
        meta = mutated.with_name(path.name + ".meta")
        if not meta.exists():
            continue
        source = mutated.read_text()
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if code is None or (names is not None and not any(fnmatch(name, n) for n in names)):
                continue
            status = status_by_exit_code[code]
            diff = ""
            if status in ("survived", "no tests"):
                diff = get_diff_for_mutant(name, source=source, path=path.relative_to(ROOT))
            found[name] = [status, diff]
    if any(status in ("survived", "no tests") for status, _ in found.values()):
        for name in rejected_by_mypy(module, work) & set(found):
            if found[name][0] in ("survived", "no tests"):
                found[name][0] = "caught by type check"
    return found


def rejected_by_mypy(module: str, work: Path) -> set[str]:
    """The module's mutants `mypy --strict` rejects: CI runs it, so such a change could
    never land (mutmut's own type-check filter aborts on the few errors its rewriting
    makes outside the mutants, so the errors are matched to mutants here)."""
    mutants = work / "mutants"
    files = [str(p.relative_to(ROOT)) for p in files_of(module)]
    strict = ["--strict", "--no-warn-unused-ignores", "--explicit-package-bases"]
    argv = [sys.executable, "-m", "mypy", "--output", "json", *strict, *files]
    cache = ["--cache-dir", str(work / "mypy-cache")]
    done = subprocess.run(
        ["nice", "-n", "19", *argv, *cache],
        cwd=mutants,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MYPYPATH": "src"},
    )
    lines: dict[str, set[int]] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            error = json.loads(line)
            lines.setdefault(error["file"], set()).add(error["line"])
    rejected = set()
    for file, bad in lines.items():
        if file not in files:
            continue
        tree = ast.parse((mutants / file).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first, last = node.lineno, node.end_lineno or node.lineno
                mutant = "__mutmut_" in node.name and not node.name.endswith("__mutmut_orig")
                if mutant and any(first <= n <= last for n in bad):
                    rejected.add(f"{dotted(ROOT / file)}.{node.name}")
    return rejected


def tally(module: str, found: dict[str, list[str]], into: Path = WORK / "full") -> Score:
    """The score of the module's outcomes, equivalent mutants left out; the survivors are
    written beside the results, each with its diff."""
    known = [e for e in equivalents() if e.module == module]
    result = Score(module)
    survivors = []
    for name, (status, diff) in sorted(found.items()):
        if status in ("survived", "no tests"):
            was, now = change_of(diff)
            if any((e.function, e.was, e.now) == (function_of(name), was, now) for e in known):
                result.equivalent += 1
                continue
            survivors.append(f"# {name}: {status}\n{diff}\n")
        if status in ("killed", "caught by type check"):
            result.killed += 1
        elif status == "survived":
            result.survived += 1
        elif status == "no tests":
            result.no_tests += 1
        elif status == "timeout":
            result.timeout += 1
        else:
            result.other += 1
    result.survivors = tuple(survivors)
    (into / f"{slug(module)}.survivors.txt").write_text("\n".join(result.survivors))
    return result


def results_file(module: str) -> Path:
    return WORK / "full" / f"{slug(module)}.results.json"


def header() -> str:
    columns = f"{'mutants':>7} {'equiv':>5} {'killed':>7} {'survived':>8} {'no test':>7}"
    return f"{'module':<32} {columns} score"


def row(s: Score) -> str:
    return (
        f"{s.module:<32} {s.tested + s.equivalent:>7} {s.equivalent:>5} {s.killed + s.timeout:>7} "
        f"{s.survived:>8} {s.no_tests:>7} {s.percent:5.1f}%"
    )


def rescore(module: str) -> Score:
    """The last full run's result of a module, scored again (after new equivalents)."""
    if not results_file(module).exists():
        raise SystemExit(f"no full run of {module} to rescore: run it first")
    return tally(module, json.loads(results_file(module).read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="e.g. gateway/keys (default: all)")
    parser.add_argument("--sample", type=int, help="test only this many mutants, chosen by seed")
    parser.add_argument(
        "--each",
        type=int,
        help="test this many mutants of each module, chosen by seed, "
        "against every fast test (a full run's project and survivor files)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--min-score", type=float, help="exit 1 when the total is below this %%")
    parser.add_argument(
        "--rescore", action="store_true", help="score the last full runs again, running nothing"
    )
    parser.add_argument(
        "--survivors", action="store_true", help="run again only the last full run's survivors"
    )
    args = parser.parse_args()
    chosen = []
    for wanted in args.modules or list(MODULES):
        match = [m for m in MODULES if m.removesuffix(".py") == wanted.removesuffix(".py")]
        if not match:
            parser.error(f"unknown module {wanted!r}; one of: {', '.join(MODULES)}")
        chosen += match
    os.environ.pop("PYTEST_ADDOPTS", None)
    # Started in the background (`... &`), SIGINT arrives ignored and the tests of Phoenix's
    # own signal handling would see that instead of Python's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    scores = []
    if args.sample:
        every = [(m, n) for m in chosen for n in mutant_names(m)]
        picked = random.Random(args.seed).sample(every, min(args.sample, len(every)))
        plan = {m: [n for pm, n in picked if pm == m] for m in chosen}
        print(f"sample: {len(picked)} of {len(every)} mutants, seed {args.seed}")
        print(header())
        for s in run_sample({m: names for m, names in plan.items() if names}, args.children):
            scores.append(s)
            print(row(s), flush=True)
    else:
        print(header())
        for module in chosen:
            if args.rescore:
                s = rescore(module)
            else:
                s = run_full(module, args.children, args.survivors, args.each, args.seed)
            scores.append(s)
            print(row(s), flush=True)
    total = Score("total")
    for s in scores:
        total.killed += s.killed + s.timeout
        total.survived += s.survived
        total.no_tests += s.no_tests
        total.equivalent += s.equivalent
    print(row(total))
    if args.min_score is not None and total.percent < args.min_score:
        print(f"mutation score {total.percent:.1f}% is under {args.min_score}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared test helpers: where the fixtures are, building config dirs from parts, and the
no-skip rule: with PHOENIX_FORBID_SKIPS=1 (set by ./run-tests, so CI) a skipped test fails
the run unless ALLOWED_SKIPS below lists it with its reason."""

from __future__ import annotations

import os
import shutil
from fnmatch import fnmatch
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
INVENTORIES = TESTS / "inventories"
FIXTURES = TESTS / "fixtures"


def shared_fixture(name: str) -> Path:
    """A real inventory of the original tool, copied into tests/fixtures (see its README)."""
    path = FIXTURES / name
    assert path.is_dir(), f"fixture {path} missing"
    return path


@pytest.fixture
def minimal_dir(tmp_path: Path) -> Path:
    """A copy of the minimal valid config dir, safe to edit."""
    target = tmp_path / "etc"
    shutil.copytree(INVENTORIES / "valid" / "minimal", target)
    return target


# The one place a skip may be allowed: node-id pattern -> why it cannot run everywhere.
ALLOWED_SKIPS: dict[str, str] = {}

_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skipped.append((report.nodeid, reason))


def unexpected_skips(skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(n, r) for n, r in skipped if not any(fnmatch(n, p) for p in ALLOWED_SKIPS)]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("PHOENIX_FORBID_SKIPS") != "1":
        return
    unexpected = unexpected_skips(_skipped)
    if not unexpected:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep(
            "=", "skipped tests not listed in tests/conftest.py ALLOWED_SKIPS", red=True
        )
        for nodeid, reason in unexpected:
            reporter.write_line(f"{nodeid}: {reason}")
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Mutation testing (scripts/mutation.py) runs each mutant against the tests that called the
# mutated function while mutmut collected its stats. A call made while a module- or
# session-scoped fixture is set up is seen only by the first test that asks for the fixture,
# so a mutant there would be run against that one test and survive the others' checks. While
# mutmut collects stats, what the first user of such a fixture called is credited to every
# test that uses the fixture.
_wide_fixture_hits: dict[tuple[str, str], set[str]] = {}
_wide_fixture_users: dict[tuple[str, str], set[str]] = {}


def _wide_fixtures(item: pytest.Item) -> list[tuple[str, str]]:
    info = getattr(item, "_fixtureinfo", None)
    keys = []
    for name, defs in info.name2fixturedefs.items() if info else []:
        scope = defs[-1].scope
        if scope != "function":
            keys.append((name, item.path.as_posix() if scope in ("module", "class") else ""))
    return keys


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.state import state

    for key in _wide_fixtures(item):
        _wide_fixture_users.setdefault(key, set()).add(item.nodeid.removeprefix("mutants/"))
        if key not in _wide_fixture_hits:  # this test set the fixture up
            _wide_fixture_hits[key] = set(state()._stats)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.state import state

    for key, hits in _wide_fixture_hits.items():
        for function in hits:
            state().tests_by_mangled_function_name[function] |= _wide_fixture_users[key]

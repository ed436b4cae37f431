"""Shared test helpers: where the fixtures are, and building config dirs from parts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
INVENTORIES = TESTS / "inventories"
SHARED_FIXTURES = TESTS.parent.parent / "shared" / "fixtures"


def shared_fixture(name: str) -> Path:
    """A fixture dir from ../shared/fixtures (skips when this checkout has no shared/)."""
    path = SHARED_FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"shared fixture {path} not present")
    return path


@pytest.fixture
def minimal_dir(tmp_path: Path) -> Path:
    """A copy of the minimal valid config dir, safe to edit."""
    target = tmp_path / "etc"
    shutil.copytree(INVENTORIES / "valid" / "minimal", target)
    return target

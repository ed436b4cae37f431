"""Shared test helpers: where the fixtures are, and building config dirs from parts."""

from __future__ import annotations

import shutil
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

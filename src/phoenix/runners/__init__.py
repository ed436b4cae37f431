"""Runners execute argv lists: locally, over SSH, or recorded for tests."""

from phoenix.runners.base import CommandResult, Runner
from phoenix.runners.local import LocalRunner
from phoenix.runners.recorded import RecordedRunner

__all__ = ["CommandResult", "LocalRunner", "RecordedRunner", "Runner"]

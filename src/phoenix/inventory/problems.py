"""A problem found in the config dir: where it is, what is wrong, and how bad."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


def json_path(loc: Sequence[str | int]) -> str:
    """Render a location as `lxc_configs.101.features[0]` (the document root is `$`)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


@dataclass(frozen=True)
class Problem:
    """One line of `phoenix validate` output: `FILE: JSON.PATH: message`."""

    file: str
    path: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}: {self.path}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def errors(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warnings(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "warning"]

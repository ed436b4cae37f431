"""A problem found in the config dir: where it is, what is wrong, and how bad."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


# Bidi embeddings, overrides and isolates: they reorder what a terminal shows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(text: str) -> str | None:
    """The first character of `text` that must not reach a config file, a command line or a
    terminal: C0/C1 controls (so `\\r`, `\\x0b`, `\\x85` too), DEL, U+2028/U+2029, bidi
    controls. Everything `str.splitlines()` splits on is among them."""
    for char in text:
        if char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def shown_text(text: str) -> str:
    """`text` as printed for the operator: JSON-escaped when it holds unsafe characters."""
    if unsafe_character(text) is None:
        return text
    return json.dumps(text)


def json_path(loc: Sequence[str | int]) -> str:
    """Render a location as `lxc_configs.101.features[0]` (the document root is `$`)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + shown_text(str(part))
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

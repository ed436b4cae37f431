"""A problem found in the config dir: where it is, what is wrong, and how bad."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


# Bidi embeddings, overrides and isolates: they reorder what a terminal shows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters that show as nothing: Unicode's format characters (category Cf: zero-width
# space and joiners, LRM/RLM, the soft hyphen, word joiner, invisible operators, the BOM,
# tag characters...) and the other default-ignorable ones (the combining grapheme joiner,
# Hangul fillers, Khmer inherent vowels, variation selectors). Two names that differ only
# by one look the same wherever they are shown. Written as a character class so a string
# is checked in C; it holds Cf as of Unicode 15.1 (a unit test compares it with the
# running Python's `unicodedata`).
_INVISIBLE_CLASS = (
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "\U000e0100-\U000e01ef"
)
_INVISIBLE = re.compile(f"[{_INVISIBLE_CLASS}]")
# The unsafe set as one character class: category Cc is exactly U+0000-U+001F and
# U+007F-U+009F, Zl is U+2028, Zp is U+2029, Cs (lone surrogates, which JSON's "\ud800"
# makes and no UTF-8 can hold) U+D800-U+DFFF (fixed by Unicode's stability policy).
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff{_INVISIBLE_CLASS}]")


def is_invisible(char: str) -> bool:
    """True for a character that shows as nothing (and is no bidi control)."""
    return char not in _BIDI and _INVISIBLE.fullmatch(char) is not None


def unsafe_character(text: str) -> str | None:
    """The first character of `text` that must not reach a config file, a command line or a
    terminal: C0/C1 controls (so `\\r`, `\\x0b`, `\\x85` too), DEL, U+2028/U+2029, bidi
    controls, invisible characters and lone surrogates. Everything `str.splitlines()`
    splits on is among them."""
    found = _UNSAFE.search(text)
    return None if found is None else found.group()


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


def lxc_at(ctid: int, *rest: str | int) -> str:
    """The path of a key of guest `ctid` in the LXC file: `lxc_configs.101.network_config`."""
    return json_path(["lxc_configs", str(ctid), *rest])


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

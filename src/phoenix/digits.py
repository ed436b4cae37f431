"""Reading numbers out of text that the host, a node or a user wrote, strictly.

`str.isdigit()` is true for "\u00b2" (superscript two), "\u0661" (Arabic-Indic one) and
"\uff11" (full-width one), and `int()` then either raises ("\u00b2") or reads a number nobody
typed ("\u0661" is 1): every parser that
checks digits before `int()` goes through here, so ASCII digits are the only digits.
"""

from __future__ import annotations

import re

_UNSIGNED = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")


def is_digits(text: str) -> bool:
    """True when `text` is one or more ASCII digits and nothing else."""
    return _UNSIGNED.fullmatch(text) is not None


def sint(text: str) -> int | None:
    """`text` as an integer with an optional leading '-', or None when it is not one."""
    return int(text) if _SIGNED.fullmatch(text) is not None else None

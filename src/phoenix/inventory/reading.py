"""Reading one JSON file of the config dir into plain data, with what is wrong in it: a
missing, oversized or non-UTF-8 file, a syntax error (line and column), a repeated key
(its lines), a string with a control character."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phoenix.inventory.core import LXC_FILE
from phoenix.inventory.jsonfile import (
    MAX_FILE_BYTES,
    DuplicateKey,
    JsonFileError,
    parse_json,
    read_regular_file,
)
from phoenix.inventory.problems import Problem, is_invisible, json_path, unsafe_character


def _lines(numbers: Sequence[int]) -> str:
    shown = [str(n) for n in numbers]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _duplicate_problem(shown: str, dup: DuplicateKey) -> Problem:
    """A repeated key: jq and Python's json use the last value, so it is a warning, except
    inside a guest's definition when the values differ (which one was meant is a guess)."""
    where = json_path([*dup.path, dup.key])
    lines = _lines(dup.lines)
    in_guest = shown == LXC_FILE and dup.path[:1] == ("lxc_configs",)
    if in_guest and dup.values_differ and dup.path == ("lxc_configs",):
        return Problem(
            shown,
            where,
            f"duplicate key {dup.key!r} at lines {lines} with different values: CTID "
            f"{dup.key} names one container in the whole Proxmox cluster, whichever node it "
            "is on; keep the one you mean or give the other a free id",
        )
    if in_guest and dup.values_differ:
        return Problem(
            shown,
            where,
            f"duplicate key {dup.key!r} at lines {lines} with different values: "
            "keep the one you mean",
        )
    same = " (the same value each time)" if not dup.values_differ else ""
    return Problem(
        shown,
        where,
        f"key {dup.key!r} appears at lines {lines}{same}; the value at line {dup.lines[-1]} "
        "is used, as the original tool's jq did",
        "warning",
    )


def read_json(path: Path, shown: str) -> tuple[Any, list[Problem]]:
    """Parse one JSON file (a regular file, bounded); problems name the line and column of a
    syntax error, and the lines of a repeated key."""
    data, problems, _ = read_document(path, shown)
    return data, problems


def read_document(path: Path, shown: str) -> tuple[Any, list[Problem], str]:
    """`read_json`, also returning the text parsed ("" when none was)."""
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None, [Problem(shown, "$", f"file not found: {path}")], ""
    except JsonFileError as exc:
        return None, [Problem(shown, "$", str(exc))], ""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, "$", f"not UTF-8 text (byte {exc.start})")], ""
    if not text.strip():
        return None, [Problem(shown, "$", "file is empty; expected a JSON object")], ""
    try:
        data, duplicates = parse_json(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return None, [Problem(shown, "$", message)], ""
    except JsonFileError as exc:
        return None, [Problem(shown, "$", str(exc))], ""
    if not isinstance(data, dict):
        return None, [Problem(shown, "$", f"expected a JSON object, got {type(data).__name__}")], ""
    return data, [_duplicate_problem(shown, dup) for dup in duplicates], text


# Bytes of an ASCII JSON text that cannot put an unsafe character (`unsafe_character`) into
# a key or string: printable ASCII but the backslash (which may start an escape such as
# "\n"), and the tab, newline and carriage return that the parser accepts only as
# whitespace between tokens. A text of these alone needs no walk.
_HARMLESS_ASCII = bytes(range(0x20, 0x7F)).replace(b"\\", b"") + b"\t\n\r"


def control_characters(data: Any, shown: str, text: str | None = None) -> list[Problem]:
    """Every key and string holding a control character, a line or paragraph separator or a
    bidi override: such text would split a config line, reach a command, or rewrite the
    terminal that shows it. None of the original tool's inventories has one, so the text the
    data was parsed from is looked at first, in C (the walk took a tenth of a second at
    10,000 guests): only a text with a backslash or beyond printable ASCII is walked."""
    if text and text.isascii() and not text.encode("ascii").translate(None, _HARMLESS_ASCII):
        return []
    out: list[Problem] = []

    def walk(node: Any, loc: tuple[str | int, ...]) -> None:
        # A location is built only for containers and for problems: most leaves are fine.
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            bad_key = unsafe_character(key) if isinstance(key, str) else None
            if bad_key is not None:
                out.append(Problem(shown, json_path([*loc, key]), f"key {_said(bad_key)}"))
            if isinstance(item, str):
                bad_value = unsafe_character(item)
                if bad_value is not None:
                    out.append(Problem(shown, json_path([*loc, key]), f"value {_said(bad_value)}"))
            elif isinstance(item, dict | list):
                walk(item, (*loc, key))

    if isinstance(data, dict | list):  # read_json returns an object or None
        walk(data, ())
    return sorted(out, key=lambda p: p.path)


def _said(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return (
            f"contains a lone surrogate U+{ord(char):04X}: half of a character, which no "
            "file, command or terminal can hold"
        )
    if is_invisible(char):
        return (
            f"contains the invisible character U+{ord(char):04X}: text that looks the same "
            "as other text but is not"
        )
    return (
        f"contains the control character U+{ord(char):04X}: inventory text may not hold line "
        "breaks, escape sequences or other control characters"
    )

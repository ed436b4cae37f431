"""Reading one of the config dir's JSON files safely, the way the original tool's `jq` did.

Only regular files are read, and at most `MAX_FILE_BYTES` of them: a FIFO in place of a
config file must not hang `validate`, nor a link to `/dev/zero` read until memory runs out.
A UTF-8 BOM is accepted. Integer literals longer than any inventory value, NaN/Infinity
and nesting deeper than any inventory are refused with a message instead of a traceback.

A key repeated in one object is not fatal (jq and Python's json both keep the last
value); it is returned as a `DuplicateKey` with the line of each occurrence, so the loader
can say which value is used.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import re
import stat
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 100

_WS = re.compile(r"[ \t\n\r]*")


class JsonFileError(Exception):
    """The file cannot be read as an inventory file; `str(exc)` says why, for the operator."""


@dataclass(frozen=True)
class DuplicateKey:
    """`key` appears more than once in the object at `path`; the last value is used."""

    path: tuple[str | int, ...]
    key: str
    lines: tuple[int, ...]
    values: tuple[Any, ...]

    @property
    def values_differ(self) -> bool:
        return any(v != self.values[-1] for v in self.values[:-1])


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit` bytes.

    Opened without blocking (a FIFO would otherwise wait for a writer forever), checked on
    the open descriptor (no race with a swap), and read no further than the limit (a file
    that grows, or a link to a device, cannot exhaust memory).
    Raises FileNotFoundError when it does not exist, JsonFileError for anything else.
    """
    try:
        _check_regular(path, os.stat(path).st_mode)  # before opening: some devices act on open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise JsonFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        _check_regular(path, info.st_mode)  # again on what was opened: no race with a swap
        if info.st_size > limit:
            raise JsonFileError(f"file is {info.st_size} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise JsonFileError(f"file is larger than the limit of {limit} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise JsonFileError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _check_regular(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise JsonFileError(f"{path} is a directory, expected a JSON file")
    if not stat.S_ISREG(mode):
        raise JsonFileError(
            f"{path} is not a regular file (a FIFO, device or socket); expected a JSON file"
        )


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JsonFileError(
            f"an integer with {digits} digits; no inventory value needs more than {MAX_INT_DIGITS}"
        )
    return int(text)


def _parse_constant(text: str) -> Any:
    raise JsonFileError(f"{text} is not a JSON value (write a number or a string)")


def _last_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(pairs)


# Every byte but quotes and brackets: deleting them leaves the text's structure.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _text_depth(text: str) -> int | None:
    """The nesting depth of a valid JSON text, read from its brackets outside strings (in C
    but for one step per bracket: walking the parsed document cost a tenth of the parse at
    10,000 guests); None when a string holds an escaped quote (then '"' does not simply
    alternate between outside and inside a string)."""
    if '\\"' in text:
        return None
    structure = text.encode("utf-8", "surrogatepass").translate(None, _NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2])
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _depth(data: Any) -> int:
    """Deepest nesting of objects and lists (level by level: no recursion limit to hit, and
    only containers are visited, not every string and number)."""
    depth = 0
    level = [data] if isinstance(data, dict | list) else []
    while level:
        depth += 1
        below: list[Any] = []
        for node in level:
            values = node.values() if isinstance(node, dict) else node
            below += [v for v in values if isinstance(v, dict | list)]
        level = below
    return depth


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(
        object_pairs_hook=_last_wins, parse_int=_parse_int, parse_constant=_parse_constant
    )


def parse_json(text: str) -> tuple[Any, list[DuplicateKey]]:
    """Parse `text` (last value wins for a repeated key) and list the repeated keys.

    Raises json.JSONDecodeError for a syntax error, JsonFileError for values no inventory
    has (huge integers, NaN, nesting deeper than MAX_DEPTH).
    """
    repeated = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        out = dict(pairs)
        if len(out) != len(pairs):
            repeated = True
        return out

    try:
        data = json.loads(
            text, object_pairs_hook=hook, parse_int=_parse_int, parse_constant=_parse_constant
        )
    except RecursionError:
        raise JsonFileError(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    depth = _text_depth(text)
    if (depth if depth is not None else _depth(data)) > MAX_DEPTH:
        raise JsonFileError(f"JSON nested more than {MAX_DEPTH} levels deep")
    return data, (_locate_duplicates(text) if repeated else [])


def _locate_duplicates(text: str) -> list[DuplicateKey]:
    """Walk the (valid, shallow) document again, noting the line of every key."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    decoder = _decoder()
    found: list[DuplicateKey] = []

    def line(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    def skip(idx: int) -> int:
        match = _WS.match(text, idx)
        assert match is not None
        return match.end()

    def value(idx: int, path: tuple[str | int, ...]) -> tuple[Any, int]:
        idx = skip(idx)
        if text.startswith("{", idx):
            return members(idx + 1, path)
        if text.startswith("[", idx):
            items: list[Any] = []
            idx = skip(idx + 1)
            if text.startswith("]", idx):
                return items, idx + 1
            while True:
                item, idx = value(idx, (*path, len(items)))
                items.append(item)
                idx = skip(idx)
                if text.startswith("]", idx):
                    return items, idx + 1
                idx += 1  # ","
        return decoder.raw_decode(text, idx)

    def members(idx: int, path: tuple[str | int, ...]) -> tuple[dict[str, Any], int]:
        seen: dict[str, list[tuple[int, Any]]] = {}
        idx = skip(idx)
        if text.startswith("}", idx):
            return {}, idx + 1
        while True:
            idx = skip(idx)
            at = line(idx)
            key, idx = scanstring(text, idx + 1)
            idx = skip(idx) + 1  # ":"
            item, idx = value(idx, (*path, key))
            seen.setdefault(key, []).append((at, item))
            idx = skip(idx)
            if text.startswith("}", idx):
                idx += 1
                break
            idx += 1  # ","
        for key, hits in seen.items():
            if len(hits) > 1:
                lines = tuple(h[0] for h in hits)
                found.append(DuplicateKey(path, key, lines, tuple(h[1] for h in hits)))
        return {k: v[-1][1] for k, v in seen.items()}, idx

    value(0, ())
    return found

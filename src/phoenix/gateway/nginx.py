"""A small typed model of nginx configuration over crossplane's untyped payload.

Configs are built as data (`Directive` trees) and turned into text by crossplane, which
quotes arguments only where needed; hand-written files are parsed back into the same
model, with the file and line of every directive, for lint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane

from phoenix.errors import GatewayError


@dataclass
class Directive:
    """One directive: `name args...;` or `name args... { block }` (block is not None)."""

    name: str
    args: list[str] = field(default_factory=list)
    block: list[Directive] | None = None
    line: int = 0
    file: str = ""

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"directive": self.name, "args": list(self.args)}
        if self.block is not None:
            out["block"] = [d.payload() for d in self.block]
        return out

    def children(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def first_arg(self, name: str) -> str | None:
        for d in self.block or []:
            if d.name == name and d.args:
                return d.args[0]
        return None

    def walk(self) -> Iterator[Directive]:
        yield self
        for child in self.block or []:
            yield from child.walk()


def d(name: str, *args: str | int) -> Directive:
    """A simple directive: d("listen", 80)."""
    return Directive(name, [str(a) for a in args])


def blk(name: str, *args: str | int, body: Sequence[Directive] = ()) -> Directive:
    """A block directive: blk("location", "/", body=[...])."""
    return Directive(name, [str(a) for a in args], list(body))


def build(directives: Sequence[Directive], header: str = "") -> str:
    """Config text for `directives` (one directive per line, 4-space indent)."""
    text = str(crossplane.build([x.payload() for x in directives], indent=4))
    head = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return head + text + "\n"


def _from_payload(items: list[dict[str, Any]], file: str) -> list[Directive]:
    out: list[Directive] = []
    for item in items:
        if item.get("directive") == "#":
            continue
        block = item.get("block")
        out.append(
            Directive(
                str(item["directive"]),
                [str(a) for a in item.get("args", [])],
                _from_payload(block, file) if block is not None else None,
                int(item.get("line", 0)),
                file,
            )
        )
    return out


@dataclass(frozen=True)
class ParseError:
    file: str
    line: int
    message: str


def parse_file(path: Path, shown: str | None = None) -> tuple[list[Directive], list[ParseError]]:
    """Parse one file on its own (includes are not followed), tolerant of unknown
    directives and of context: a site file is a fragment of the `http` block."""
    name = shown or str(path)
    try:
        result = crossplane.parse(
            str(path),
            single=True,
            strict=False,
            check_ctx=False,
            check_args=False,
            comments=False,
        )
    except Exception as exc:  # crossplane raises its own untyped errors
        raise GatewayError(f"{name}: cannot parse: {exc}") from exc
    directives: list[Directive] = []
    errors: list[ParseError] = []
    for config in result.get("config", []):
        directives += _from_payload(config.get("parsed", []), name)
        for err in config.get("errors", []):
            # crossplane reports an unterminated last directive with an empty message.
            message = str(err.get("error") or "") or "unexpected end of file (missing ';' or '}')"
            errors.append(ParseError(name, int(err.get("line") or 0), message))
    return directives, errors

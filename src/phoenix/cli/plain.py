"""Every string a user, a file name or a host gave Phoenix is printed as plain text.

A terminal acts on control characters: ESC starts a sequence that can recolour, move the
cursor, retitle the window or hide what follows; C1 codes (`\\x9b` is CSI) do the same on
many terminals, and bidi controls make text read differently from what it is. Rich acts on
its markup: `[bold]` in a path restyles the line and `[/]` raises. So the CLI's consoles
render every string through `visible` (control characters shown as `\\x1b`-style escapes)
with markup and highlighting off by default; the few lines that style on purpose opt in
with `markup=True` and put user text in them through `lit`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

# Newline and tab lay text out; every other C0 code, DEL, the C1 codes and the bidi
# controls (the "Trojan Source" characters) act on the terminal or the reading order.
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_SHOWN: dict[int, str] = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0), *_BIDI]
    if chr(code) not in "\n\t"
}


def visible(text: object) -> str:
    """`text` with every control character shown as an escape, never acted on."""
    return str(text).translate(_SHOWN)


def lit(text: object) -> str:
    """`text` for a markup string: shown as written, whatever brackets it holds."""
    return escape(visible(text))


class PlainConsole(Console):
    """A Console that shows strings as plain text unless a print asks for markup."""

    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, highlight=False, emoji=False, **options)

    def render_str(self, text: str, **options: Any) -> Text:
        """Every string Rich renders (print arguments, table cells, titles) comes here."""
        return super().render_str(visible(text), **options)

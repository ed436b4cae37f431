"""Help shows flags as flags.

typer 0.29's rich help labels every flag `<bool>` (its own `--help` included), which reads
as if `--json true` were expected; click's plain help shows nothing there. A flag takes no
value, so its type column stays empty. Imported once by the app.
"""

from __future__ import annotations

import typer
from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _flag_aware(self: TyperOption, ctx: typer.Context) -> str | None:
    if self.is_flag:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_aware  # type: ignore[method-assign, assignment]

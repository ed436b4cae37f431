"""Which guest settings may hold a secret, so `phoenix import` neither writes nor prints
their values: an environment variable whose name says so (`API_TOKEN=...`, `DB_PASSWORD`)
in a raw `lxc.environment*` line."""

from __future__ import annotations

import re

# An environment variable whose name says it holds a secret.
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|COOKIE", re.I)
ENV_KEYS = frozenset({"lxc.environment", "lxc.environment.runtime", "lxc.environment.hooks"})


def secret_variable(key: str, value: str) -> str | None:
    """The variable a raw line sets when its value may be a secret, else None."""
    if key not in ENV_KEYS:
        return None
    name = value.partition("=")[0].strip()
    return name if _SECRET_NAME.search(name) else None

"""What `phoenix setup` created on this host, kept in the lab's state dir so that
`--teardown` removes exactly that and nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix.drivers.lxc.hostprep.errors import SetupError
from phoenix.files import make_owned_dir, parse_json, write_atomic

RECORD_FILE = "host-setup.json"


@dataclass
class Record:
    """Bridges and NAT tables Phoenix created, and IPv4 forwarding as it found it."""

    bridges: list[str] = field(default_factory=list)
    nat_tables: list[str] = field(default_factory=list)
    ip_forward_was: str | None = None
    # Older Phoenix kept the subid lines it added here; they now live in the host ledger.
    subid_added: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Record:
        if not path.is_file():
            return cls()
        try:
            text = path.read_text()
        except OSError as exc:
            raise SetupError(f"{path}: unreadable host setup record: {exc}") from None
        data: Any = parse_json(text, str(path))
        if not isinstance(data, dict):
            raise SetupError(f"{path}: not a Phoenix host setup record")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        make_owned_dir(path.parent)
        write_atomic(path, json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")

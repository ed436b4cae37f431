"""Phoenix's share of /etc/subuid and /etc/subgid, added when missing and removed with the
last lab that relies on it.

Unprivileged guests need `root:100000:65536` in both files, and a guest whose `id_maps`
pass host ids through (gid 33 inside is gid 33 on the host) needs those too
(`root:33:1` in /etc/subgid). A line that was there before Phoenix is the operator's and is
never removed. A line Phoenix added may be relied on by
several labs at once (the demo, each test slot), so a host-wide ledger records which lines
Phoenix added and which state dirs use them; tearing down the last user removes the lines,
the ledger, and its directory when that is left empty. Every read-modify-write holds an
exclusive flock on the first subid file, so concurrent labs never lose an update.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.drivers import idmaps
from phoenix.drivers.lxc import idmap
from phoenix.errors import PhoenixError
from phoenix.files import write_atomic

DEFAULT_LEDGER = Path("/var/lib/phoenix/subids.json")
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))
LINE = f"root:{idmap.ID_BASE}:{idmap.ID_COUNT}"
# (kind u|g, first host id, count): a host range a guest's id map uses.
IdRanges = tuple[tuple[idmaps.Kind, int, int], ...]
KINDS: tuple[idmaps.Kind, ...] = ("u", "g")  # of SUBID_FILES, in order


@dataclass
class Ledger:
    """Lines Phoenix added ({file: [line]}) and the state dirs of the labs that use them."""

    added: dict[str, list[str]] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise PhoenixError(f"{path}: unreadable subuid/subgid ledger: {exc}") from exc
        added = {  # one line per file before pass-throughs needed more
            name: [lines] if isinstance(lines, str) else list(lines)
            for name, lines in dict(data.get("added", {})).items()
        }
        return cls(added, list(data.get("users", [])))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"added": self.added, "users": self.users}, indent=2) + "\n")


def without_line(text: str, line: str) -> str:
    """`text` with the first line equal to `line` removed (the others kept as they are)."""
    lines = text.splitlines(keepends=True)
    for i, existing in enumerate(lines):
        if existing.rstrip("\n") == line:
            del lines[i]
            break
    return "".join(lines)


class SubIds:
    """Adds, shares and removes Phoenix's subordinate id lines."""

    def __init__(
        self, files: tuple[Path, ...] = SUBID_FILES, ledger: Path = DEFAULT_LEDGER
    ) -> None:
        self.files = files
        self.ledger_path = ledger

    def missing(self, ranges: IdRanges = ()) -> list[tuple[Path, str]]:
        """(file, line) for each line a file lacks: Phoenix's default range, and each host
        range of `ranges` (the guests' id maps) that root is not given."""
        out: list[tuple[Path, str]] = []
        for path, kind in zip(self.files, KINDS, strict=False):
            text = _read(path)
            if not idmap.has_subids(text):
                out.append((path, LINE))
                text += f"\n{LINE}\n"
            wanted = tuple(
                idmaps.IdRange(kind, 0, host, count) for k, host, count in ranges if k == kind
            )
            for r in idmaps.uncovered(wanted, kind, text):
                line = f"root:{r.host}:{r.count}"
                if (path, line) not in out:
                    out.append((path, line))
        return out

    @contextmanager
    def _locked(self) -> Iterator[Ledger]:
        anchor = self.files[0]
        fd = os.open(anchor, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield Ledger.load(self.ledger_path)
        finally:
            os.close(fd)

    def add(self, state_dir: Path, ranges: IdRanges = ()) -> list[str]:
        """Add each missing line (see `missing`); record this lab as a user. Returns what
        was added, as `FILE: LINE`."""
        done: list[str] = []
        with self._locked() as ledger:
            for path, line in self.missing(ranges):
                text = _read(path)
                sep = "" if not text or text.endswith("\n") else "\n"
                with path.open("a") as fh:
                    fh.write(f"{sep}{line}\n")
                ledger.added.setdefault(str(path), []).append(line)
                done.append(f"{path}: {line}")
            if ledger.added:
                if str(state_dir) not in ledger.users:
                    ledger.users.append(str(state_dir))
                ledger.save(self.ledger_path)
        return done

    def enlist(self, state_dir: Path) -> None:
        """Record this lab as a user of lines Phoenix added earlier (for another lab)."""
        with self._locked() as ledger:
            if ledger.added and str(state_dir) not in ledger.users:
                ledger.users.append(str(state_dir))
                ledger.save(self.ledger_path)

    def adopt(self, state_dir: Path, lines: list[str]) -> None:
        """Take over `FILE:LINE` records of an older Phoenix that kept them per state dir."""
        with self._locked() as ledger:
            for entry in lines:
                name, _, line = entry.partition(":")
                mine = ledger.added.setdefault(name, [])
                if line == LINE and idmap.has_subids(_read(Path(name))) and line not in mine:
                    mine.append(line)
                if not mine:
                    del ledger.added[name]
            if ledger.added:
                if str(state_dir) not in ledger.users:
                    ledger.users.append(str(state_dir))
                ledger.save(self.ledger_path)

    def release(self, state_dir: Path) -> list[str]:
        """This lab no longer needs the lines; the last user removes them. Returns what
        was removed."""
        done: list[str] = []
        with self._locked() as ledger:
            if not self.ledger_path.exists():
                return done
            if str(state_dir) in ledger.users:
                ledger.users.remove(str(state_dir))
            if ledger.users:
                ledger.save(self.ledger_path)
                return done
            for name, lines in ledger.added.items():
                path = Path(name)
                for line in lines:
                    text = _read(path)
                    kept = without_line(text, line)
                    if kept != text:
                        _rewrite(path, kept)
                        done.append(f"{path}: {line}")
            self.ledger_path.unlink()
            with suppress(OSError):  # other Phoenix state lives there
                self.ledger_path.parent.rmdir()
        return done


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _rewrite(path: Path, text: str) -> None:
    """Rewrite in place: /etc/subuid keeps its inode, owner and mode (it is not ours)."""
    with path.open("r+") as fh:
        fh.write(text)
        fh.truncate()

"""Files Phoenix owns on the host: the one way it replaces one (atomically), and JSON
read from a file or a tool (malformed: a ParseError naming it, never a bare ValueError).

A reader, or the next run after a crash, sees the old file or the new one, never half of
one. The new content goes to a fresh temp file in the same directory (`O_EXCL|O_NOFOLLOW`,
so a planted link or file at that name is refused, never followed), carries its final mode
from the first byte (a key is never readable by others, even for a moment), is fsynced,
and is renamed over the target; the directory is fsynced so the rename survives a power
cut. `os.replace` swaps the directory entry: a symlink at the target is replaced, not
followed.

A failure is a `PhoenixError` naming the file, and leaves no temp file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phoenix.errors import ParseError, PhoenixError

DEFAULT_MODE = 0o644


def write_atomic(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Replace `path` with `data` (str is written as UTF-8).

    `mode`: the permission bits of the new file; None keeps those of the regular file it
    replaces (and, when root, its owner), or DEFAULT_MODE for a new file. The umask does
    not apply: the mode asked for is the mode written.
    """
    payload = data.encode() if isinstance(data, str) else data
    try:
        old = os.lstat(path)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise PhoenixError(f"{path}: cannot write: {exc.strerror}") from exc
    keep = old is not None and stat.S_ISREG(old.st_mode)
    if mode is None:
        mode = stat.S_IMODE(old.st_mode) if old is not None and keep else DEFAULT_MODE
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, mode)
            if old is not None and keep and os.geteuid() == 0:
                os.fchown(fd, old.st_uid, old.st_gid)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise PhoenixError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable; a filesystem that cannot fsync a directory
    (some network mounts) is not an error: the write itself succeeded."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def parse_json(text: str, what: str) -> Any:
    """`text` as JSON; `what` names its source in the error (a file, a command)."""
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or a lone surrogate that cannot decode
        raise ParseError(f"{what}: not valid JSON ({exc})") from None


# The file Phoenix leaves in a directory it created itself (the state dir, the LXC path,
# the template cache): teardown removes a directory only when it carries one, so a path
# that existed before Phoenix (`/srv`, a user's folder) is never Phoenix's to delete.
OWNED_MARKER = ".phoenix-owned"


def make_owned_dir(path: Path, mode: int = 0o755) -> Path:
    """Create `path` (with its parents) if it is missing, leaving Phoenix's marker in it;
    an existing directory is used as it is and never gains a marker. Every directory made
    gets `mode` whatever the umask: an unprivileged guest's root passes through the ones
    above its mount sources, and Phoenix opens no directory it did not make."""
    if path.is_dir():
        return path
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=mode)
            except FileExistsError:
                if not directory.is_dir():
                    raise PhoenixError(f"{directory}: exists and is not a directory") from None
                if directory == path:  # made by a concurrent run, which marks it
                    return path
                continue
            directory.chmod(mode)
    except OSError as exc:
        raise PhoenixError(f"{path}: cannot create: {exc.strerror or exc}") from exc
    write_atomic(
        path / OWNED_MARKER, "created by Phoenix; removed with `phoenix setup --teardown`\n"
    )
    return path


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MiB chunks (downloads and archives are large)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def locked_dir(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` for a read-modify-write of a file in it. The
    directory itself is locked (flock on its inode): it stays the same inode while the
    files in it are replaced atomically, and no lock file is left beside the user's."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise PhoenixError(f"{directory}: cannot lock: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# Phoenix's own state files (CA, keys, records, journal) are small: far below this.
MAX_STATE_BYTES = 16 << 20


def trusted_owner(path: Path, info: os.stat_result) -> None:
    """Refuse state that neither root nor the user running Phoenix owns: another user could
    have planted it (a CA of theirs would sign the gateway's certificates)."""
    if info.st_uid not in (0, os.geteuid()):
        raise PhoenixError(
            f"{path}: owned by uid {info.st_uid}, not by root or the user running Phoenix; "
            "Phoenix does not use state another user could have written (remove it, or "
            "chown it if it is yours)"
        )


def read_state(path: Path, limit: int = MAX_STATE_BYTES) -> bytes:
    """The bytes of a state file: a regular file (opened without blocking, so a FIFO never
    hangs), owned by root or the invoking user, read no further than `limit` (a link to
    /dev/zero cannot exhaust memory). FileNotFoundError when missing, else PhoenixError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PhoenixError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PhoenixError(f"{path}: not a regular file; Phoenix reads only files it wrote")
        trusted_owner(path, info)
        data = b""
        while len(data) <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - len(data)))
            if not chunk:
                return data
            data += chunk
        raise PhoenixError(f"{path}: larger than {limit} bytes; not a file Phoenix wrote")
    except OSError as exc:
        raise PhoenixError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)

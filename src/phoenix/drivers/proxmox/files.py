"""Reading and writing node files through a Runner, so the same code works over SSH.

A read is `cat <path>`. A write pipes the new content on stdin to a fixed program whose only
arguments are the path, the SHA-256 of the content Phoenix read (or `-`), and a mode (or
`-`): it refuses to write when the file changed since it was read (someone else edited the
config in between; a missing file reads as empty), creates the parent directory (pmxcfs has
no `/etc/pve/firewall` until a firewall setting is first saved; pve-firewall makes it too),
writes a private temporary file (mkstemp: unpredictable name, mode 0600) next to the target
and renames it over the target, as Proxmox's own `file_set_contents` does on `/etc/pve`.
Nothing from the inventory is ever part of a shell string: the program text is constant and
the path is its own argv element. Config writes also hold pct's own per-container flock.
"""

from __future__ import annotations

import hashlib

WRITER_NAME = "phoenix-write"

WRITER = (
    "import hashlib,os,sys,tempfile\n"
    "p,want,mode=sys.argv[1:4]\n"
    "d=os.path.dirname(p)\n"
    "os.makedirs(d,exist_ok=True)\n"
    "try:\n old=open(p,'rb').read()\nexcept FileNotFoundError:\n old=b''\n"
    "if want!='-' and hashlib.sha256(old).hexdigest()!=want:\n"
    " sys.exit(p+': changed since Phoenix read it; run Phoenix again')\n"
    "fd,t=tempfile.mkstemp(dir=d,prefix='.'+os.path.basename(p)+'.')\n"
    "try:\n"
    " with os.fdopen(fd,'wb') as f:\n  f.write(sys.stdin.buffer.read())\n"
    " if mode!='-':\n  os.chmod(t,int(mode,8))\n"
    " os.replace(t,p)\n"
    "except BaseException:\n os.unlink(t)\n raise\n"
)


def digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def read_cmd(path: str) -> list[str]:
    return ["cat", path]


def write_cmd(
    path: str, expect: str | None = None, mode: int | None = None, lock: str | None = None
) -> list[str]:
    """argv that writes stdin to `path` (only if its content still hashes to `expect`)."""
    argv = [
        "python3",
        "-c",
        WRITER,
        path,
        expect if expect is not None else "-",
        f"{mode:04o}" if mode is not None else "-",
    ]
    if lock is not None:
        argv = ["flock", "--timeout", "30", lock, *argv]
    return argv


def display(argv: tuple[str, ...] | list[str]) -> list[str]:
    """The argv for people: the constant writer program shown by name, not in full."""
    return [f"<{WRITER_NAME}>" if part == WRITER else part for part in argv]

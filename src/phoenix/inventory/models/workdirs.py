"""The directories Phoenix makes and, at teardown, removes (`state_dir`, `lxc_path`,
`template_cache`): each must be a folder of its own, never a system directory.

Teardown removes a directory recursively (when it carries Phoenix's marker), so a value
such as `/etc`, `/home` or `/var/lib` is refused here, before anything runs, and so is a
path inside the system's own trees (`/usr/...`, `/proc/...`), a user's home itself, and a
path that names a folder twice (`..`, `.`, `//`), which would let `/srv/x/../../etc` by.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StrictStr

# Folders of the system itself: never one of Phoenix's directories.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/home",
        "/media",
        "/mnt",
        "/opt",
        "/root",
        "/srv",
        "/tmp",
        "/var",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/lib/lxc",
        "/var/lib/vz",
        "/var/local",
        "/var/lock",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/var/spool",
        "/var/tmp",
    }
)
# Trees owned by the OS or the kernel: nothing of Phoenix's lives anywhere inside them.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
)
# Folders whose direct children are users' homes.
HOME_PARENTS = ("/home",)


def _work_dir(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path")
    parts = value.rstrip("/").split("/")[1:] if value != "/" else []
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{value!r}: write the path plainly (no '.', '..' or '//')")
    path = "/" + "/".join(parts)
    if path in SYSTEM_DIRS:
        raise ValueError(
            f"{value!r} is a system directory; Phoenix removes its own directories at "
            "teardown, so give it a folder of its own (such as /var/lib/phoenix/lab)"
        )
    for tree in SYSTEM_TREES:
        if path == tree or path.startswith(tree + "/"):
            raise ValueError(f"{value!r} is inside {tree}, which belongs to the system")
    for home in HOME_PARENTS:
        if path.rsplit("/", 1)[0] == home:
            raise ValueError(f"{value!r} is a user's home; use a folder inside it")
    return path


def overlapping(paths: dict[str, str]) -> str | None:
    """A message when two of Phoenix's directories are the same or one holds the other
    (removing one would remove the other), else None."""
    items = sorted(paths.items())
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1 :]:
            if a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/"):
                return f"{name_a} ({a}) and {name_b} ({b}) overlap; give each its own folder"
    return None


WorkDir = Annotated[StrictStr, AfterValidator(_work_dir)]

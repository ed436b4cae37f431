"""Push a bundle into a guest, run it, clean up, and remember that it ran.

The in-guest commands are fixed argv lists: values (paths, script name, digest) reach the
guest's `sh` as positional parameters (`"$1"`), never spliced into the script text, so
nothing from the inventory is ever parsed by a shell. The applied-marker
(`/var/lib/phoenix/applied/<bundle name>`, containing the digest) is written only after the
script succeeded: a failed or interrupted recipe runs again next time.
"""

from __future__ import annotations

import io
import json
import re
import tarfile

from phoenix.drivers.base import Driver
from phoenix.errors import CommandFailed, DriverError
from phoenix.recipes.bundle import RUN_DIR, Bundle

MARKER_DIR = "/var/lib/phoenix/applied"
GUEST_ENTRY = "guest.json"

# argv templates; the fake driver in tests understands exactly these. A bundle takes two
# execs: the tarball streams into UNPACK's stdin, and RUN runs the script, removes the run
# dir whatever happened, and writes the marker only after success (the marker's failure
# is told apart by MARKER_FAILED on stderr: the script's own stderr goes to stdout).
READ_MARKERS = ("grep", "-r", "-H", "-s", "", MARKER_DIR)
UNPACK_SCRIPT = 'set -e; rm -rf "$1"; mkdir -p -m 700 "$1"; tar -xzf - -C "$1"'
MARKER_FAILED = "phoenix: cannot write the applied marker"
RUN_SCRIPT = (
    'cd "$1" || exit 1; "./$2" 2>&1; rc=$?; cd / && rm -rf "$1"; [ "$rc" -eq 0 ] || exit "$rc"; '
    'mkdir -p "$3" && printf %s "$4" > "$3/$5.tmp" && mv -f "$3/$5.tmp" "$3/$5" '
    f'|| {{ echo "{MARKER_FAILED} $3/$5" >&2; exit 1; }}'
)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def marker_name(bundle_name: str) -> str:
    """File name of a bundle's marker (bundle names are ours, but stay safe anyway)."""
    return _SAFE.sub("_", bundle_name) or "_"


def parse_markers(output: str) -> dict[str, str]:
    """`grep -r -H '' DIR` output (`path:digest` per line) -> {marker name: digest}."""
    markers: dict[str, str] = {}
    for line in output.splitlines():
        path, sep, digest = line.rpartition(":")
        if not sep or not path.startswith(MARKER_DIR + "/"):
            continue
        name = path[len(MARKER_DIR) + 1 :]
        if "/" not in name and not name.endswith(".tmp"):
            markers[name] = digest.strip()
    return markers


def read_markers(driver: Driver, ctid: int) -> dict[str, str]:
    """Applied markers of a running guest (one read-only exec; none when the dir is absent)."""
    result = driver.exec(ctid, list(READ_MARKERS), timeout=60)
    if result.returncode not in (0, 1, 2):
        raise DriverError(
            f"guest {ctid}: cannot read applied markers in {MARKER_DIR} "
            f"(exit {result.returncode}): {result.stderr.strip()[-300:]}"
        )
    return parse_markers(result.stdout)


def is_applied(markers: dict[str, str], bundle: Bundle) -> bool:
    return markers.get(marker_name(bundle.name)) == bundle.digest


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def pack(bundle: Bundle) -> bytes:
    """The bundle as a gzip tarball: script (0755), files, guest.json."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _add(tar, bundle.script_name, bundle.script, 0o755)
        for path in sorted(bundle.files):
            _add(tar, path, bundle.files[path], 0o644)
        entry = json.dumps(bundle.entry, indent=2, sort_keys=True, default=str).encode()
        _add(tar, GUEST_ENTRY, entry, 0o644)
    return buf.getvalue()


def _check(result_code: int, out: str, err: str, argv: list[str], context: str) -> None:
    if result_code != 0:
        raise CommandFailed(argv, result_code, out, err, context)


def run_bundle(driver: Driver, ctid: int, bundle: Bundle) -> str:
    """Stream the bundle into RUN_DIR, run it, always clean up; write the marker on success.

    Returns the script's output. On failure raises CommandFailed carrying the script's
    combined output (its tail is in the message) and naming the guest and bundle.
    """
    context = f"guest {ctid}: {bundle.name} ({bundle.script_name})"
    cleaned = False
    try:
        name = marker_name(bundle.name)
        label = f"phoenix-{name}"  # $0: names the bundle in sh's messages and the command log
        unpack = ["sh", "-c", UNPACK_SCRIPT, label, RUN_DIR]
        res = driver.exec(ctid, unpack, stdin=pack(bundle), timeout=300)
        _check(res.returncode, res.stdout, res.stderr, unpack, f"{context}: pushing the bundle")
        run = [
            "sh",
            "-c",
            RUN_SCRIPT,
            label,
            RUN_DIR,
            bundle.script_name,
            MARKER_DIR,
            bundle.digest,
            name,
        ]
        res = driver.exec(ctid, run, env=dict(bundle.env), timeout=bundle.timeout)
        cleaned = True  # the run script removed RUN_DIR, whatever the script did
        if res.returncode != 0 and MARKER_FAILED in res.stderr:
            shown = [f"{MARKER_DIR}/{name}"]
            _check(res.returncode, res.stdout, res.stderr, shown, f"{context}: writing marker")
        shown = [f"{RUN_DIR}/{bundle.script_name}"]
        _check(res.returncode, res.stdout, res.stderr, shown, context)
        return res.stdout
    finally:
        if not cleaned:  # unpacking failed, or the run was cut short (timeout, lost guest)
            driver.exec(ctid, ["rm", "-rf", RUN_DIR], timeout=120)

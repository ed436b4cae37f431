"""Push a bundle into a guest, run it detached from Phoenix, and remember that it ran.

The in-guest commands are fixed argv lists: values (paths, script name, digest) reach the
guest's `sh` as positional parameters (`"$1"`), never spliced into the script text, so
nothing from the inventory is ever parsed by a shell. The applied-marker
(`/var/lib/phoenix/applied/<bundle name>`, containing the digest) is written only after the
script succeeded: a failed or interrupted recipe runs again next time.

A recipe runs detached from the connection that started it (`setsid`, output to a log file
in the guest, holding a `flock` on `/var/lib/phoenix/run/lock` for as long as it runs), so
a killed or interrupted Phoenix never kills apt half-way through dpkg: the run goes on, and
writes its exit code to `/var/lib/phoenix/run/rc` (and the marker on success). Phoenix
waits for that file in short execs; the next run first waits for any recipe still in flight
(then re-reads the markers: it may have finished the very same bundle) instead of starting a
second one. Before a recipe, a dpkg that an earlier interruption left half-configured is
repaired (`dpkg --configure -a`). The log stays in the guest (`/var/lib/phoenix/run/log`);
Phoenix shows its tail only when the recipe fails.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from phoenix.digits import sint
from phoenix.drivers.base import Driver
from phoenix.errors import CommandFailed, DriverError, Interrupted
from phoenix.recipes import hostcache
from phoenix.recipes.bundle import BUILD_CACHE_DIR, BUILD_FILE, RUN_DIR, Bundle

MARKER_DIR = "/var/lib/phoenix/applied"
STATE_DIR = "/var/lib/phoenix/run"
GUEST_ENTRY = "guest.json"
LOG_TAIL = 64 * 1024  # bytes of the log brought back (all of it is in the guest)
WAIT_SLICE = 2  # seconds one WAIT exec waits in the guest before the host looks again
STILL_RUNNING = 75
NO_RUN = 3

# argv templates; the fake driver in tests understands exactly these. A bundle takes:
# WAIT (nothing in flight?), UNPACK (the tarball streams into its stdin), START (returns at
# once, the recipe runs detached), then WAIT until the recipe's exit code is there.
READ_MARKERS: tuple[str, ...] = ("grep", "-r", "-H", "-s", "", MARKER_DIR)
UNPACK_SCRIPT = 'set -e; rm -rf "$1"; mkdir -p -m 700 "$1"; tar -xzf - -C "$1"'
# A host file (from the download cache) streamed into the run dir: $1 its path there.
PUSH_SCRIPT = 'cat > "$1"'
# A build the recipe left for the host: $1 the file; exit 3 when there is none. Read as
# base64 (command output is text); removed once the host has it.
COLLECT_SCRIPT = '[ -f "$1" ] || exit 3; base64 "$1"'
MARKER_FAILED = "phoenix: cannot write the applied marker"
# Runs detached: $1 run dir, $2 script, $3 marker dir, $4 digest, $5 marker name, $6 state
# dir. The script's stderr goes to the log with its stdout.
RUN_SCRIPT = (
    'if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then '
    'echo "phoenix: an earlier run was interrupted inside dpkg: dpkg --configure -a"; '
    "DEBIAN_FRONTEND=noninteractive dpkg --configure -a; fi; "
    'cd "$1" || exit 1; "./$2" 2>&1; rc=$?; cd / && rm -rf "$1"; '
    'if [ "$rc" -eq 0 ]; then mkdir -p "$3" && printf %s "$4" > "$3/$5.tmp" '
    f'&& mv -f "$3/$5.tmp" "$3/$5" || {{ echo "{MARKER_FAILED} $3/$5"; rc=97; }}; fi; '
    'printf "%s\\n" "$rc" > "$6/rc.tmp" && mv -f "$6/rc.tmp" "$6/rc"'
)
# $1..$6 as above, $7 RUN_SCRIPT. Takes the lock (refused while a recipe runs) and hands it
# to the detached run, which keeps it until it ends (fd 9 is inherited, not reopened).
START_SCRIPT = (
    'set -e; mkdir -p -m 700 "$6"; exec 9>"$6/lock"; '
    'flock -n 9 || { echo "phoenix: a recipe is still running in this guest" >&2; exit 75; }; '
    'rm -f "$6/rc" "$6/log"; printf "%s %s\\n" "$5" "$4" > "$6/name"; '
    'setsid sh -c "$7" "$0" "$1" "$2" "$3" "$4" "$5" "$6" </dev/null >"$6/log" 2>&1 &'
)
# $1 state dir, $2 seconds. Exit 0: finished, prints the exit code, then the log's tail;
# 75: still running; 3: nothing runs (never started, or the guest restarted under it).
WAIT_SCRIPT = (
    'n=$(( $2 * 5 )); while [ ! -f "$1/rc" ]; do '
    'if [ ! -e "$1/lock" ] || flock -n "$1/lock" true; then '
    '[ -f "$1/rc" ] && break; exit 3; fi; '
    '[ "$n" -le 0 ] && exit 75; n=$((n - 1)); sleep 0.2; done; '
    f'cat "$1/rc"; tail -c {LOG_TAIL} "$1/log" 2>/dev/null; exit 0'
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


# Recently packed bundles by digest (which covers everything packed): guests share
# bundles (a feature's script, entry and files are the same for many), and a plan preview
# or a run of thousands of guests packs each distinct one once.
_PACKED: OrderedDict[str, bytes] = OrderedDict()
_PACKED_KEEP = 32
_PACKED_LOCK = threading.Lock()  # the executor packs from several threads


def pack(bundle: Bundle) -> bytes:
    """The bundle as a gzip tarball: script (0755), files, guest.json."""
    with _PACKED_LOCK:
        packed = _PACKED.get(bundle.digest)
    if packed is None:
        packed = _pack(bundle)
        with _PACKED_LOCK:
            _PACKED[bundle.digest] = packed
            while len(_PACKED) > _PACKED_KEEP:
                _PACKED.popitem(last=False)
    return packed


def _pack(bundle: Bundle) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _add(tar, bundle.script_name, bundle.script, 0o755)
        for path in sorted(bundle.files):
            _add(tar, path, bundle.files[path], 0o644)
        entry = json.dumps(bundle.entry, indent=2, sort_keys=True, default=str).encode()
        _add(tar, GUEST_ENTRY, entry, 0o644)
    return buf.getvalue()


def _label(bundle: Bundle) -> str:
    """$0 of the in-guest sh: names the bundle in sh's messages and the command log."""
    return f"phoenix-{marker_name(bundle.name)}"


def unpack_argv(bundle: Bundle) -> list[str]:
    """Unpacks the bundle's tarball (on stdin) into RUN_DIR."""
    return ["sh", "-c", UNPACK_SCRIPT, _label(bundle), RUN_DIR]


def start_argv(bundle: Bundle) -> list[str]:
    """Starts the unpacked recipe detached; it writes its marker when it succeeds."""
    name = marker_name(bundle.name)
    args = [RUN_DIR, bundle.script_name, MARKER_DIR, bundle.digest, name, STATE_DIR]
    return ["sh", "-c", START_SCRIPT, _label(bundle), *args, RUN_SCRIPT]


def wait_argv(seconds: int) -> list[str]:
    """Waits up to `seconds` in the guest for the recipe in flight."""
    return ["sh", "-c", WAIT_SCRIPT, "phoenix-wait", STATE_DIR, str(seconds)]


def bundle_commands(bundle: Bundle) -> list[tuple[list[str], dict[str, str] | None]]:
    """(argv, env) of what `run_bundle` sends to a guest where nothing is in flight and
    every command succeeds at once with no output: a fresh node in `plan --offline
    --commands`. It lists commands, so the bundle is not packed (a preview of thousands
    of guests would otherwise gzip one tarball per guest)."""
    return [
        (wait_argv(0), None),
        (unpack_argv(bundle), None),
        (start_argv(bundle), dict(bundle.env)),
        (wait_argv(WAIT_SLICE), None),
    ]


def _finished(output: str) -> tuple[int, str]:
    """WAIT's output: the exit code line, then the log. The rc file is renamed into place
    whole, so no code at all only comes from a recording runner (`plan --offline`), which
    answers every command with success and no output: that is a success too."""
    code, _, log = output.partition("\n")
    code = code.strip()
    if not code:
        return 0, log
    rc = sint(code)
    return (1 if rc is None else rc), log


def _wait(
    driver: Driver,
    ctid: int,
    deadline: float,
    stop: Callable[[], bool] | None,
    context: str,
) -> tuple[int, str] | None:
    """Until the recipe in flight ends: (its exit code, log tail), or None if none runs."""
    argv = wait_argv(WAIT_SLICE)
    while True:
        res = driver.exec(ctid, argv, timeout=WAIT_SLICE + 60)
        if res.returncode == NO_RUN:
            return None
        if res.returncode == 0:
            return _finished(res.stdout)
        if res.returncode != STILL_RUNNING:
            raise CommandFailed(argv, res.returncode, res.stdout, res.stderr, context)
        if stop is not None and stop():
            raise Interrupted(f"{context}: left running in the guest; the next run collects it")
        if time.monotonic() >= deadline:
            raise CommandFailed(
                argv,
                124,
                "",
                f"still running in the guest after its time limit; it goes on "
                f"there (log: {STATE_DIR}/log) and the next run waits for it",
                context,
            )


def await_idle(
    driver: Driver, ctid: int, stop: Callable[[], bool] | None = None, timeout: float = 3600
) -> bool:
    """Wait for a recipe an earlier (killed) run left running in the guest; True when
    there was one (the caller re-reads the markers: it may have applied the same bundle)."""
    context = f"guest {ctid}: waiting for a recipe an earlier run left running"
    argv = wait_argv(0)
    res = driver.exec(ctid, argv, timeout=60)
    if res.returncode != STILL_RUNNING:
        return False
    _wait(driver, ctid, time.monotonic() + timeout, stop, context)
    return True


def run_bundle(
    driver: Driver, ctid: int, bundle: Bundle, stop: Callable[[], bool] | None = None
) -> str:
    """Stream the bundle into RUN_DIR, start it detached, wait for its exit code.

    Returns the script's output (the log). On failure raises CommandFailed carrying the
    log's tail and naming the guest and bundle. When `stop()` turns true while it waits,
    raises Interrupted and leaves the recipe running (the next run collects it).
    """
    context = f"guest {ctid}: {bundle.name} ({bundle.script_name})"
    await_idle(driver, ctid, stop, bundle.timeout)
    name = marker_name(bundle.name)
    # Large downloads first (once per host, from its cache), so a failed one leaves nothing.
    fetched = {n: hostcache.fetch(f.url, f.sha256) for n, f in sorted(bundle.host_files.items())}
    build = hostcache.cached_build(bundle.build_cache) if bundle.build_cache else None
    if build is not None:
        fetched[BUILD_FILE] = build
    unpack = unpack_argv(bundle)
    res = driver.exec(ctid, unpack, stdin=pack(bundle), timeout=300)
    if res.returncode != 0:
        driver.exec(ctid, ["rm", "-rf", RUN_DIR], timeout=120)
        raise CommandFailed(
            unpack, res.returncode, res.stdout, res.stderr, f"{context}: pushing the bundle"
        )
    for file_name, local in fetched.items():
        argv = ["sh", "-c", PUSH_SCRIPT, _label(bundle), f"{RUN_DIR}/{file_name}"]
        res = driver.exec(ctid, argv, stdin=local, timeout=1800)
        if res.returncode != 0:
            driver.exec(ctid, ["rm", "-rf", RUN_DIR], timeout=120)
            raise CommandFailed(
                argv, res.returncode, res.stdout, res.stderr, f"{context}: pushing {file_name}"
            )
    start = start_argv(bundle)
    res = driver.exec(ctid, start, env=dict(bundle.env), timeout=60)
    if res.returncode != 0:
        driver.exec(ctid, ["rm", "-rf", RUN_DIR], timeout=120)
        raise CommandFailed(
            start[:3], res.returncode, res.stdout, res.stderr, f"{context}: starting it"
        )
    finished = _wait(driver, ctid, time.monotonic() + bundle.timeout, stop, context)
    if finished is None:
        raise DriverError(
            f"{context}: the recipe ended without an exit code (the guest restarted?); "
            "the next run runs it again"
        )
    code, log = finished
    if code != 0 and MARKER_FAILED in log:
        raise CommandFailed([f"{MARKER_DIR}/{name}"], code, log, "", f"{context}: writing marker")
    if code != 0:
        raise CommandFailed([f"{RUN_DIR}/{bundle.script_name}"], code, log, "", context)
    if bundle.build_cache and build is None:
        collect_build(driver, ctid, bundle.build_cache)
    return log


def collect_build(driver: Driver, ctid: int, name: str) -> bool:
    """Keep the build the recipe left in the guest in the host's cache (True when there
    was one). Best effort: without it the next guest builds for itself."""
    path = f"{BUILD_CACHE_DIR}/{name}"
    res = driver.exec(ctid, ["sh", "-c", COLLECT_SCRIPT, "phoenix-collect", path], timeout=600)
    if res.returncode != 0:
        return False
    try:
        data = base64.b64decode(res.stdout, validate=False)
    except ValueError:
        return False
    hostcache.keep_build(name, data)
    driver.exec(ctid, ["rm", "-f", path], timeout=60)
    return True

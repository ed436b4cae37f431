"""A stand-in `nginx` binary for tests of setup_gateway.sh (test_setup_script.py).

Records every call (argv, one JSON line) in $STUB_NGINX_CALLS. `-t`: refuses, with
nginx's message, a tree where a file holds the word `phoenix_test_broken`. Start and
`-s reload`: "loads" the tree (writes its resolved folder to $STUB_NGINX_LOADED, as nginx
reads the files at that moment) and, on start, writes $STUB_NGINX_PID (a live process) to
the pid file named by the `pid ...;` global or $PHOENIX_PID_FILE."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BROKEN = "phoenix_test_broken"


def main(argv: list[str]) -> int:
    with open(os.environ["STUB_NGINX_CALLS"], "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    conf = Path(argv[argv.index("-c") + 1])
    tree = conf.parent.resolve()
    if "-t" in argv:
        for path in sorted(tree.rglob("*")):
            if path.is_file() and BROKEN in path.read_text(errors="replace"):
                line = path.read_text().splitlines().index(f"{BROKEN} on;") + 1
                print(
                    f'nginx: [emerg] unknown directive "{BROKEN}" in {path}:{line}', file=sys.stderr
                )
                print(f"nginx: configuration file {conf} test failed", file=sys.stderr)
                return 1
        print(f"nginx: configuration file {conf} test is successful", file=sys.stderr)
        return 0
    Path(os.environ["STUB_NGINX_LOADED"]).write_text(str(tree))
    if "-s" not in argv:
        Path(os.environ["PHOENIX_PID_FILE"]).write_text(os.environ["STUB_NGINX_PID"] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

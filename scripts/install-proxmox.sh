#!/usr/bin/env bash
# Install Phoenix alone on a Proxmox VE node (or any host that drives one over SSH): its
# Python package and the `phoenix` CLI in a virtualenv, nothing else. No system package is
# installed: the node's python3 is used, and where Debian's python3-venv is absent (Proxmox
# does not ship it) pip is bootstrapped into the venv from PyPI's pip wheel.
#
#   scripts/install-proxmox.sh [PREFIX]      (default /opt/phoenix; CLI linked in /usr/local/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:-/opt/phoenix}
PY=${PYTHON:-python3}
BIN=${PHOENIX_BIN_DIR:-/usr/local/bin}

if ! command -v "$PY" >/dev/null; then
  echo "error: $PY not found; Phoenix needs Python 3.11 or newer (Proxmox VE 8 and 9 have it)" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: $("$PY" -V) is too old; Phoenix needs Python 3.11 or newer (Proxmox VE 8+)" >&2
  exit 1
fi
if [ ! -x "$PREFIX/bin/python" ]; then
  echo "==> creating $PREFIX"
  if ! "$PY" -m venv "$PREFIX" 2>/dev/null; then
    # Debian's python3 without python3-venv has no ensurepip: a venv without pip, then pip
    # from its wheel (a wheel is importable: pip runs from it to install itself).
    rm -rf "$PREFIX"
    "$PY" -m venv --without-pip "$PREFIX"
    wheel=$("$PREFIX/bin/python" - <<'PYEOF'
import json, tempfile, urllib.parse, urllib.request
index = "https://pypi.org/pypi/pip/json"
release = json.load(urllib.request.urlopen(index, timeout=60))
found = next(f["url"] for f in release["urls"] if f["packagetype"] == "bdist_wheel")
url = urllib.parse.urljoin(index, found)  # a mirror may answer with relative links
path = tempfile.mkdtemp() + "/" + url.rsplit("/", 1)[1]
urllib.request.urlretrieve(url, path)
print(path)
PYEOF
)
    "$PREFIX/bin/python" "$wheel/pip" install -q --no-index "$wheel"
    rm -rf "$(dirname "$wheel")"
  fi
fi
echo "==> installing Phoenix into $PREFIX"
PIP_NO_CACHE_DIR=1 "$PREFIX/bin/python" -m pip install -q --upgrade .
ln -sf "$PREFIX/bin/phoenix" "$BIN/phoenix"
echo "==> done: $("$BIN/phoenix" --version 2>/dev/null || echo phoenix) — run \`phoenix --driver proxmox doctor\`"

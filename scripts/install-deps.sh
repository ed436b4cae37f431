#!/usr/bin/env bash
# Install what Phoenix needs on a Debian 12 host: system packages (apt-get) and a Python
# virtualenv at .venv with Phoenix and its test tools. Idempotent: installs only what is
# missing, and skips the package index refresh when nothing is.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  python3 python3-venv python3-pip
  lxc debootstrap uidmap nftables iproute2 rsync
  nginx libnginx-mod-http-js openssl curl wrk
  xz-utils zstd ca-certificates
)

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (Phoenix creates containers, bridges and firewall rules)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.phoenix-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing Phoenix and test tools into .venv"
  # (this machine's pip config may name extra package folders; their warnings are noise)
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import phoenix, typer, pydantic, crossplane, cryptography, httpx, filelock"
  touch "$stamp"
fi

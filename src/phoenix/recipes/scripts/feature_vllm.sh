#!/bin/sh
# Phoenix feature: vllm — vLLM in a virtual environment at /opt/vllm.
#
# PHOENIX_VLLM_SPEC (set by Phoenix from the inventory: `vllm_package`, else
# `vllm==<vllm_version>`, else the pinned default) is what pip installs; PIP_INDEX_URL
# may name a mirror. Already installed = the same spec recorded after a successful install
# and `import vllm` working; then nothing runs. The unit and its arguments are the
# application's job (phoenix_hypervisor_lxc_vllm.sh).
set -eu

VENV=/opt/vllm
SPEC="${PHOENIX_VLLM_SPEC:?Phoenix sets PHOENIX_VLLM_SPEC}"
STAMP="$VENV/.phoenix-vllm-spec"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

log() { printf 'vllm: %s\n' "$*"; }

if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$SPEC" ] \
    && "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
    log "$SPEC already installed in $VENV"
    exit 0
fi
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "vllm: this recipe needs a Debian-based guest (apt-get) or python3-venv" >&2
        exit 2
    fi
    log "installing python3-venv"
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 update -q
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 install -y -q --no-install-recommends \
        python3 python3-venv
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
log "installing $SPEC"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade -- "$SPEC"
"$VENV/bin/python" -c "import vllm"
printf '%s' "$SPEC" > "$STAMP"
log "done"

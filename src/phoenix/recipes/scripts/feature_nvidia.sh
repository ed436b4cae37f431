#!/bin/sh
# Phoenix feature: nvidia — the NVIDIA user-space driver inside the guest, from the runfile
# (no kernel module: the host's is used through the passed-through device nodes).
#
# The user-space version must equal the host's kernel module, which the guest sees in
# /proc/driver/nvidia/version; a mismatch is the field's most common failure ("Failed to
# initialize NVML: Driver/library version mismatch"), so it is refused before anything is
# installed, naming both versions. Already installed = that version's libnvidia-ml is
# present and recorded, not merely some nvidia-smi.
#
# Environment (set by Phoenix): PHOENIX_NVIDIA_RUNFILE_URL (nvidia_runfile_url, the guest's
# over the top level's), PHOENIX_NVIDIA_DRIVER_VERSION (nvidia_driver_version: what the
# host is expected to run; optional). PHOENIX_NVIDIA_PROC_VERSION and PHOENIX_NVIDIA_ROOT
# exist for tests (default /proc/driver/nvidia/version and /).
set -eu
export LC_ALL=C

PROC="${PHOENIX_NVIDIA_PROC_VERSION:-/proc/driver/nvidia/version}"
ROOT="${PHOENIX_NVIDIA_ROOT:-}"
URL="${PHOENIX_NVIDIA_RUNFILE_URL:-}"
EXPECTED="${PHOENIX_NVIDIA_DRIVER_VERSION:-}"
STAMP="$ROOT/var/lib/phoenix/nvidia-userspace-version"

fail() { printf 'nvidia: %s\n' "$*" >&2; exit 2; }
log() { printf 'nvidia: %s\n' "$*"; }

if [ ! -r "$PROC" ]; then
    fail "the host's NVIDIA kernel module is not visible here ($PROC is missing): give the" \
        "guest a GPU (gpu_assignment) and check that the driver is loaded on the host"
fi
host=$(head -n 1 "$PROC" | grep -o '[0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)\?' | head -n 1)
[ -n "$host" ] || fail "cannot read the kernel module's version from $PROC"

if [ -n "$EXPECTED" ] && [ "$EXPECTED" != "$host" ]; then
    fail "the host runs NVIDIA kernel module $host but nvidia_driver_version says $EXPECTED:" \
        "update nvidia_driver_version (and nvidia_runfile_url) to $host, or the host's driver"
fi
[ -n "$URL" ] || fail "no nvidia_runfile_url in the inventory (top level or this guest)"
runfile=${URL##*/}
case "$runfile" in
    NVIDIA-Linux-*-*.run) ;;
    *) fail "nvidia_runfile_url must name an NVIDIA-Linux-<arch>-<version>.run file: $URL" ;;
esac
wanted=${runfile%.run}
wanted=${wanted##*-}
if [ "$wanted" != "$host" ]; then
    fail "nvidia_runfile_url installs user-space driver $wanted but the host's kernel module" \
        "is $host: they must be equal (Driver/library version mismatch); use the $host runfile"
fi

found_lib() {
    for dir in "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/lib64" "$ROOT/usr/lib"; do
        [ -e "$dir/libnvidia-ml.so.$host" ] && return 0
    done
    return 1
}
if [ "$(cat "$STAMP" 2>/dev/null || true)" = "$host" ] && found_lib; then
    log "user-space driver $host already installed"
    exit 0
fi

cache="$ROOT/var/cache/phoenix"
mkdir -p "$cache"
if [ ! -s "$cache/$runfile" ]; then
    log "downloading $runfile"
    curl -fsSL --retry 3 -o "$cache/$runfile.part" "$URL"
    mv -f "$cache/$runfile.part" "$cache/$runfile"
fi
log "installing user-space driver $host"
sh "$cache/$runfile" --silent --no-kernel-module --no-x-check --no-nouveau-check \
    --no-nvidia-modprobe --no-dkms
found_lib || fail "the runfile ran but libnvidia-ml.so.$host is not installed"
mkdir -p "$(dirname "$STAMP")"
printf '%s' "$host" > "$STAMP"
rm -f "$cache/$runfile"
log "done: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi has no GPU to show')"

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
# The runfile is downloaded once per host: Phoenix fetches it into the host's cache and
# pushes it beside this script (PHOENIX_NVIDIA_RUNFILE names it); only without that does the
# guest download it itself.
#
# CUDA toolkit (optional): with nvidia_repo_url, NVIDIA's apt repository is added and
# cuda-toolkit-X-Y installed (cuda_version, else the newest the host's driver supports),
# with the repository's driver packages pinned away (they would replace the runfile's
# user-space driver with another version); nvcc is linked into /usr/local/bin. Without
# nvidia_repo_url the toolkit is skipped, saying so.
#
# Environment (set by Phoenix): PHOENIX_NVIDIA_RUNFILE_URL (nvidia_runfile_url, the guest's
# over the top level's), PHOENIX_NVIDIA_RUNFILE (the pushed runfile's name),
# PHOENIX_NVIDIA_DRIVER_VERSION (nvidia_driver_version: what the host is expected to run;
# optional), PHOENIX_NVIDIA_REPO_URL, PHOENIX_CUDA_VERSION. PHOENIX_NVIDIA_PROC_VERSION and
# PHOENIX_NVIDIA_ROOT exist for tests (default /proc/driver/nvidia/version and /).
set -eu
export LC_ALL=C

PROC="${PHOENIX_NVIDIA_PROC_VERSION:-/proc/driver/nvidia/version}"
ROOT="${PHOENIX_NVIDIA_ROOT:-}"
URL="${PHOENIX_NVIDIA_RUNFILE_URL:-}"
EXPECTED="${PHOENIX_NVIDIA_DRIVER_VERSION:-}"
PUSHED="${PHOENIX_NVIDIA_RUNFILE:-}"
REPO="${PHOENIX_NVIDIA_REPO_URL:-}"
CUDA="${PHOENIX_CUDA_VERSION:-}"
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
install_driver() {
    if [ -n "$PUSHED" ] && [ "$PUSHED" = "$runfile" ] && [ -s "./$PUSHED" ]; then
        file="./$PUSHED"
        log "using $runfile from the host's download cache"
    else
        cache="$ROOT/var/cache/phoenix"
        mkdir -p "$cache"
        file="$cache/$runfile"
        if [ ! -s "$file" ]; then
            log "downloading $runfile"
            curl -fsSL --retry 3 -o "$file.part" "$URL"
            mv -f "$file.part" "$file"
        fi
    fi
    log "installing user-space driver $host"
    sh "$file" --silent --no-kernel-module --no-x-check --no-nouveau-check \
        --no-nvidia-modprobe --no-dkms
    found_lib || fail "the runfile ran but libnvidia-ml.so.$host is not installed"
    mkdir -p "$(dirname "$STAMP")"
    printf '%s' "$host" > "$STAMP"
    rm -f "$ROOT/var/cache/phoenix/$runfile"
    log "done: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi has no GPU to show')"
}

if [ "$(cat "$STAMP" 2>/dev/null || true)" = "$host" ] && found_lib; then
    log "user-space driver $host already installed"
else
    install_driver
fi

# The newest CUDA toolkit a driver branch supports (NVIDIA's minimum driver per release).
cuda_for_driver() {
    major=${1%%.*}
    for pair in 580:13.0 575:12.9 570:12.8 560:12.6 555:12.5 550:12.4 545:12.3 535:12.2 \
        530:12.1 525:12.0; do
        if [ "$major" -ge "${pair%%:*}" ]; then
            echo "${pair#*:}"
            return 0
        fi
    done
    return 1
}

if [ -z "$REPO" ]; then
    log "no nvidia_repo_url in the inventory: the CUDA toolkit is not installed" \
        "(llama.cpp then builds for the CPU); add nvidia_repo_url to install it"
    exit 0
fi
if [ -z "$CUDA" ]; then
    CUDA=$(cuda_for_driver "$host") || fail "no CUDA toolkit release is known for driver" \
        "$host: set cuda_version (e.g. \"12.2\")"
fi
pkg="cuda-toolkit-$(echo "$CUDA" | tr . -)"
if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    log "CUDA toolkit $CUDA already installed"
else
    log "installing CUDA toolkit $CUDA ($pkg) from $REPO"
    keyring=$(mktemp)
    curl -fsSL --retry 3 -o "$keyring" "${REPO%/}/cuda-keyring_1.1-1_all.deb"
    dpkg -i "$keyring"
    rm -f "$keyring"
    # The repository's drivers would replace the runfile's user-space driver: never take them.
    mkdir -p "$ROOT/etc/apt/preferences.d"
    printf 'Package: cuda-drivers* nvidia-driver* nvidia-kernel* libnvidia-*\nPin: version *\nPin-Priority: -1\n' \
        > "$ROOT/etc/apt/preferences.d/phoenix-no-repo-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$pkg"
fi
if [ -x "$ROOT/usr/local/cuda-$CUDA/bin/nvcc" ]; then
    ln -sfn "/usr/local/cuda-$CUDA/bin/nvcc" "$ROOT/usr/local/bin/nvcc"
fi
log "CUDA toolkit $CUDA: $(nvcc --version 2>/dev/null | tail -n 1 || echo 'nvcc not found')"

#!/bin/sh
# Phoenix application: llama.cpp's llama-server as the systemd unit phoenix-llamacpp.
#
# Phoenix ships plain files: llamacpp-url, llamacpp-sha256, llamacpp-port, llamacpp-model
# and llamacpp-exec (the unit's ExecStart, quoted for systemd on the host; the inventory's
# text never runs through this shell). The archive is checked by its
# sha256 before it replaces /opt/llama.cpp; the service restarts only when the unit or the
# install changed; healthy when /health answers.
#
# A release archive holding llama-server is used as it is. llama.cpp's source (an archive
# with CMakeLists.txt) is built here: with CUDA (-DGGML_CUDA=ON) when the toolkit's nvcc is
# present (the nvidia feature installs it from nvidia_repo_url), for the CPU otherwise; the
# build's flavour is recorded, so a CPU build is redone with CUDA once nvcc appears.
# A source archive the host fetched (llamacpp_archive_url pypi:llama-cpp-python==VERSION: the
# host downloads the sdist with pip, checks its sha256 and repacks llama.cpp's folder) comes
# beside this script as llamacpp-source.tar.gz: no download here. Only the llama-server
# target is built (Release, static, no tests or examples), at low priority.
# PHOENIX_LLAMACPP_ROOT exists for tests (default /).
set -eu
cd "$(dirname "$0")"
export LC_ALL=C
ROOT="${PHOENIX_LLAMACPP_ROOT:-}"
DEST="$ROOT/opt/llama.cpp"
UNIT="$ROOT/etc/systemd/system/phoenix-llamacpp.service"
fail() { printf 'llama.cpp: %s\n' "$*" >&2; exit 2; }
log() { printf 'llama.cpp: %s\n' "$*"; }

url=$(cat llamacpp-url)
sha=$(cat llamacpp-sha256)
port=$(cat llamacpp-port)
[ -n "$sha" ] || fail "llamacpp_sha256 is required (llama.cpp publishes no checksums): give the archive's sha256"
case "$port" in ''|*[!0-9]*) fail "bad port '$port'" ;; esac
model=$(cat llamacpp-model)
[ -n "$model" ] || fail "llamacpp_model (the model file in the guest) is required"
if [ -f llamacpp-model-file ]; then
    # llamacpp_model_url: the host fetched it (checked by llamacpp_model_sha256 when given);
    # it replaces the file at llamacpp_model when it differs (the service then restarts).
    if ! cmp -s llamacpp-model-file "$model"; then
        log "installing the model file at $model"
        mkdir -p "$(dirname "$model")"
        mv llamacpp-model-file "$model.phoenix-new" && mv -f "$model.phoenix-new" "$model" \
            || fail "cannot write the model file $model (a read-only mount point?)"
        model_changed=1
    fi
fi
[ -f "$model" ] || fail "the model file $model does not exist in the guest (a mount point can bring it, or llamacpp_model_url)"

nvcc_path=$(command -v nvcc 2>/dev/null || true)
if [ -z "$nvcc_path" ] && [ -x "$ROOT/usr/local/cuda/bin/nvcc" ]; then
    nvcc_path="$ROOT/usr/local/cuda/bin/nvcc"
fi
flavor=cpu
[ -z "$nvcc_path" ] || flavor=cuda

build_source() {  # $1: the unpacked source dir
    if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
        log "installing the build tools (cmake, build-essential)"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            cmake build-essential
    fi
    if [ "$flavor" = cuda ]; then
        log "building llama-server with CUDA ($nvcc_path)"
        gpu="-DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER=$nvcc_path"
    else
        log "building llama-server for the CPU (no nvcc: the nvidia feature installs the" \
            "CUDA toolkit when the inventory has nvidia_repo_url)"
        gpu="-DGGML_CUDA=OFF"
    fi
    # $gpu is ours (no inventory text): split on purpose.
    # shellcheck disable=SC2086
    nice -n 10 cmake -S "$1" -B "$1/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $gpu
    started=$(date +%s)
    nice -n 10 cmake --build "$1/build" --target llama-server -j "$(nproc 2>/dev/null || echo 2)"
    log "built llama-server in $(( $(date +%s) - started ))s"
}

# A build of the same source that another guest on this host made (the host keeps it and
# pushes it as phoenix-build-cache) is used when it was built for this flavour, OS and CPU
# architecture; a build made here is left in $CACHE for the host to keep.
CACHE="$ROOT/var/lib/phoenix/build-cache"
build_name=$(cat llamacpp-build-name 2>/dev/null || true)
platform="$flavor $(uname -m) $(sed -n 's/^VERSION_ID=//p' "$ROOT/etc/os-release" /etc/os-release 2>/dev/null | head -n 1 | tr -d '"')"

runtime_libs() {  # $1: a binary; installs what it links to beyond a base system (OpenMP)
    ldd "$1" 2>/dev/null | grep -q 'not found' || return 0
    log "installing the build's runtime library libgomp1 (OpenMP)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libgomp1
    ! ldd "$1" 2>/dev/null | grep 'not found'
}

use_cached_build() {  # unpacks the host's build into $DEST.new; fails when it does not fit
    [ -f phoenix-build-cache ] || return 1
    rm -rf "$DEST.new" && mkdir -p "$DEST.new"
    tar -xzf phoenix-build-cache -C "$DEST.new" 2>/dev/null || return 1
    [ "$(cat "$DEST.new/build-platform" 2>/dev/null)" = "$platform" ] || return 1
    [ -x "$DEST.new/bin/llama-server" ] || return 1
    runtime_libs "$DEST.new/bin/llama-server" || return 1
    log "using the llama-server another guest built from the same source ($platform)"
}

changed=${model_changed:-0}
recorded=$(cat "$DEST/.phoenix-archive" 2>/dev/null || true)
if [ "$recorded" != "$url $sha" ] && [ "$recorded" != "$url $sha $flavor" ] \
    && use_cached_build; then
    server="$DEST.new/bin/llama-server"
    ln -sf bin/llama-server "$DEST.new/llama-server"
    printf '%s' "$url $sha $flavor" > "$DEST.new/.phoenix-archive"
    rm -rf "$DEST.old"
    [ ! -e "$DEST" ] || mv "$DEST" "$DEST.old"
    mv "$DEST.new" "$DEST"
    rm -rf "$DEST.old"
    changed=1
elif [ "$recorded" != "$url $sha" ] && [ "$recorded" != "$url $sha $flavor" ]; then
    [ -f llamacpp-source.tar.gz ] || command -v curl >/dev/null 2>&1 \
        || fail "curl is missing (feature base_setup installs it)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if [ -f llamacpp-source.tar.gz ]; then
        log "using llama.cpp's source from $url (fetched and checked by the host)"
        mv llamacpp-source.tar.gz "$work/archive"
    else
        log "downloading $url"
        curl -fsSL --retry 3 -o "$work/archive" "$url"
        got=$(sha256sum "$work/archive" | cut -d' ' -f1)
        [ "$got" = "$sha" ] || fail "checksum mismatch for $url: expected $sha, got $got"
    fi
    rm -rf "$DEST.new"
    mkdir -p "$DEST.new"
    case "$url" in
        *.zip) python3 -m zipfile -e "$work/archive" "$DEST.new" 2>/dev/null \
                   || unzip -q "$work/archive" -d "$DEST.new" \
                   || fail "cannot unpack the zip (needs python3 or unzip)" ;;
        *) tar -xzf "$work/archive" -C "$DEST.new" ;;
    esac
    record="$url $sha"
    server=$(find "$DEST.new" -name llama-server -type f | head -n 1)
    if [ -z "$server" ]; then
        source=$(find "$DEST.new" -maxdepth 2 -name CMakeLists.txt | head -n 1)
        [ -n "$source" ] || fail "the archive has neither llama-server nor llama.cpp's source"
        build_source "$(dirname "$source")"
        built=$(find "$DEST.new" -path '*/build/bin/llama-server' -type f | head -n 1)
        [ -n "$built" ] || fail "the build made no llama-server"
        # Keep the (static) server, not the source and objects (hundreds of MB).
        mv "$built" "$work/llama-server"
        rm -rf "$DEST.new"
        mkdir -p "$DEST.new/bin"
        mv "$work/llama-server" "$DEST.new/bin/llama-server"
        chmod 755 "$DEST.new/bin/llama-server"
        printf '%s' "$platform" > "$DEST.new/build-platform"
        server="$DEST.new/bin/llama-server"
        record="$url $sha $flavor"
        if [ -n "$build_name" ]; then
            mkdir -p "$CACHE"
            tar -czf "$CACHE/$build_name.tmp" -C "$DEST.new" bin/llama-server build-platform
            mv -f "$CACHE/$build_name.tmp" "$CACHE/$build_name"
        fi
    fi
    chmod 755 "$server"
    ln -sf "${server#"$DEST.new/"}" "$DEST.new/llama-server"
    printf '%s' "$record" > "$DEST.new/.phoenix-archive"
    rm -rf "$DEST.old"
    [ ! -e "$DEST" ] || mv "$DEST" "$DEST.old"
    mv "$DEST.new" "$DEST"
    rm -rf "$DEST.old"
    changed=1
fi

exec_line=$(cat llamacpp-exec)
cat > unit.new <<UNIT
[Unit]
Description=llama.cpp server (Phoenix)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$exec_line
Environment=LD_LIBRARY_PATH=/opt/llama.cpp
Restart=on-failure
RestartSec=3

[Install]
WantedBy=multi-user.target
UNIT
if ! cmp -s unit.new "$UNIT"; then
    mkdir -p "$(dirname "$UNIT")"
    install -m 0644 unit.new "$UNIT"
    changed=1
fi
systemctl daemon-reload
systemctl enable --quiet phoenix-llamacpp.service
if [ "$changed" = 1 ]; then
    systemctl restart phoenix-llamacpp.service
elif ! systemctl is-active --quiet phoenix-llamacpp.service; then
    systemctl start phoenix-llamacpp.service
fi
i=0
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 600 ]; then
        echo "llama.cpp: /health did not answer on port $port" >&2
        journalctl -u phoenix-llamacpp.service -n 20 --no-pager >&2 || true
        exit 1
    fi
    sleep 0.5
done
log "serving on port $port"

#!/bin/sh
# Phoenix feature: ollama — Ollama from a pinned release archive, checked by its sha256,
# unpacked into /opt/ollama (`ollama` on the PATH via /usr/local/bin). The unit, the port
# and the models are the application's job (phoenix_hypervisor_lxc_955.sh).
#
# Environment (set by Phoenix): PHOENIX_OLLAMA_URL, and PHOENIX_OLLAMA_SHA256 or
# PHOENIX_OLLAMA_SUMS_URL (the release's sha256sum.txt). Installed = the same URL and
# checksum recorded after a successful install and the binary present.
set -eu
export LC_ALL=C
URL="${PHOENIX_OLLAMA_URL:?Phoenix sets PHOENIX_OLLAMA_URL}"
DEST=/opt/ollama
STAMP="$DEST/.phoenix-archive"
log() { printf 'ollama: %s\n' "$*"; }
fail() { printf 'ollama: %s\n' "$*" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=${URL##*/}
sha="${PHOENIX_OLLAMA_SHA256:-}"
if [ -z "$sha" ]; then
    curl -fsSL --retry 3 -o "$work/sums" "${PHOENIX_OLLAMA_SUMS_URL:?no checksum source}"
    sha=$(awk -v n="$name" '$2 == n || $2 == "./" n || $2 == "*" n { print $1 }' "$work/sums")
    [ -n "$sha" ] || fail "the release's sha256sum.txt has no line for $name"
fi
if [ -x "$DEST/bin/ollama" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$URL $sha" ]; then
    log "already installed ($name, sha256 $sha)"
    exit 0
fi
command -v curl >/dev/null 2>&1 || fail "curl is missing (feature base_setup installs it)"
log "downloading $URL"
curl -fsSL --retry 3 -o "$work/$name" "$URL"
got=$(sha256sum "$work/$name" | cut -d' ' -f1)
[ "$got" = "$sha" ] || fail "checksum mismatch for $name: expected $sha, got $got"
rm -rf "$DEST.new"
mkdir -p "$DEST.new"
tar -xzf "$work/$name" -C "$DEST.new"
[ -x "$DEST.new/bin/ollama" ] || fail "$name has no bin/ollama"
printf '%s %s' "$URL" "$sha" > "$DEST.new/.phoenix-archive"
rm -rf "$DEST.old"
[ ! -e "$DEST" ] || mv "$DEST" "$DEST.old"
mv "$DEST.new" "$DEST"
rm -rf "$DEST.old"
ln -sf "$DEST/bin/ollama" /usr/local/bin/ollama
log "installed $name"

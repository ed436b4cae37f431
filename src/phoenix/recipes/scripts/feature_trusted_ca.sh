#!/bin/sh
# Phoenix feature: trusted_ca — the guest trusts Phoenix's local CA (the one that signs the
# gateway's certificates), so `curl https://<gateway>` works without --cacert.
#
# The bundle carries the CA certificate as phoenix-local-ca.crt beside this script. It is
# installed as /usr/local/share/ca-certificates/phoenix-local-ca.crt and the trust store is
# rebuilt only when that file changed. Debian/Ubuntu guests (ca-certificates is installed
# when missing).
set -eu

HERE=$(dirname "$0")
SOURCE="$HERE/phoenix-local-ca.crt"
TARGET=/usr/local/share/ca-certificates/phoenix-local-ca.crt
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

log() { printf 'trusted_ca: %s\n' "$*"; }

if [ ! -s "$SOURCE" ]; then
    echo "trusted_ca: the bundle has no CA certificate ($SOURCE)" >&2
    exit 2
fi
if ! command -v update-ca-certificates >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "trusted_ca: this recipe needs a Debian-based guest (apt-get)" >&2
        exit 2
    fi
    log "installing ca-certificates"
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 update -q
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 install -y -q --no-install-recommends \
        ca-certificates
fi
if [ -f "$TARGET" ] && cmp -s "$SOURCE" "$TARGET" \
    && grep -qF "$(sed -n 2p "$SOURCE")" /etc/ssl/certs/ca-certificates.crt; then
    log "Phoenix CA already trusted"
    exit 0
fi
mkdir -p /usr/local/share/ca-certificates
cp "$SOURCE" "$TARGET.new"
chmod 644 "$TARGET.new"
mv -f "$TARGET.new" "$TARGET"
update-ca-certificates >/dev/null
log "Phoenix CA installed into the trust store"

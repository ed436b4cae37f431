#!/bin/sh
# Phoenix: a VM's NFS volumes. volumes.fstab is Phoenix's block of /etc/fstab (replaced
# between its marker lines, the rest of the file kept byte for byte); volumes.list holds
# `source<TAB>mount point` per volume, each mounted and read back with findmnt.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
log() { printf 'volumes: %s\n' "$*"; }
begin='# BEGIN phoenix volumes (managed by Phoenix: edits are replaced)'
end='# END phoenix volumes'

if ! command -v mount.nfs >/dev/null 2>&1 && [ ! -x /sbin/mount.nfs ]; then
    command -v apt-get >/dev/null 2>&1 || { echo "volumes: needs a Debian-based guest" >&2; exit 2; }
    log "installing nfs-common"
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 update -q
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 install -y -q --no-install-recommends nfs-common
fi

touch /etc/fstab
cp -p /etc/fstab /etc/fstab.phoenix.tmp
awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' \
    /etc/fstab > /etc/fstab.phoenix.tmp
{ printf '%s\n' "$begin"; cat volumes.fstab; printf '%s\n' "$end"; } >> /etc/fstab.phoenix.tmp
if cmp -s /etc/fstab /etc/fstab.phoenix.tmp; then
    rm -f /etc/fstab.phoenix.tmp
else
    log "writing /etc/fstab"
    mv -f /etc/fstab.phoenix.tmp /etc/fstab
    if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload || true; fi
fi

tab=$(printf '\t')
while IFS="$tab" read -r source mountpoint; do
    [ -n "$mountpoint" ] || continue
    mkdir -p "$mountpoint"
    current=$(findmnt -n -o SOURCE --mountpoint "$mountpoint" 2>/dev/null || true)
    if [ "$current" != "$source" ]; then
        if [ -n "$current" ]; then
            log "$mountpoint shows $current: unmounting"
            umount "$mountpoint"
        fi
        log "mounting $source on $mountpoint"
        mount "$mountpoint"
    fi
    current=$(findmnt -n -o SOURCE --mountpoint "$mountpoint" 2>/dev/null || true)
    if [ "$current" != "$source" ]; then
        echo "volumes: $mountpoint shows '${current:-nothing}' after mounting, not $source" >&2
        exit 1
    fi
    log "$mountpoint: $source mounted"
done < volumes.list

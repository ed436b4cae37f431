#!/bin/sh
# Phoenix feature: base_setup — what every guest needs (Debian/Ubuntu guests).
#
# Packages (ca-certificates curl locales tzdata iproute2 ...), a UTF-8 locale and the
# timezone from the hypervisor config (PHOENIX_TIMEZONE). Idempotent: every part checks
# before it acts; when everything is in place it touches nothing and runs no apt-get.
#
# Environment: PHOENIX_TIMEZONE (default UTC), PHOENIX_LOCALE (default en_US.UTF-8),
#              PHOENIX_BASE_PACKAGES (space separated, replaces the default list).
set -eu

TZ_NAME="${PHOENIX_TIMEZONE:-UTC}"
LOCALE_NAME="${PHOENIX_LOCALE:-en_US.UTF-8}"
PACKAGES="${PHOENIX_BASE_PACKAGES:-ca-certificates curl locales tzdata iproute2 procps less gnupg}"

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

log() { printf 'base_setup: %s\n' "$*"; }

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "base_setup: this recipe needs a Debian-based guest (dpkg and apt-get)" >&2
    exit 2
fi

# --- packages -------------------------------------------------------------------------
missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing="$missing $pkg"
    fi
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt_opts="-o Acquire::Retries=3 -o Dpkg::Use-Pty=0"
    # shellcheck disable=SC2086
    apt-get $apt_opts update -q
    # shellcheck disable=SC2086
    apt-get $apt_opts install -y -q --no-install-recommends $missing
else
    log "packages already installed"
fi

# --- locale ---------------------------------------------------------------------------
charset="${LOCALE_NAME#*.}"
[ "$charset" = "$LOCALE_NAME" ] && charset="UTF-8"
gen_line="$LOCALE_NAME $charset"
normal=$(printf '%s' "$LOCALE_NAME" | tr 'A-Z' 'a-z' | sed 's/utf-8/utf8/')
if locale -a 2>/dev/null | tr 'A-Z' 'a-z' | grep -qx "$normal"; then
    log "locale $LOCALE_NAME already generated"
else
    log "generating locale $LOCALE_NAME"
    touch /etc/locale.gen
    if grep -q "^# *$gen_line\$" /etc/locale.gen; then
        sed -i "s/^# *$gen_line\$/$gen_line/" /etc/locale.gen
    elif ! grep -qx "$gen_line" /etc/locale.gen; then
        printf '%s\n' "$gen_line" >> /etc/locale.gen
    fi
    locale-gen
fi
wanted_default="LANG=$LOCALE_NAME"
if [ "$(cat /etc/default/locale 2>/dev/null || true)" != "$wanted_default" ]; then
    log "default locale -> $LOCALE_NAME"
    printf '%s\n' "$wanted_default" > /etc/default/locale
fi

# --- timezone -------------------------------------------------------------------------
zone_file="/usr/share/zoneinfo/$TZ_NAME"
case "$TZ_NAME" in
    *..*|/*) echo "base_setup: invalid timezone '$TZ_NAME'" >&2; exit 2 ;;
esac
if [ ! -f "$zone_file" ]; then
    echo "base_setup: unknown timezone '$TZ_NAME' (no $zone_file)" >&2
    exit 2
fi
current_zone=$(cat /etc/timezone 2>/dev/null || true)
current_link=$(readlink /etc/localtime 2>/dev/null || true)
if [ "$current_zone" = "$TZ_NAME" ] && [ "$current_link" = "$zone_file" ]; then
    log "timezone already $TZ_NAME"
else
    log "timezone -> $TZ_NAME"
    ln -sf "$zone_file" /etc/localtime
    printf '%s\n' "$TZ_NAME" > /etc/timezone
fi

log "done"

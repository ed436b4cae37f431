#!/bin/bash
# Phoenix gateway setup: runs inside the gateway guest, as root, from /tmp/phoenix_run.
#
# Bundle layout (next to this script):
#   tree/         the relocatable nginx tree rendered by Phoenix (nginx.conf at its root)
#   system-ssl/   compatibility mode only: certificates the hand-written sites name under
#                 /etc/nginx/ssl (installed only when they differ)
#   gateway.env   PHOENIX_GATEWAY_MODE, PHOENIX_GATEWAY_CONFIG, PHOENIX_GATEWAY_HEALTH_PORT,
#                 PHOENIX_GATEWAY_METRICS_DIR, PHOENIX_GATEWAY_WORKER_USER
#
# Steps: install nginx + njs if missing (no package index refresh when installed); stage
# the tree beside the live one ($ROOT/releases/...); link its sites; `nginx -t` the staged
# tree; on failure keep the live config and exit non-zero with nginx's message; on success
# switch the `live` symlink atomically, enable nginx, reload (or start) it and check
# /phoenix/health reports this config (rolling back if it does not). A bundle identical
# to the live tree changes nothing and does not reload.
#
# Overridable for tests on a host (defaults are for the guest):
#   PHOENIX_GATEWAY_ROOT (/etc/nginx/phoenix)  PHOENIX_NGINX_BIN (/usr/sbin/nginx)
#   PHOENIX_SERVICE (systemd|direct)  PHOENIX_NGINX_GLOBALS (extra -g, e.g. "pid ...;")
#   PHOENIX_PID_FILE (/run/nginx.pid)  PHOENIX_SKIP_INSTALL (0|1)
#   PHOENIX_SYSTEM_SSL_DIR (/etc/nginx/ssl)  PHOENIX_DEFAULT_SITE (/etc/nginx/sites-enabled/default)
set -euo pipefail

RUN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -f "$RUN_DIR/gateway.env" ]]; then
    # shellcheck disable=SC1091
    source "$RUN_DIR/gateway.env"
fi
MODE="${PHOENIX_GATEWAY_MODE:-derived}"
CONFIG_ID="${PHOENIX_GATEWAY_CONFIG:-}"
HEALTH_PORT="${PHOENIX_GATEWAY_HEALTH_PORT:-80}"
METRICS_DIR="${PHOENIX_GATEWAY_METRICS_DIR:-/var/lib/phoenix-gateway}"
WORKER_USER="${PHOENIX_GATEWAY_WORKER_USER:-www-data}"
ROOT="${PHOENIX_GATEWAY_ROOT:-/etc/nginx/phoenix}"
NGINX="${PHOENIX_NGINX_BIN:-/usr/sbin/nginx}"
SERVICE="${PHOENIX_SERVICE:-systemd}"
GLOBALS="${PHOENIX_NGINX_GLOBALS:-}"
PID_FILE="${PHOENIX_PID_FILE:-/run/nginx.pid}"
SKIP_INSTALL="${PHOENIX_SKIP_INSTALL:-0}"
SYSTEM_SSL_DIR="${PHOENIX_SYSTEM_SSL_DIR:-/etc/nginx/ssl}"
DEFAULT_SITE="${PHOENIX_DEFAULT_SITE:-/etc/nginx/sites-enabled/default}"
DROPIN_DIR="/etc/systemd/system/nginx.service.d"
LIVE="$ROOT/live"

log() { echo "phoenix-gateway: $*"; }
die() { echo "phoenix-gateway: error: $*" >&2; exit 1; }

[[ -f "$RUN_DIR/tree/nginx.conf" ]] || die "bundle has no tree/nginx.conf in $RUN_DIR"

nginx_args() {  # nginx_args <conf>: argv for nginx with the global overrides
    local conf="$1"
    NGX=("$NGINX" -c "$conf")
    if [[ -n "$GLOBALS" ]]; then NGX+=(-g "$GLOBALS"); fi
}

install_packages() {
    local missing=() pkg
    for pkg in nginx libnginx-mod-http-js; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "nginx and njs already installed"
        return
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_system_ssl() {  # compatibility mode: certificates at the paths the sites name
    [[ -d "$RUN_DIR/system-ssl" ]] || return 0
    install -d -m 0755 "$SYSTEM_SSL_DIR"
    local src name mode
    for src in "$RUN_DIR"/system-ssl/*; do
        [[ -f "$src" ]] || continue
        name="$(basename "$src")"
        if cmp -s "$src" "$SYSTEM_SSL_DIR/$name"; then continue; fi
        mode=0644
        [[ "$name" == *.key ]] && mode=0600
        install -m "$mode" "$src" "$SYSTEM_SSL_DIR/.$name.new"
        mv -f "$SYSTEM_SSL_DIR/.$name.new" "$SYSTEM_SSL_DIR/$name"
        log "installed $SYSTEM_SSL_DIR/$name"
    done
}

unchanged() {  # the live tree already is this bundle's tree
    [[ -L "$LIVE" && -d "$LIVE/" ]] || return 1
    diff -r -q -x sites-enabled "$RUN_DIR/tree" "$LIVE/" >/dev/null 2>&1
}

running() {
    if [[ "$SERVICE" == systemd ]]; then
        systemctl is-active --quiet nginx
    else
        [[ -s "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
    fi
}

health() {  # health <expected config id>: GET /phoenix/health over bash's /dev/tcp
    local want="$1" reply
    reply="$(
        exec 3<>"/dev/tcp/127.0.0.1/$HEALTH_PORT" || exit 1
        printf 'GET /phoenix/health HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
        timeout 5 cat <&3
    )" 2>/dev/null || return 1
    [[ "$reply" == "HTTP/1."*" 200 "* ]] || return 1
    [[ -z "$want" || "$reply" == *"\"config\":\"$want\""* ]]
}

wait_health() {
    local i
    for ((i = 0; i < 40; i++)); do
        if health "$1"; then return 0; fi
        sleep 0.25
    done
    return 1
}

systemd_dropin() {  # make the nginx unit run the live tree; prints "changed" if it did
    local want tmp
    want="$(cat <<UNIT
# Written by Phoenix: nginx runs the gateway tree switched in at $LIVE.
[Service]
# Room for worker_rlimit_nofile (systemd's default soft limit is 1,024 open files).
LimitNOFILE=65536
ExecStartPre=
ExecStartPre=$NGINX -t -q -c $LIVE/nginx.conf -g 'daemon on; master_process on;'
ExecStart=
ExecStart=$NGINX -c $LIVE/nginx.conf -g 'daemon on; master_process on;'
ExecReload=
ExecReload=$NGINX -c $LIVE/nginx.conf -g 'daemon on; master_process on;' -s reload
UNIT
)"
    mkdir -p "$DROPIN_DIR"
    if [[ -f "$DROPIN_DIR/phoenix.conf" ]] && [[ "$(cat "$DROPIN_DIR/phoenix.conf")" == "$want" ]]; then
        return 0
    fi
    tmp="$DROPIN_DIR/.phoenix.conf.new"
    printf '%s\n' "$want" >"$tmp"
    mv -f "$tmp" "$DROPIN_DIR/phoenix.conf"
    systemctl daemon-reload
    echo changed
}

apply_service() {  # apply_service <restart: 0|1>: reload a running nginx, else start it
    local restart="$1"
    nginx_args "$LIVE/nginx.conf"
    if [[ "$SERVICE" == systemd ]]; then
        systemctl enable --quiet nginx
        if running && [[ "$restart" == 0 ]]; then
            log "reloading nginx"; systemctl reload nginx
        elif running; then
            log "restarting nginx (unit now runs the Phoenix tree)"; systemctl restart nginx
        else
            log "starting nginx"; systemctl start nginx
        fi
    elif running; then
        log "reloading nginx"; "${NGX[@]}" -s reload
    else
        log "starting nginx"; "${NGX[@]}"
    fi
}

# --- 1. packages ---------------------------------------------------------------------
if [[ "$SKIP_INSTALL" != 1 ]]; then install_packages; fi
mkdir -p "$ROOT/releases"
# Where the workers keep the checkpoint of the metrics log's counts (metrics.js).
install -d -m 0755 "$METRICS_DIR"
chown "$WORKER_USER" "$METRICS_DIR"
if [[ "$SERVICE" == systemd && -e "$DEFAULT_SITE" ]]; then
    rm -f "$DEFAULT_SITE"
    log "removed the default site"
fi

# --- 2. nothing to do? -----------------------------------------------------------------
restart=0
if [[ "$SERVICE" == systemd ]] && [[ "$(systemd_dropin)" == changed ]]; then restart=1; fi
if unchanged && [[ "$restart" == 0 ]]; then
    if running; then
        log "gateway config unchanged ($CONFIG_ID); nothing to do"
        if ! wait_health "$CONFIG_ID"; then die "nginx runs but /phoenix/health does not answer"; fi
        exit 0
    fi
    log "gateway config unchanged but nginx is not running"
    apply_service 0
    wait_health "$CONFIG_ID" || die "nginx started but /phoenix/health does not answer"
    exit 0
fi

# --- 3. stage and test -----------------------------------------------------------------
install_system_ssl
stage="$(mktemp -d "$ROOT/releases/.stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp -a "$RUN_DIR/tree/." "$stage/"
if [[ -d "$stage/ssl" ]]; then
    chmod 0700 "$stage/ssl"
    find "$stage/ssl" -name '*.key' -exec chmod 0600 {} +
fi
rm -rf "$stage/sites-enabled"
mkdir -p "$stage/sites-enabled"
for site in "$stage"/sites-available/*; do
    [[ -f "$site" ]] || continue
    ln -s "../sites-available/$(basename "$site")" "$stage/sites-enabled/$(basename "$site")"
done
nginx_args "$stage/nginx.conf"
if ! output="$("${NGX[@]}" -t 2>&1)"; then
    echo "$output" >&2
    die "nginx -t rejected the new gateway config; the live config is unchanged"
fi
log "nginx -t: staged config is valid"

# --- 4. switch, reload, check ----------------------------------------------------------
release="$(date +%Y%m%d%H%M%S)-${CONFIG_ID:-$$}"
mv -T "$stage" "$ROOT/releases/$release"
trap - EXIT
previous="$(readlink "$LIVE" 2>/dev/null || true)"
ln -sfn "releases/$release" "$ROOT/.live.new"
mv -T "$ROOT/.live.new" "$LIVE"
log "switched $LIVE -> releases/$release"
apply_service "$restart"
if ! wait_health "$CONFIG_ID"; then
    if [[ -n "$previous" && -d "$ROOT/$previous" ]]; then
        ln -sfn "$previous" "$ROOT/.live.new"
        mv -T "$ROOT/.live.new" "$LIVE"
        apply_service 0 || true
        die "/phoenix/health did not report the new config; rolled back to $previous"
    fi
    die "/phoenix/health did not answer after the switch"
fi
log "healthy: /phoenix/health reports config $CONFIG_ID"

# --- 5. keep the live and the previous release ---------------------------------------
for old in "$ROOT"/releases/*; do
    name="releases/$(basename "$old")"
    if [[ "$name" != "releases/$release" && "$name" != "$previous" ]]; then rm -rf "$old"; fi
done
exit 0

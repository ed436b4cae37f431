#!/bin/sh
# Phoenix feature: docker — the Docker engine inside the guest (Debian's docker.io).
#
# An unprivileged guest needs the container features nesting=1 and keyctl=1
# (pct_options); a VM whose kernel has AppArmor also gets `apparmor` (Docker needs its
# parser there). With the NVIDIA user-space driver present (feature nvidia first), the
# NVIDIA container toolkit is configured with `no-cgroups = true`, the only mode that works
# in an unprivileged LXC guest (the toolkit itself comes from NVIDIA's repository:
# PHOENIX_NVIDIA_TOOLKIT=1 installs it when that repository is configured in the guest).
# Idempotent: installs only what is missing, restarts nothing that runs.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
log() { printf 'docker: %s\n' "$*"; }

# Docker confines its containers with its `docker-default` AppArmor profile wherever the
# kernel has AppArmor and dockerd is not itself in a container (a VM): it loads the profile
# with apparmor_parser at every `docker run`, and refuses to run a container without it.
# In an LXC guest Docker does not use AppArmor (the guest's own profile applies).
needs_apparmor() {
    enabled=N
    read -r enabled 2>/dev/null \
        < "${PHOENIX_APPARMOR_ENABLED:-/sys/module/apparmor/parameters/enabled}" || true
    [ "$enabled" = Y ] || return 1
    ! systemd-detect-virt --container --quiet 2>/dev/null
}

packages=""
if ! command -v dockerd >/dev/null 2>&1; then
    packages=" docker.io containerd runc iptables ca-certificates"
fi
if needs_apparmor && ! command -v apparmor_parser >/dev/null 2>&1; then
    packages="$packages apparmor"
fi
if [ -n "$packages" ]; then
    command -v apt-get >/dev/null 2>&1 || { echo "docker: needs a Debian-based guest" >&2; exit 2; }
    log "installing$packages"
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 update -q
    # shellcheck disable=SC2086 # a list of package names
    apt-get -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 install -y -q --no-install-recommends \
        $packages
else
    log "docker engine already installed"
fi
systemctl enable --quiet docker.service
systemctl is-active --quiet docker.service || systemctl start docker.service
i=0
until docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge 60 ]; then
        echo "docker: the daemon does not answer (an unprivileged guest needs nesting=1,keyctl=1)" >&2
        journalctl -u docker.service -n 20 --no-pager >&2 || true
        exit 1
    fi
    sleep 1
done

if command -v nvidia-smi >/dev/null 2>&1; then
    if ! command -v nvidia-ctk >/dev/null 2>&1 && [ "${PHOENIX_NVIDIA_TOOLKIT:-0}" = 1 ]; then
        log "installing nvidia-container-toolkit"
        apt-get install -y -q --no-install-recommends nvidia-container-toolkit
    fi
    config=/etc/nvidia-container-runtime/config.toml
    if command -v nvidia-ctk >/dev/null 2>&1; then
        if ! grep -q '^no-cgroups = true' "$config" 2>/dev/null; then
            log "nvidia-container-runtime: no-cgroups = true (unprivileged LXC)"
            nvidia-ctk config --set nvidia-container-cli.no-cgroups=true --in-place
            nvidia-ctk runtime configure --runtime=docker
            systemctl restart docker.service
        fi
    else
        log "nvidia-smi present but no nvidia-container-toolkit: GPU containers unavailable"
    fi
fi
log "done: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

#!/usr/bin/env bash
# Install what Phoenix needs on a Debian 12 host: system packages (apt-get) and a Python
# virtualenv at .venv with Phoenix and its test tools. Idempotent: installs only what is
# missing, and skips the package index refresh when nothing is.
#
# Host services: the packages below ship services Phoenix does not use (nginx on the host,
# lxc-net's own bridge and dnsmasq, lxc autostart). Packages this script installs are
# installed with their services neither started (a temporary policy-rc.d) nor left enabled;
# an already installed package is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  python3 python3-venv python3-pip
  # LXC: the tools, and lxc-templates for the config includes every guest config names
  # (/usr/share/lxc/config/debian.common.conf, debian.userns.conf, nesting.conf)
  lxc lxc-templates debootstrap uidmap nftables iproute2 rsync
  # the gateway: nginx + njs run in the guest; the tests and benches also run them here
  nginx libnginx-mod-http-js openssl curl wrk
  xz-utils zstd ca-certificates
)

# --tests (./run-tests): what only the tests need. Chromium: the gateway's status page is
# checked, and its screenshot taken, in a real headless browser (tests/e2e/test_lab.py).
# njs: the interpreter of the gateway's njs module (same version), which runs router.js
# and metrics.js in the unit tests (tests/unit/gateway/njs.py).
TEST_PACKAGES=(chromium njs)
# --vms (and --tests): the local VM driver. QEMU and qemu-img run the VMs and their qcow2
# disks; the base image is built without loop devices or mounts: a GPT written by sfdisk
# (fdisk), a FAT EFI partition (dosfstools, mtools) holding a grub-mkstandalone EFI binary
# (grub-efi-amd64-bin), booted by UEFI firmware (ovmf); the cloud-init seed is a FAT image
# labelled CIDATA made with the same tools.
VM_PACKAGES=(qemu-system-x86 qemu-utils ovmf grub-efi-amd64-bin mtools dosfstools fdisk)
for arg in "$@"; do
  case "$arg" in
    --tests) PACKAGES+=("${TEST_PACKAGES[@]}" "${VM_PACKAGES[@]}") ;;
    --vms) PACKAGES+=("${VM_PACKAGES[@]}") ;;
    *) echo "usage: scripts/install-deps.sh [--tests] [--vms]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (Phoenix creates containers, bridges and firewall rules)" >&2
  exit 1
fi

# A Proxmox VE node: Debian's lxc conflicts with Proxmox's lxc-pve, and apt would offer to
# remove Proxmox itself to install it. Phoenix drives such a node with pct/pvesh and needs
# none of the local driver's packages there.
for pve in proxmox-ve pve-manager; do
  if dpkg-query -W -f='${Status}' "$pve" 2>/dev/null | grep -q "install ok installed"; then
    echo "error: this host is a Proxmox VE node ($pve is installed): the local LXC driver's" \
      "packages (Debian's lxc, nginx...) conflict with Proxmox's own and would make apt" \
      "remove Proxmox. Install Phoenix alone instead: scripts/install-proxmox.sh" >&2
    exit 1
  fi
done

enabled_units() {
  find /etc/systemd/system -type l -name '*.service' -path '*.wants/*' -printf '%f\n' 2>/dev/null | sort -u
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]} (log: /var/log/phoenix-install-deps.log)"
  before=$(enabled_units)
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# phoenix install-deps: do not start services during install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
  log=/var/log/phoenix-install-deps.log
  if ! { apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
       >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: apt-get failed (full log: $log)" >&2
    exit 1
  fi
  [ "$own_policy" = 1 ] && rm -f "$policy"
  own_policy=0
  # Services the new packages enabled: Phoenix needs none of them on the host.
  new_units=$(comm -13 <(printf '%s\n' "$before") <(enabled_units))
  for unit in $new_units; do
    systemctl disable --quiet "$unit" 2>/dev/null || true
    echo "    (disabled host service $unit, enabled by the install; Phoenix does not use it)"
  done
  rm -f "$log"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.phoenix-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing Phoenix and test tools into .venv"
  # No pip cache: nothing is left outside .venv. (This machine's pip config may name extra
  # package folders; their warnings are noise.)
  export PIP_NO_CACHE_DIR=1
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import phoenix, typer, pydantic, crossplane, cryptography, httpx, filelock"
  touch "$stamp"
fi

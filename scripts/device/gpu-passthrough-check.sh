#!/bin/sh
# Run on a machine with an NVIDIA GPU: derives GPU passthrough with Phoenix's own code from
# this host's /proc/devices and compares it with the real /dev/nvidia* nodes, then runs the
# nvidia feature's version checks against the real kernel module. Prints OK/FAIL lines.
set -u
cd "$(dirname "$0")/../.."
echo "== host"; head -n 1 /proc/driver/nvidia/version; nvidia-smi -L 2>&1 | head -4
ls -l /dev/nvidia* 2>&1 | head -12
PYTHONPATH=src python3 - <<'PY'
import glob, os, re
from phoenix.drivers import gpu
majors = gpu.char_majors(open("/proc/devices").read())
print("majors:", {k: v for k, v in majors.items() if "nvidia" in k})
indices = sorted(int(m.group(1)) for p in glob.glob("/dev/nvidia*")
                 if (m := re.fullmatch(r"/dev/nvidia(\d+)", p)))
bad = 0
for d in gpu.devices(indices, majors):
    st = os.stat(d.path)
    real = (os.major(st.st_rdev), os.minor(st.st_rdev))
    ok = real == (d.major, d.minor)
    bad += not ok
    print("OK  " if ok else "FAIL", d.path, "derived", (d.major, d.minor), "real", real, gpu.cgroup_rule(d))
print("RESULT devices:", "OK" if bad == 0 else f"FAIL ({bad})")
PY
v=$(head -n 1 /proc/driver/nvidia/version | grep -o '[0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)\?' | head -n 1)
root=$(mktemp -d)
echo "== nvidia feature: wrong runfile version must be refused (host $v)"
PHOENIX_NVIDIA_ROOT=$root PHOENIX_NVIDIA_RUNFILE_URL=http://127.0.0.1:9/NVIDIA-Linux-x86_64-1.2.3.run \
  sh src/phoenix/recipes/scripts/feature_nvidia.sh; echo "rc=$? (want 2)"
echo "== nvidia feature: the host's own version is accepted (then it would download)"
PHOENIX_NVIDIA_ROOT=$root PHOENIX_NVIDIA_RUNFILE_URL=http://127.0.0.1:9/NVIDIA-Linux-x86_64-$v.run \
  PHOENIX_NVIDIA_DRIVER_VERSION=$v sh src/phoenix/recipes/scripts/feature_nvidia.sh; echo "rc=$? (want non-2: no network)"

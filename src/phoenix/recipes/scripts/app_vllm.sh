#!/bin/sh
# Phoenix application: vLLM's OpenAI-compatible server as the systemd unit phoenix-vllm.
#
# vllm-service.json (made by Phoenix from vllm_engine_config: argv, port, served name) is
# turned into the unit by Python with systemd's quoting, never by this shell. The service
# restarts when its unit changed (the original tool's `enable --now` never did) and is
# healthy when /health answers and /v1/models lists the served name.
# PHOENIX_VLLM_START_TIMEOUT: seconds to wait for the model to load (default 1200).
set -eu
cd "$(dirname "$0")"
VENV=/opt/vllm
UNIT=/etc/systemd/system/phoenix-vllm.service

if [ ! -x "$VENV/bin/python" ]; then
    echo "vllm: $VENV has no Python: list feature 'vllm' in this guest's features" >&2
    exit 2
fi

"$VENV/bin/python" - <<'PY'
import json

service = json.load(open("vllm-service.json"))


def quote(arg: str) -> str:
    """One systemd ExecStart argument, passed as written: double-quoted, \\ and " escaped,
    % doubled (specifiers) and $ doubled (systemd expands $VAR and ${VAR} in ExecStart)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


argv = ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server", *service["argv"]]
unit = f"""[Unit]
Description=vLLM OpenAI-compatible server (Phoenix)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={" ".join(quote(a) for a in argv)}
Restart=on-failure
RestartSec=5
Environment=HF_HOME=/opt/vllm/hf

[Install]
WantedBy=multi-user.target
"""
open("unit.new", "w").write(unit)
open("port", "w").write(str(int(service["port"])))
open("served", "w").write(str(service["served_model_name"]))
PY
port=$(cat port)

changed=0
if ! cmp -s unit.new "$UNIT"; then
    install -m 0644 unit.new "$UNIT"
    changed=1
fi
systemctl daemon-reload
systemctl enable --quiet phoenix-vllm.service
if [ "$changed" = 1 ]; then
    echo "vllm: unit changed: (re)starting phoenix-vllm"
    systemctl restart phoenix-vllm.service
elif ! systemctl is-active --quiet phoenix-vllm.service; then
    systemctl start phoenix-vllm.service
fi

deadline=$(( $(date +%s) + ${PHOENIX_VLLM_START_TIMEOUT:-1200} ))
until "$VENV/bin/python" - "$port" <<'PY' 2>/dev/null
import json, sys, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
urllib.request.urlopen(base + "/health", timeout=5)
listed = json.load(urllib.request.urlopen(base + "/v1/models", timeout=5))
served = open("served").read()
sys.exit(0 if not served or served in [m.get("id") for m in listed.get("data", [])] else 1)
PY
do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "vllm: not healthy on port $port (/health, /v1/models listing the model)" >&2
        systemctl status --no-pager phoenix-vllm.service >&2 || true
        journalctl -u phoenix-vllm.service -n 30 --no-pager >&2 || true
        exit 1
    fi
    if ! systemctl is-active --quiet phoenix-vllm.service \
        && [ "$(systemctl show -p Result --value phoenix-vllm.service)" != "success" ]; then
        echo "vllm: phoenix-vllm failed to run" >&2
        journalctl -u phoenix-vllm.service -n 30 --no-pager >&2 || true
        exit 1
    fi
    sleep 1
done
echo "vllm: serving on port $port"

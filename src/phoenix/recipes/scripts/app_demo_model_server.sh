#!/bin/sh
# DEMO application: runs Phoenix's stand-in OpenAI-compatible model server (not a model)
# as a systemd service, serving the model named in the guest's vllm_engine_config (or the
# flat vllm_served_model_name/vllm_port keys). Idempotent: restarts only on a change.
# Inventory values never pass through this shell: python3 reads guest.json and writes the
# unit file with systemd's own quoting.
set -eu
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive

if ! python3 -c "import json, http.server" >/dev/null 2>&1; then
    echo "installing python3"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 >/dev/null
fi

install -d -m 0755 /opt/phoenix-demo
changed=0
if ! cmp -s model_server.py /opt/phoenix-demo/model_server.py; then
    install -m 0644 model_server.py /opt/phoenix-demo/model_server.py
    changed=1
fi

python3 - <<'PY'
import json

entry = json.load(open("guest.json"))
server = (entry.get("vllm_engine_config") or {}).get("ServerConfig") or {}
model = str(server.get("served_model_name") or entry.get("vllm_served_model_name") or "demo")
port = int(server.get("port") or entry.get("vllm_port") or 8000)


def quote(arg: str) -> str:
    """One systemd ExecStart argument, passed as written: double-quoted, \\ and " escaped,
    % doubled (specifiers) and $ doubled (systemd expands $VAR and ${VAR} in ExecStart)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


argv = ["/usr/bin/python3", "/opt/phoenix-demo/model_server.py", "--host", "0.0.0.0",
        "--port", str(port), "--model", model]
unit = f"""[Unit]
Description=Phoenix DEMO model server (a stand-in, not a model)
After=network-online.target

[Service]
ExecStart={" ".join(quote(a) for a in argv)} --backend-id %H
Restart=always
DynamicUser=yes

[Install]
WantedBy=multi-user.target
"""
open("unit.new", "w").write(unit)
open("port", "w").write(str(port))
PY
port=$(cat port)

unit=/etc/systemd/system/phoenix-demo-model-server.service
if ! cmp -s unit.new "$unit"; then
    install -m 0644 unit.new "$unit"
    changed=1
fi

systemctl daemon-reload
systemctl enable --quiet phoenix-demo-model-server.service
if [ "$changed" = 1 ] || ! systemctl is-active --quiet phoenix-demo-model-server.service; then
    systemctl restart phoenix-demo-model-server.service
fi

# Ready when it answers /health (poll with a deadline).
i=0
until python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://127.0.0.1:$port/health" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 100 ]; then
        echo "demo model server did not answer on port $port" >&2
        systemctl status --no-pager phoenix-demo-model-server.service >&2 || true
        exit 1
    fi
    sleep 0.2
done
echo "demo model server is up on port $port"

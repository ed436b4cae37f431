#!/bin/sh
# Phoenix application: Ollama as the systemd unit phoenix-ollama, listening on
# 0.0.0.0:<ollama_port> (OLLAMA_HOST), restarted only when its unit changed, healthy when
# /api/tags answers; the models the inventory names are pulled when missing (never removed).
# Phoenix ships the port (ollama-port) and the models one a line (ollama-models.txt; the
# loader refuses line breaks in names), so this shell parses no JSON.
set -eu
cd "$(dirname "$0")"
UNIT=/etc/systemd/system/phoenix-ollama.service
[ -x /opt/ollama/bin/ollama ] || {
    echo "ollama: /opt/ollama/bin/ollama is missing: list feature 'ollama' in features" >&2
    exit 2
}
port=$(cat ollama-port)
case "$port" in ''|*[!0-9]*) echo "ollama: bad port '$port'" >&2; exit 2 ;; esac
cat > unit.new <<UNIT
[Unit]
Description=Ollama (Phoenix)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/opt/ollama/bin/ollama serve
Environment=OLLAMA_HOST=0.0.0.0:$port
Environment=HOME=/var/lib/ollama
Environment=OLLAMA_MODELS=/var/lib/ollama/models
Restart=on-failure
RestartSec=3

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p /var/lib/ollama/models
changed=0
if ! cmp -s unit.new "$UNIT"; then
    install -m 0644 unit.new "$UNIT"
    changed=1
fi
systemctl daemon-reload
systemctl enable --quiet phoenix-ollama.service
if [ "$changed" = 1 ]; then
    systemctl restart phoenix-ollama.service
elif ! systemctl is-active --quiet phoenix-ollama.service; then
    systemctl start phoenix-ollama.service
fi
i=0
until curl -fsS -o tags.json "http://127.0.0.1:$port/api/tags" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 120 ]; then
        echo "ollama: /api/tags did not answer on port $port" >&2
        journalctl -u phoenix-ollama.service -n 20 --no-pager >&2 || true
        exit 1
    fi
    sleep 0.5
done
while IFS= read -r model; do
    [ -n "$model" ] || continue
    if grep -qF "\"$model\"" tags.json || grep -qF "\"$model:latest\"" tags.json; then
        echo "ollama: $model already pulled"
    else
        echo "ollama: pulling $model"
        OLLAMA_HOST="127.0.0.1:$port" /opt/ollama/bin/ollama pull "$model"
    fi
done < ollama-models.txt
echo "ollama: serving on port $port"

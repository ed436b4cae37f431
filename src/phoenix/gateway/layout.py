"""What every part of the rendered gateway shares: where things live on the host
(`Layout`), the rendered tree (`RenderedGateway`), the packaged assets, the file header."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

Mode = Literal["derived", "compat"]
# In the log dir, so Debian's logrotate keeps it bounded (a rotation restarts the counts).
METRICS_LOG = "phoenix-requests.log"
HEADER = "Rendered by Phoenix from the inventory. Do not edit: re-render instead."


@dataclass(frozen=True)
class Layout:
    """Host-specific bits of the main config (the defaults are for the Debian guest)."""

    user: str | None = "www-data"
    worker_processes: str = "auto"
    log_dir: str = "/var/log/nginx"
    access_log: bool = True
    runtime_dir: str | None = None
    listen_address: str | None = None
    js_module: str = "/usr/lib/nginx/modules/ngx_http_js_module.so"
    # Where the workers keep the metrics checkpoint (owned by their user).
    metrics_dir: str = "/var/lib/phoenix-gateway"

    @property
    def worker_user(self) -> str:
        return self.user or "nobody"  # nginx's own default when the master runs as root

    def listen(self, port: int) -> str:
        return f"{self.listen_address}:{port}" if self.listen_address else str(port)


@dataclass
class RenderedGateway:
    """The tree (relative path -> bytes) plus what the setup script needs to know."""

    mode: Mode
    files: dict[str, bytes]
    health_port: int
    config_id: str
    system_ssl: dict[str, bytes] = field(default_factory=dict)
    route_count: int = 0
    layout: Layout = field(default_factory=lambda: Layout())

    def env(self) -> dict[str, str]:
        return {
            "PHOENIX_GATEWAY_MODE": self.mode,
            "PHOENIX_GATEWAY_CONFIG": self.config_id,
            "PHOENIX_GATEWAY_HEALTH_PORT": str(self.health_port),
            "PHOENIX_GATEWAY_METRICS_DIR": self.layout.metrics_dir,
            "PHOENIX_GATEWAY_WORKER_USER": self.layout.worker_user,
        }


def asset(name: str) -> bytes:
    return (resources.files("phoenix.gateway") / "assets" / name).read_bytes()

"""Compatibility mode: the operator's hand-written sites, shipped as they are."""

from __future__ import annotations

from pathlib import Path

from phoenix.errors import GatewayError
from phoenix.gateway.layout import HEADER, Layout, RenderedGateway
from phoenix.gateway.nginx import blk, build, d, parse_file
from phoenix.gateway.render import finish_tree, http_conf, main_conf
from phoenix.gateway.tls import LocalCA

COMPAT_HEALTH_PORT = 8099


def compat_sites(nginx_dir: Path) -> list[Path]:
    """The operator's hand-written sites (`<config dir>/nginx/sites-available/*`)."""
    folder = nginx_dir / "sites-available"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _compat_certs(sites: list[Path]) -> dict[str, list[str]]:
    """Absolute certificate path -> server names of the servers that use it."""
    wanted: dict[str, list[str]] = {}
    for site in sites:
        directives, _ = parse_file(site)
        for top in directives:
            for server in (x for x in top.walk() if x.name == "server"):
                cert = server.first_arg("ssl_certificate")
                if cert is None:
                    continue
                names = [
                    a
                    for sn in server.children("server_name")
                    for a in sn.args
                    if a not in ("_", "") and not a.startswith("~")
                ]
                wanted.setdefault(cert, [])
                wanted[cert] += [n for n in names if n not in wanted[cert]]
    return wanted


def render_compat(
    nginx_dir: Path,
    ca: LocalCA,
    layout: Layout | None = None,
    system_ssl_dir: str = "/etc/nginx/ssl",
) -> RenderedGateway:
    """The operator's hand-written sites, shipped as they are, with certificates (with
    SANs, from the local CA) at the paths they name under `system_ssl_dir`."""
    layout = layout or Layout()
    sites = compat_sites(nginx_dir)
    if not sites:
        raise GatewayError(f"{nginx_dir}/sites-available has no sites")
    files: dict[str, bytes] = {
        "nginx.conf": main_conf(layout).encode(),
        "conf.d/phoenix-http.conf": http_conf(layout, 16).encode(),
        "conf.d/phoenix-health.conf": build(
            [
                blk(
                    "server",
                    body=[
                        d("listen", f"127.0.0.1:{COMPAT_HEALTH_PORT}"),
                        blk(
                            "location",
                            "=",
                            "/phoenix/health",
                            body=[d("js_content", "router.health")],
                        ),
                    ],
                )
            ],
            HEADER,
        ).encode(),
    }
    for site in sites:
        files[f"sites-available/{site.name}"] = site.read_bytes()
    scripts = nginx_dir / "scripts"
    if scripts.is_dir():
        for script in sorted(scripts.iterdir()):
            if script.is_file():
                files[f"scripts/{script.name}"] = script.read_bytes()
    system_ssl: dict[str, bytes] = {}
    prefix = system_ssl_dir.rstrip("/") + "/"
    for cert_path, names in sorted(_compat_certs(sites).items()):
        if not cert_path.startswith(prefix) or not cert_path.endswith(".crt") or not names:
            continue
        base = cert_path[len(prefix) : -len(".crt")]
        if "/" in base:
            continue
        pair = ca.leaf(f"compat-{base}", names)
        system_ssl[f"{base}.crt"] = pair.cert_pem
        system_ssl[f"{base}.key"] = pair.key_pem
    return finish_tree(
        "compat", files, None, ca, COMPAT_HEALTH_PORT, system_ssl, len(sites), layout
    )

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from phoenix.gateway.bundle import render_gateway
from phoenix.gateway.compat import compat_sites
from phoenix.gateway.lint import lint_paths, lint_tree
from phoenix.gateway.render import write_tree
from phoenix.inventory import Inventory, load_inventory
from tests.unit.gateway.conftest import FIXTURES


def _site(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def codes(findings: list[Any]) -> list[str]:
    return [f.code for f in findings]


def test_conflicting_server_names_across_files(tmp_path: Path) -> None:
    a = _site(tmp_path, "a", "server {\n listen 80;\n server_name x.test;\n}\n")
    b = _site(
        tmp_path,
        "b",
        "\nserver {\n listen 80;\n server_name y.test x.test;\n}\n"
        "server {\n listen 443 ssl;\n server_name x.test;\n}\n",
    )
    findings = lint_paths([a, b], root=tmp_path)
    conflicts = [f for f in findings if f.code == "conflicting-server-name"]
    assert len(conflicts) == 1
    assert conflicts[0].render().startswith("b:2: error: server_name 'x.test' on *:80")
    assert "a:1" in conflicts[0].message


def test_duplicate_upstream_and_unknown_directive(tmp_path: Path) -> None:
    a = _site(tmp_path, "a", "upstream u { server 127.0.0.1:1; }\n-\n# comment\nserver {}\n")
    b = _site(tmp_path, "b", "upstream u { server 127.0.0.1:2; }\n")
    findings = lint_paths([a, b], root=tmp_path)
    assert "duplicate-upstream" in codes(findings)
    unknown = [f for f in findings if f.code == "unknown-directive"]
    assert unknown and unknown[0].line == 2 and unknown[0].fatal


def test_locations_that_never_match(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        "s",
        """server {
    listen 80;
    location /a { return 200; }
    location /a { return 201; }
    location ^~ /static/ { return 200; }
    location ~ ^/static/img/.*\\.png$ { return 200; }
    location api/ { return 200; }
    location ~ .* { return 200; }
    location ~ \\.php$ { return 200; }
}
server {
    listen 81;
    return 301 https://$host$request_uri;
    location / { return 200; }
}
""",
    )
    findings = lint_paths([site], root=tmp_path)
    lines = {(f.code, f.line) for f in findings}
    assert ("duplicate-location", 4) in lines
    assert ("unreachable-location", 6) in lines  # shadowed by ^~ /static/
    assert ("unreachable-location", 7) in lines  # not starting with /
    assert ("unreachable-location", 9) in lines  # after a match-all regex
    assert ("unreachable-location", 14) in lines  # server returns first


def test_handlers_upgrade_and_old_tls(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        "s",
        """server {
    ssl_protocols TLSv1 TLSv1.2;
    location /v1/ {
        js_content router.route;
        proxy_pass http://x;
        proxy_set_header Connection "upgrade";
    }
}
""",
    )
    assert set(codes(lint_paths([site]))) >= {"conflicting-handlers", "forced-upgrade", "old-tls"}


def test_truncated_file_is_a_parse_error(tmp_path: Path) -> None:
    site = _site(tmp_path, "s", "server { listen 80; }\n-\n")
    (finding,) = lint_paths([site], root=tmp_path)
    assert finding.code == "parse" and finding.fatal and "end of file" in finding.message


def test_clean_site_has_no_findings(tmp_path: Path) -> None:
    site = _site(tmp_path, "s", "server {\n listen 80;\n location / { return 204; }\n}\n")
    assert lint_paths([site]) == []


def test_fixture_sites_report_the_known_bugs() -> None:
    inventory = load_inventory(FIXTURES / "phoenix-etc-seed")
    findings = lint_paths(compat_sites(inventory.nginx_dir), inventory, inventory.config_dir)
    rendered = {f.render() for f in findings}
    assert (
        "nginx/sites-available/vllm_gateway:4: error: unknown directive '-' "
        "(nginx -t rejects it) [unknown-directive]"
    ) in rendered
    conflicts = {(f.file, f.line) for f in findings if f.code == "conflicting-server-name"}
    assert ("nginx/sites-available/vllm_gateway", 117) in conflicts  # n8n.phoenix.local :80
    assert ("nginx/sites-available/vllm_gateway", 157) in conflicts  # portainer :443
    assert ("nginx/sites-available/vllm_gateway", 49) in conflicts  # 10.0.0.153 :80
    assert "forced-upgrade" in codes(findings)
    unknown = {f.message.split()[0] for f in findings if f.code == "unknown-target"}
    assert unknown == {"10.0.0.154", "10.0.0.156", "10.0.0.99"}


def test_rendered_tree_is_clean(
    make_inventory: Callable[[dict[str, Any]], Inventory],
    lab_configs: dict[str, Any],
    tmp_path: Path,
) -> None:
    inventory = make_inventory(lab_configs)
    rendered, _ = render_gateway(inventory, 101, tmp_path / "state", "derived")
    write_tree(rendered, tmp_path / "out")
    findings = lint_tree(tmp_path / "out" / "tree", inventory)
    assert [f.render() for f in findings if f.code != "unknown-target"] == []


def test_listen_with_a_non_ascii_digit_is_a_host_not_a_port(tmp_path: Path) -> None:
    # "²" passes str.isdigit(), but nginx reads `listen ²;` as a host on port 80.
    site = _site(
        tmp_path,
        "s",
        "server {\n listen ²;\n server_name x.test;\n}\n"
        "server {\n listen ²;\n server_name x.test;\n}\n",
    )
    conflicts = [
        f for f in lint_paths([site], root=tmp_path) if f.code == "conflicting-server-name"
    ]
    assert len(conflicts) == 1
    assert "on ²:80 " in conflicts[0].message

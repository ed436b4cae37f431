"""Hostile inputs that validate used to accept and that failed later, or did harm: each is
now refused by validate with a path-precise message, or renders a gateway that the real
`nginx -t` accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.gateway.nginx_t import render_and_check
from tests.unit.inventory.helpers import edit_guest, validate_json

HYP = "phoenix_hypervisor_config.json"


def set_phoenix(config_dir: Path, **settings: Any) -> None:
    path = config_dir / HYP
    data = json.loads(path.read_text())
    data.setdefault("phoenix", {}).update(settings)
    path.write_text(json.dumps(data))


def gateway(config_dir: Path, **block: Any) -> None:
    edit_guest(config_dir, "101", gateway=block)


def errors_at(config_dir: Path, path: str) -> list[str]:
    code, problems, _ = validate_json(config_dir)
    found = [p["message"] for p in problems if p["path"] == path and p["severity"] == "error"]
    assert code == 1 and found, problems
    return found


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("state_dir", "/etc"),
        ("state_dir", "/home"),
        ("lxc_path", "/usr"),
        ("template_cache", "/var/lib"),
        ("state_dir", "/"),
        ("lxc_path", "/etc/phoenix"),
        ("state_dir", "/home/alice"),
        ("state_dir", "/srv/phoenix/../../etc"),
        ("template_cache", "/proc/self"),
    ],
)
def test_system_directories_are_refused_as_phoenix_folders(
    minimal_dir: Path, setting: str, value: str
) -> None:
    """Teardown removes these folders: a system directory is never one of them."""
    set_phoenix(minimal_dir, **{setting: value})
    (message,) = errors_at(minimal_dir, f"phoenix.{setting}")
    assert "system" in message or "home" in message or "plainly" in message


def test_phoenix_folders_inside_each_other_are_refused(minimal_dir: Path) -> None:
    set_phoenix(minimal_dir, lxc_path="/var/lib/phoenix/lab", state_dir="/var/lib/phoenix/lab/st")
    (message,) = errors_at(minimal_dir, "phoenix")
    assert "lxc_path (/var/lib/phoenix/lab) and state_dir (/var/lib/phoenix/lab/st) overlap" in (
        message
    )


def test_own_folders_validate(minimal_dir: Path) -> None:
    set_phoenix(
        minimal_dir,
        state_dir="/srv/phoenix/state",
        lxc_path="/home/alice/phoenix/lxc",
        template_cache="/var/cache/phoenix/templates",
    )
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0, problems


@pytest.mark.parametrize(
    "url",
    [
        "http://$http_x_up/",  # an open proxy: the client names the backend
        "http://$host",
        "http://10.0.0.5:99999/",
        "http://10.0.0.5:0/",
        "http://user:pw@10.0.0.5/",
        "http://10.0.0.5/base\\",  # an unterminated quote in nginx
        "http://10.0.0.5/a;b",
        "http://10.0.0.5/a{b}",
        "http://10.0.0.5/?q=$arg_x",
        "http://10.0.0.5/#x",
        "http://10.0.0.5/a b",
        'http://10.0.0.5/"',
        "http://-bad-.example/",
        "http://[::g]/",
        "ftp://10.0.0.5/",
    ],
)
def test_route_urls_are_literal(minimal_dir: Path, url: str) -> None:
    gateway(minimal_dir, path_routes=[{"path": "/x/", "url": url}])
    (message,) = errors_at(minimal_dir, "lxc_configs.101.gateway.path_routes[0].url")
    assert "literal URL" in message or "port" in message or "IPv6" in message or "host" in message
    gateway(minimal_dir, host_routes=[{"hostname": "h.lab.test", "url": url, "tls": False}])
    errors_at(minimal_dir, "lxc_configs.101.gateway.host_routes[0].url")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5",
        "http://10.0.0.5:8080/",
        "https://localhost:8443/base/v1",
        "http://[fd00::5]:8080/a-b_c.d~e/",
    ],
)
def test_literal_route_urls_validate_and_pass_nginx(minimal_dir: Path, url: str) -> None:
    gateway(
        minimal_dir,
        path_routes=[
            {"path": "/x/", "url": url},
            {"path": "/k/", "url": url, "strip_prefix": False},
        ],
        host_routes=[{"hostname": "h.lab.test", "url": url, "tls": False}],
    )
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0, problems
    assert render_and_check(minimal_dir) is None

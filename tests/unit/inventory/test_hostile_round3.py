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


def served(config_dir: Path) -> None:
    edit_guest(config_dir, "102", vllm_engine_config={"ServerConfig": {"served_model_name": "m"}})


@pytest.mark.parametrize(
    ("paths", "bad"),
    [
        (["/x", "/x/"], 1),  # one location once normalised
        (["/"], 0),
        (["/v1/"], 0),
        (["/v1/models"], 0),
        (["/v1/things/"], 0),
        (["/phoenix/health/"], 0),
        (["/metrics"], 0),
        (["/tokenize/"], 0),
        (["/a//b/"], 0),
        (["/a/../b/"], 0),
    ],
)
def test_path_routes_that_nginx_would_refuse_are_refused(
    minimal_dir: Path, paths: list[str], bad: int
) -> None:
    """Each used to validate and then fail `nginx -t` with "duplicate location" (or never
    match, for a path nginx normalises)."""
    routes = [{"path": p, "url": "http://127.0.0.1:9"} for p in paths]
    gateway(minimal_dir, path_routes=routes)
    errors_at(minimal_dir, f"lxc_configs.101.gateway.path_routes[{bad}].path")


@pytest.mark.parametrize(
    "names",
    [
        ["default"],
        ["include"],
        ["hostnames", "volatile"],
        ["k" * 48, "j" * 48],
        [f"key-{i:03d}-" + "n" * 38 for i in range(300)],  # many, long, each with its rpm
    ],
)
def test_key_names_are_data_to_nginx_at_any_length_and_count(
    minimal_dir: Path, names: list[str]
) -> None:
    served(minimal_dir)
    keys = [
        {"name": n, "sha256": f"{i:064x}", "rpm": 1 + i % 7, "models": ["m"] if i % 2 else ["*"]}
        for i, n in enumerate(names)
    ]
    gateway(minimal_dir, api_keys=keys)
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0, problems
    assert render_and_check(minimal_dir) is None


def test_a_key_of_one_request_a_minute_passes_nginx(minimal_dir: Path) -> None:
    """`burst=0` is refused by nginx."""
    served(minimal_dir)
    gateway(minimal_dir, api_keys=[{"name": "slow", "sha256": "a" * 64, "rpm": 1}])
    assert render_and_check(minimal_dir) is None


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"http_port": 8080, "https_port": 8080}, "https_port"),
        (
            {
                "tls": False,
                "http_port": 80,
                "https_port": 80,
                "host_routes": [{"hostname": "h.lab", "url": "http://127.0.0.1:9"}],
            },
            "https_port",
        ),
        (
            {
                "hostnames": ["api.lab.test"],
                "host_routes": [{"hostname": "API.Lab.Test", "url": "http://127.0.0.1:9"}],
            },
            "host_routes[0].hostname",
        ),
        (
            {"host_routes": [{"hostname": "10.0.0.153", "url": "http://127.0.0.1:9"}]},
            "host_routes[0].hostname",
        ),
    ],
)
def test_ports_and_names_nginx_would_refuse_or_ignore(
    minimal_dir: Path, block: dict[str, Any], where: str
) -> None:
    gateway(minimal_dir, **block)
    errors_at(minimal_dir, f"lxc_configs.101.gateway.{where}")


def test_long_names_go_in_the_certificate_and_pass_nginx(minimal_dir: Path) -> None:
    """Over 64 characters, a name cannot be the certificate's CN: it used to raise."""
    long_api = "a" * 60 + ".lab.test"
    long_host = ".".join(["b" * 60] * 4)
    gateway(
        minimal_dir,
        hostnames=[long_api],
        host_routes=[{"hostname": long_host, "url": "http://127.0.0.1:9"}],
    )
    code, problems, _ = validate_json(minimal_dir)
    assert code == 0, problems
    assert render_and_check(minimal_dir) is None


def test_a_host_route_named_like_the_api_certificate_keeps_its_own(minimal_dir: Path) -> None:
    from cryptography import x509

    from phoenix.gateway.bundle import render_gateway
    from phoenix.inventory import load_inventory

    gateway(
        minimal_dir,
        hostnames=["api.lab.test"],
        host_routes=[{"hostname": "phoenix-api", "url": "http://127.0.0.1:9"}],
    )
    rendered, _ = render_gateway(load_inventory(minimal_dir), 101, None, "derived")
    api = x509.load_pem_x509_certificate(rendered.files["ssl/phoenix-api.crt"])
    sans = api.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "api.lab.test" in sans.get_values_for_type(x509.DNSName)
    assert render_and_check(minimal_dir) is None


def test_every_location_of_the_api_server_is_reserved_from_path_routes(minimal_dir: Path) -> None:
    """The reserved list in the inventory model and the rendered API server agree: a new
    gateway endpoint that path routes could collide with fails here."""
    from phoenix.gateway.bundle import render_gateway
    from phoenix.gateway.nginx import parse_file
    from phoenix.inventory import load_inventory
    from phoenix.inventory.checks.gateway_names import location_of
    from phoenix.inventory.models.gateway import reserved_path_reason

    served(minimal_dir)
    gateway(minimal_dir, api_keys=[{"name": "k", "sha256": "a" * 64}])
    rendered, _ = render_gateway(load_inventory(minimal_dir), 101, None, "derived")
    site = minimal_dir / "api-site"
    site.write_bytes(rendered.files["sites-available/phoenix-api"])
    directives, errors = parse_file(site)
    assert errors == []
    names = {
        x.args[-1]
        for top in directives
        for x in top.walk()
        if x.name == "location" and not x.args[-1].startswith("@")
    }
    assert "/v1/chat/completions" in names and "/metrics" in names
    assert [n for n in sorted(names) if reserved_path_reason(location_of(n)) is None] == []


def test_an_application_script_through_a_linked_scripts_folder_is_refused(
    minimal_dir: Path, tmp_path: Path
) -> None:
    """`scripts -> /etc` with `application_script: "shadow"` shipped the host's shadow file."""
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "shadow").write_text("root:$6$secret:::\n")
    (minimal_dir / "scripts").symlink_to(outside)
    edit_guest(minimal_dir, "102", application_script="shadow")
    (message,) = errors_at(minimal_dir, "lxc_configs.102.application_script")
    assert "outside the config dir" in message


def test_an_application_script_that_is_a_link_out_is_refused(
    minimal_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("x")
    (minimal_dir / "scripts").mkdir()
    (minimal_dir / "scripts" / "app.sh").symlink_to(tmp_path / "secret")
    edit_guest(minimal_dir, "102", application_script="app.sh")
    errors_at(minimal_dir, "lxc_configs.102.application_script")


def test_raw_idmap_onto_host_root_is_an_error(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "102", lxc_options=["lxc.idmap: u 0 0 65536"])
    (message,) = errors_at(minimal_dir, "lxc_configs.102.lxc_options[0]")
    assert "host root" in message


@pytest.mark.parametrize("option", ["lxc.hook.mount: /tmp/x.sh", "lxc.include: /tmp/extra"])
def test_raw_hooks_and_includes_are_named(minimal_dir: Path, option: str) -> None:
    edit_guest(minimal_dir, "102", lxc_options=[option])
    _, problems, _ = validate_json(minimal_dir)
    found = [p for p in problems if p["path"] == "lxc_configs.102.lxc_options[0]"]
    assert (
        found and found[0]["severity"] == "warning" and "on the host as root" in found[0]["message"]
    )

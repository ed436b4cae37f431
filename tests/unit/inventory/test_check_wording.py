"""What validate says, word for word where the words are the way out: the node a guest
may use, the nodes of the cluster, the file a link points at, the port clash, and the
exact place of a key's problem (survivors of the inventory checks' mutation sample)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.inventory.helpers import edit_guest, edit_phoenix, validate_json


def _said(config_dir: Path) -> dict[str, tuple[str, str]]:
    _, problems, _ = validate_json(config_dir)
    return {p["path"]: (p["severity"], p["message"]) for p in problems}


def test_a_node_outside_any_cluster_names_the_node_phoenix_drives(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, node="pve1")
    edit_guest(minimal_dir, "102", node="pve2")
    _, message = _said(minimal_dir)["lxc_configs.102.node"]
    assert "lists no cluster nodes (the node Phoenix drives is 'pve1')" in message
    edit_phoenix(minimal_dir, node=None)
    _, message = _said(minimal_dir)["lxc_configs.102.node"]
    assert "lists no cluster nodes (none); list them in phoenix.nodes" in message


def test_an_ha_node_outside_the_cluster_lists_the_cluster_nodes(minimal_dir: Path) -> None:
    edit_phoenix(minimal_dir, node="pve1", nodes={"pve1": {}, "pve2": {"ssh_host": "pve2"}})
    edit_guest(minimal_dir, "101", placement="ha", ha_nodes=["pve7"])
    _, message = _said(minimal_dir)["lxc_configs.101.ha_nodes[0]"]
    assert message.endswith("is not a node of the cluster (phoenix.nodes: pve1, pve2)")


def test_a_script_linked_out_of_the_config_dir_names_its_target(
    minimal_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.sh"
    secret.write_text("x")
    (minimal_dir / "scripts").mkdir()
    (minimal_dir / "scripts" / "app.sh").symlink_to(secret)
    edit_guest(minimal_dir, "102", application_script="app.sh")
    _, problems, _ = validate_json(minimal_dir)
    messages = [p["message"] for p in problems if p["path"] == "lxc_configs.102.application_script"]
    outside = f"is a symlink to a file outside the config dir ({secret.resolve()})"
    assert any(outside in m for m in messages), messages


def test_one_port_for_http_and_tls_says_how_to_part_them(minimal_dir: Path) -> None:
    edit_guest(minimal_dir, "101", gateway={"http_port": 8080, "https_port": 8080})
    _, message = _said(minimal_dir)["lxc_configs.101.gateway.https_port"]
    assert "one port cannot serve plain HTTP and TLS (give them different ports" in message


def test_key_warnings_sit_at_the_key(minimal_dir: Path) -> None:
    key = {"name": "k", "sha256": "a" * 64, "models": ["nobody-serves-this"]}
    edit_guest(minimal_dir, "101", gateway={"api_keys": [key]})
    said = _said(minimal_dir)
    assert said["lxc_configs.101.gateway.api_keys[0].models"] == (
        "warning",
        "key 'k' names model 'nobody-serves-this', which no guest serves",
    )
    sites = minimal_dir / "nginx" / "sites-available"
    sites.mkdir(parents=True)
    (sites / "gateway").write_text("server { listen 80; }\n")
    severity, message = _said(minimal_dir)["lxc_configs.101.gateway.api_keys"]
    assert severity == "warning" and "compatibility mode" in message


def test_an_nginx_file_linked_out_of_the_config_dir_names_its_target(
    minimal_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.conf"
    secret.write_text("server {}\n")
    sites = minimal_dir / "nginx" / "sites-available"
    sites.mkdir(parents=True)
    (sites / "gateway").symlink_to(secret)
    _, problems, _ = validate_json(minimal_dir)
    said = [p for p in problems if p["file"] == "nginx/sites-available/gateway"]
    assert [(p["path"], p["severity"]) for p in said] == [("$", "error")], problems
    assert f"outside the config dir ({secret.resolve()})" in said[0]["message"]

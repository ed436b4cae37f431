"""The gateway as a recipe bundle: what converging the gateway guest pushes and runs.

The executor unpacks the bundle into /tmp/phoenix_run in the guest and runs
`setup_gateway.sh` there (as root). Certificates are issued on the host from the local CA
in `state_dir` and travel inside the bundle; the same inventory yields the same bundle
(same digest), so a converged gateway is not touched again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from phoenix.errors import GatewayError
from phoenix.gateway.compat import compat_sites, render_compat
from phoenix.gateway.lint import Finding, lint_paths
from phoenix.gateway.render import (
    Layout,
    RenderedGateway,
    asset,
    env_file,
    render_derived,
)
from phoenix.gateway.routes import derive_routes
from phoenix.gateway.tls import LocalCA, default_ca_dir
from phoenix.inventory import Inventory
from phoenix.recipes.bundle import Bundle

SCRIPT_NAME = "setup_gateway.sh"
RenderMode = Literal["auto", "derived", "compat"]


def choose_mode(inventory: Inventory, mode: RenderMode = "auto") -> Literal["derived", "compat"]:
    """`auto`: the hand-written sites when the config dir has them, else derived."""
    if mode != "auto":
        return mode
    return "compat" if compat_sites(inventory.nginx_dir) else "derived"


def render_gateway(
    inventory: Inventory,
    ctid: int | None,
    state_dir: Path | None,
    mode: RenderMode = "auto",
    layout: Layout | None = None,
    addresses: Mapping[int, str] | None = None,
    persist: bool = True,
) -> tuple[RenderedGateway, list[Finding]]:
    """Render the gateway. Compat mode lints the hand-written sites and refuses only what
    nginx itself would reject (the rest is served as it is, findings returned); derived
    mode raises on unroutable targets. `persist=False` writes no CA or keys (read-only
    commands: plan, lint, render for inspection); with no `state_dir` the CA is made in
    memory."""
    ca = LocalCA.open(default_ca_dir(state_dir), persist) if state_dir else LocalCA.ephemeral()
    chosen = choose_mode(inventory, mode)
    if chosen == "compat":
        sites = compat_sites(inventory.nginx_dir)
        findings = lint_paths(sites, inventory, inventory.config_dir)
        bad = [f for f in findings if f.fatal]
        if bad:
            raise GatewayError(
                "the hand-written sites would be rejected by nginx:\n"
                + "\n".join(f.render() for f in bad)
            )
        return render_compat(inventory.nginx_dir, ca, layout), findings
    routes, _ = derive_routes(inventory, ctid, addresses)
    return render_derived(routes, ca, layout), []


def bundle_from(rendered: RenderedGateway, entry: Mapping[str, object] | None = None) -> Bundle:
    files = {f"tree/{k}": v for k, v in rendered.files.items()}
    files.update({f"system-ssl/{k}": v for k, v in rendered.system_ssl.items()})
    files["gateway.env"] = env_file(rendered.env()).encode()
    return Bundle(
        name="gateway",
        script_name=SCRIPT_NAME,
        script=asset(SCRIPT_NAME),
        files=files,
        entry=dict(entry or {}),
        timeout=900.0,
    )


def gateway_bundle(
    inventory: Inventory,
    ctid: int,
    state_dir: Path | None,
    mode: RenderMode = "auto",
    persist: bool = True,
) -> Bundle:
    """The bundle that makes guest `ctid` the gateway (raises GatewayError if it cannot)."""
    if ctid not in inventory.guests or not inventory.guests[ctid].runs_gateway:
        raise GatewayError(f"guest {ctid} is not the gateway")
    rendered, _ = render_gateway(inventory, ctid, state_dir, mode, persist=persist)
    entry = inventory.guests[ctid].model_dump(mode="json", by_alias=True, exclude_none=True)
    return bundle_from(rendered, entry)

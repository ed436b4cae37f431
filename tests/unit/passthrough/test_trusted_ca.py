"""The trusted_ca feature carries the CA that signs the gateway's certificates."""

from __future__ import annotations

from pathlib import Path

from phoenix.cli.gateway_app import GATEWAY
from phoenix.gateway.tls import CA_CERT, LocalCA, default_ca_dir
from phoenix.inventory import load_inventory
from phoenix.recipes.features import CA_FILE, feature_bundle

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "lab"


def test_the_bundle_carries_the_gateways_ca(tmp_path: Path) -> None:
    inventory = load_inventory(EXAMPLE)
    entry = {"features": ["trusted_ca"]}
    # A plan that only shows writes no CA...
    shown, why = feature_bundle(
        inventory, "trusted_ca", entry, state_dir=tmp_path, persist=False, gateway=GATEWAY
    )
    assert why is None and shown is not None
    assert not (default_ca_dir(tmp_path) / CA_CERT).exists()
    # ...a converge makes it once, and the bundle (and its digest) stays the same after.
    bundle, _ = feature_bundle(inventory, "trusted_ca", entry, state_dir=tmp_path, gateway=GATEWAY)
    assert bundle is not None
    ca = LocalCA.load_or_create(default_ca_dir(tmp_path))
    assert bundle.files[CA_FILE] == ca.cert_pem
    again, _ = feature_bundle(inventory, "trusted_ca", entry, state_dir=tmp_path, gateway=GATEWAY)
    assert again is not None and again.digest == bundle.digest
    assert bundle.script_name == "feature_trusted_ca.sh"


def test_other_features_carry_no_ca(tmp_path: Path) -> None:
    bundle, _ = feature_bundle(load_inventory(EXAMPLE), "base_setup", {}, state_dir=tmp_path)
    assert bundle is not None and CA_FILE not in bundle.files


def test_without_the_gateway_handed_in_the_feature_says_why(tmp_path: Path) -> None:
    """The recipe layer sits below the gateway: the CA comes only from what is handed in."""
    bundle, why = feature_bundle(load_inventory(EXAMPLE), "trusted_ca", {}, state_dir=tmp_path)
    assert bundle is None and why is not None and "not handed to the planner" in why

"""Which inventory keys feed a recipe bundle's digest comes from the scope tag on each
`LxcGuest` field: a new field must say where it belongs, and one tagged as placement or
host does not re-run recipes when it changes."""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictStr

from phoenix.inventory.models import LxcGuest
from phoenix.inventory.models.scope import Host, InGuest, Placement, Scope, field_scopes
from phoenix.recipes.applications import application_entry
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.features import feature_entry


def test_every_guest_field_has_a_scope() -> None:
    untagged = [key for key, scope in field_scopes(LxcGuest).items() if scope is None]
    assert untagged == [], f"tag these LxcGuest fields Host/Placement/InGuest: {untagged}"


class Grown(LxcGuest):
    """LxcGuest as it would be with three keys added tomorrow, one per scope."""

    rack: Placement[StrictStr] = Field(default="", description="where the guest sits")
    cpu_weight: Host[StrictStr] = Field(default="", description="applied on the host")
    model_dir: InGuest[StrictStr] = Field(default="", description="read by recipes")


def entry(**keys: str) -> dict[str, Any]:
    guest = Grown.model_validate({"name": "a", "features": ["base_setup"], **keys})
    return guest.model_dump(mode="json", by_alias=True, exclude_unset=True)


def feature_digest(**keys: str) -> str:
    return Bundle("feature-x", "x.sh", b"", entry=feature_entry(entry(**keys), Grown)).digest


def application_digest(**keys: str) -> str:
    return Bundle(
        "application", "a.sh", b"", entry=application_entry(1, entry(**keys), Grown)
    ).digest


def test_a_new_placement_field_changes_no_feature_digest() -> None:
    assert feature_digest(rack="r1") == feature_digest(rack="r2") == feature_digest()
    assert application_digest(rack="r1") != application_digest(rack="r2")  # the app sees it


def test_a_new_host_field_changes_no_digest() -> None:
    assert feature_digest(cpu_weight="1") == feature_digest(cpu_weight="2")
    assert application_digest(cpu_weight="1") == application_digest(cpu_weight="2")


def test_a_new_in_guest_field_changes_every_digest() -> None:
    assert feature_digest(model_dir="/m1") != feature_digest(model_dir="/m2")
    assert application_digest(model_dir="/m1") != application_digest(model_dir="/m2")


def test_existing_tags_keep_what_each_bundle_saw() -> None:
    scopes = field_scopes(LxcGuest)
    assert scopes["memory_mb"] is Scope.HOST and scopes["health_check"] is Scope.HOST
    assert scopes["network_config"] is Scope.PLACEMENT and scopes["name"] is Scope.PLACEMENT
    assert scopes["gpu_assignment"] is Scope.GUEST and scopes["volumes"] is Scope.GUEST

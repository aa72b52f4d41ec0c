"""Cloud region / node label -> grid zone."""

from __future__ import annotations

import pytest

from webhook.carbon.zones import BUILTIN_ZONES, REGION_LABEL, ZoneMap


@pytest.mark.parametrize(
    ("region", "zone"),
    [
        pytest.param("us-east-1", "US-MIDA-PJM", id="aws"),
        pytest.param("eu-central-1", "DE", id="aws-frankfurt"),
        pytest.param("europe-west4", "NL", id="gcp"),
        pytest.param("us-south1", "US-TEX-ERCO", id="gcp-dallas"),
        pytest.param("northeurope", "IE", id="azure"),
        pytest.param("WestUS", "US-CAL-CISO", id="case-insensitive"),
    ],
)
def test_builtin_regions(region: str, zone: str) -> None:
    assert ZoneMap().resolve(region) == zone


def test_user_entries_extend_and_override_the_table() -> None:
    zones = ZoneMap({"us-east-1": "US-CAR-DUK", "on-prem-berlin": "DE"})
    assert zones.resolve("us-east-1") == "US-CAR-DUK"
    assert zones.resolve("on-prem-berlin") == "DE"
    assert zones.resolve("eu-west-2") == "GB"


def test_unknown_regions_are_none() -> None:
    assert ZoneMap().resolve("mars-north-1") is None


def test_node_labels_use_the_topology_region_label() -> None:
    zones = ZoneMap()
    assert zones.zone_for_labels({REGION_LABEL: "eu-west-3"}) == "FR"
    assert zones.zone_for_labels({"kubernetes.io/hostname": "n1"}) is None


def test_every_builtin_zone_looks_like_an_electricity_maps_key() -> None:
    for region, zone in BUILTIN_ZONES.items():
        assert region == region.lower()
        assert zone == zone.upper()
        assert all(part.isalnum() for part in zone.split("-"))

"""Cloud region (or a node's ``topology.kubernetes.io/region`` label) -> grid zone.

The built-in table maps major AWS, Google Cloud and Azure regions to the Electricity Maps zone
of the grid that supplies the region's data centres (where a region's grid is unambiguous; a
region missing here is one we could not place with confidence). Users extend or override it
with the ``zones`` setting (``{"my-dc": "DE", "us-east-1": "US-MIDA-PJM"}``); their entries win.
Zone keys of other providers (WattTime regions, UK regions, SDK locations) come from the same
``zones`` setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

REGION_LABEL = "topology.kubernetes.io/region"
"""The well-known node label holding the cloud region."""

_AWS = {
    "us-east-1": "US-MIDA-PJM",  # N. Virginia
    "us-east-2": "US-MIDA-PJM",  # Ohio
    "us-west-1": "US-CAL-CISO",  # N. California
    "us-west-2": "US-NW-BPAT",  # Oregon
    "ca-central-1": "CA-QC",  # Montréal
    "eu-west-1": "IE",  # Ireland
    "eu-west-2": "GB",  # London
    "eu-west-3": "FR",  # Paris
    "eu-central-1": "DE",  # Frankfurt
    "eu-central-2": "CH",  # Zurich
    "eu-north-1": "SE-SE3",  # Stockholm
    "eu-south-1": "IT-NO",  # Milan
    "eu-south-2": "ES",  # Aragón
    "ap-northeast-1": "JP-TK",  # Tokyo
    "ap-northeast-2": "KR",  # Seoul
    "ap-northeast-3": "JP-KN",  # Osaka
    "ap-southeast-1": "SG",  # Singapore
    "ap-southeast-2": "AU-NSW",  # Sydney
    "ap-south-1": "IN-WE",  # Mumbai
    "sa-east-1": "BR-CS",  # São Paulo
    "af-south-1": "ZA",  # Cape Town
}

_GCP = {
    "us-central1": "US-MIDW-MISO",  # Iowa
    "us-east4": "US-MIDA-PJM",  # N. Virginia
    "us-east5": "US-MIDA-PJM",  # Columbus
    "us-west1": "US-NW-BPAT",  # Oregon
    "us-south1": "US-TEX-ERCO",  # Dallas
    "northamerica-northeast1": "CA-QC",  # Montréal
    "northamerica-northeast2": "CA-ON",  # Toronto
    "europe-west1": "BE",  # St. Ghislain
    "europe-west2": "GB",  # London
    "europe-west3": "DE",  # Frankfurt
    "europe-west4": "NL",  # Eemshaven
    "europe-west6": "CH",  # Zurich
    "europe-west8": "IT-NO",  # Milan
    "europe-west9": "FR",  # Paris
    "europe-north1": "FI",  # Hamina
    "europe-southwest1": "ES",  # Madrid
    "europe-central2": "PL",  # Warsaw
    "asia-southeast1": "SG",  # Singapore
    "asia-northeast1": "JP-TK",  # Tokyo
    "asia-northeast2": "JP-KN",  # Osaka
    "asia-northeast3": "KR",  # Seoul
    "asia-south1": "IN-WE",  # Mumbai
    "australia-southeast1": "AU-NSW",  # Sydney
    "australia-southeast2": "AU-VIC",  # Melbourne
    "southamerica-east1": "BR-CS",  # São Paulo
}

_AZURE = {
    "eastus": "US-MIDA-PJM",  # Virginia
    "eastus2": "US-MIDA-PJM",  # Virginia
    "centralus": "US-MIDW-MISO",  # Iowa
    "southcentralus": "US-TEX-ERCO",  # Texas
    "westus": "US-CAL-CISO",  # California
    "canadacentral": "CA-ON",  # Toronto
    "canadaeast": "CA-QC",  # Québec City
    "northeurope": "IE",  # Ireland
    "westeurope": "NL",  # Netherlands
    "uksouth": "GB",  # London
    "ukwest": "GB",  # Cardiff
    "francecentral": "FR",  # Paris
    "germanywestcentral": "DE",  # Frankfurt
    "switzerlandnorth": "CH",  # Zurich
    "norwayeast": "NO-NO1",  # Oslo
    "swedencentral": "SE-SE3",  # Gävle
    "polandcentral": "PL",  # Warsaw
    "italynorth": "IT-NO",  # Milan
    "spaincentral": "ES",  # Madrid
    "southeastasia": "SG",  # Singapore
    "japaneast": "JP-TK",  # Tokyo
    "japanwest": "JP-KN",  # Osaka
    "koreacentral": "KR",  # Seoul
    "australiaeast": "AU-NSW",  # New South Wales
    "australiasoutheast": "AU-VIC",  # Victoria
    "centralindia": "IN-WE",  # Pune
    "brazilsouth": "BR-CS",  # São Paulo
    "southafricanorth": "ZA",  # Johannesburg
}

BUILTIN_ZONES: Mapping[str, str] = MappingProxyType({**_AWS, **_GCP, **_AZURE})
"""AWS, Google Cloud and Azure region names (they do not collide) -> Electricity Maps zone."""


@dataclass(frozen=True)
class ZoneMap:
    """Region -> zone lookup: the user's entries, then the built-in table."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, region: str) -> str | None:
        """The grid zone of a region name (case-insensitive), or ``None`` if unknown."""
        key = region.strip().casefold()
        for table in (self.overrides, BUILTIN_ZONES):
            for name, zone in table.items():
                if name.casefold() == key:
                    return zone
        return None

    def zone_for_labels(self, labels: Mapping[str, str], label: str = REGION_LABEL) -> str | None:
        """The grid zone of a node from its region label, or ``None``."""
        region = labels.get(label)
        return self.resolve(region) if region else None

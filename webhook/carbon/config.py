"""Settings of the provider layer.

``ProviderSettings`` is the frozen section the top-level settings object composes. Its section
names have no underscore, so ``ProviderEnvSettings`` (env prefix ``GREENLIGHT_``, nested at the
first ``_``) reads the documented variables directly: ``GREENLIGHT_PROVIDER``,
``GREENLIGHT_ELECTRICITYMAPS_API_KEY``, ``GREENLIGHT_WATTTIME_USERNAME``,
``GREENLIGHT_WATTTIME_PASSWORD``, ``GREENLIGHT_CACHE_TTL_S``, ``GREENLIGHT_ZONES`` (JSON) ...
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from webhook.carbon.base import ProviderName
from webhook.carbon.cache import CacheSettings
from webhook.carbon.carbonaware import CarbonAwareSettings
from webhook.carbon.electricitymaps import ElectricityMapsSettings
from webhook.carbon.http import HttpSettings
from webhook.carbon.replay import ReplaySettings
from webhook.carbon.source import ForecastSettings
from webhook.carbon.ukci import UkciSettings
from webhook.carbon.watttime import WattTimeSettings
from webhook.carbon.zones import ZoneMap


class ProviderSettings(BaseModel):
    """Which carbon-intensity provider greenlight uses, and how each one is reached."""

    model_config = ConfigDict(frozen=True)

    provider: ProviderName = Field(
        "replay",
        description="The provider used for decisions: replay (offline default), "
        "electricitymaps, watttime, ukci or carbonaware.",
    )
    electricitymaps: ElectricityMapsSettings = Field(
        default_factory=ElectricityMapsSettings, description="Electricity Maps API v3."
    )
    watttime: WattTimeSettings = Field(
        default_factory=WattTimeSettings, description="WattTime API v3."
    )
    ukci: UkciSettings = Field(default_factory=UkciSettings, description="UK Carbon Intensity.")
    carbonaware: CarbonAwareSettings = Field(
        default_factory=CarbonAwareSettings, description="Carbon Aware SDK WebAPI."
    )
    replay: ReplaySettings = Field(
        default_factory=ReplaySettings, description="Replay of recorded data files."
    )
    http: HttpSettings = Field(
        default_factory=HttpSettings, description="Timeouts and retries of every request."
    )
    cache: CacheSettings = Field(
        default_factory=CacheSettings, description="Per-zone cache and staleness limit."
    )
    forecast: ForecastSettings = Field(
        default_factory=ForecastSettings, description="Forecast horizon and observed history."
    )
    zones: dict[str, str] = Field(
        default_factory=dict,
        description="Cloud region (node label topology.kubernetes.io/region) -> grid zone; "
        "extends and overrides the built-in table.",
    )

    def zone_map(self) -> ZoneMap:
        return ZoneMap(dict(self.zones))


class ProviderEnvSettings(BaseSettings, ProviderSettings):
    """``ProviderSettings`` read from ``GREENLIGHT_*`` environment variables (for the CLI, or
    for a server that wants these exact names)."""

    model_config = SettingsConfigDict(
        env_prefix="GREENLIGHT_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        frozen=True,
    )


def load_provider_settings() -> ProviderSettings:
    """``ProviderSettings`` from the environment (see ``ProviderEnvSettings``)."""
    return ProviderSettings.model_validate(ProviderEnvSettings().model_dump())

"""Carbon-intensity providers behind one Protocol, and the forecast chain decisions read.

Public API (see each module's docstring):

- ``Provider``, ``IntensityData`` and the ``ProviderError`` family (``base``)
- ``ProviderSettings`` / ``load_provider_settings`` (``settings``)
- ``build_provider``, ``build_forecast_source`` (``registry``)
- ``ForecastSource``, ``ForecastResult``, ``choose_forecast`` (``source``)
- ``CachedProvider``, ``AsyncTtlCache`` (``cache``); ``ZoneMap`` (``zones``)
"""

from webhook.carbon.base import (
    PROVIDER_NAMES,
    BadResponseError,
    IntensityData,
    Provider,
    ProviderConfigError,
    ProviderError,
    ProviderName,
    ProviderTimeoutError,
    RateLimitedError,
    RejectedError,
    UnauthorizedError,
    UnavailableError,
    UnknownZoneError,
    ZoneMismatchError,
)
from webhook.carbon.cache import AsyncTtlCache, CachedProvider, CacheSettings
from webhook.carbon.config import (
    ProviderEnvSettings,
    ProviderSettings,
    load_provider_settings,
)
from webhook.carbon.registry import build_forecast_source, build_provider
from webhook.carbon.source import (
    ForecastResult,
    ForecastSettings,
    ForecastSource,
    choose_forecast,
)
from webhook.carbon.zones import BUILTIN_ZONES, REGION_LABEL, ZoneMap

__all__ = [
    "BUILTIN_ZONES",
    "PROVIDER_NAMES",
    "REGION_LABEL",
    "AsyncTtlCache",
    "BadResponseError",
    "CacheSettings",
    "CachedProvider",
    "ForecastResult",
    "ForecastSettings",
    "ForecastSource",
    "IntensityData",
    "Provider",
    "ProviderConfigError",
    "ProviderEnvSettings",
    "ProviderError",
    "ProviderName",
    "ProviderSettings",
    "ProviderTimeoutError",
    "RateLimitedError",
    "RejectedError",
    "UnauthorizedError",
    "UnavailableError",
    "UnknownZoneError",
    "ZoneMap",
    "ZoneMismatchError",
    "build_forecast_source",
    "build_provider",
    "choose_forecast",
    "load_provider_settings",
]

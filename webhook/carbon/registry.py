"""Building providers and the forecast chain from ``ProviderSettings``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from webhook.carbon.base import Provider, ProviderName
from webhook.carbon.carbonaware import CarbonAwareProvider
from webhook.carbon.config import ProviderSettings
from webhook.carbon.electricitymaps import ElectricityMapsProvider
from webhook.carbon.http import Sleep
from webhook.carbon.replay import ReplayProvider
from webhook.carbon.source import ForecastSource
from webhook.carbon.ukci import UkCarbonIntensityProvider
from webhook.carbon.watttime import WattTimeProvider


def build_provider(
    settings: ProviderSettings,
    name: ProviderName | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> Provider:
    """The provider ``name`` (default: ``settings.provider``). Raises ``ProviderConfigError``
    when it lacks what it needs (a key, a readable replay file)."""
    chosen = name or settings.provider
    http = settings.http
    if chosen == "replay":
        return ReplayProvider.from_settings(settings.replay, clock=clock)
    if chosen == "electricitymaps":
        return ElectricityMapsProvider(
            settings.electricitymaps, http, transport=transport, sleep=sleep, clock=clock
        )
    if chosen == "watttime":
        return WattTimeProvider(
            settings.watttime, http, transport=transport, sleep=sleep, clock=clock
        )
    if chosen == "ukci":
        return UkCarbonIntensityProvider(
            settings.ukci, http, transport=transport, sleep=sleep, clock=clock
        )
    return CarbonAwareProvider(
        settings.carbonaware, http, transport=transport, sleep=sleep, clock=clock
    )


def build_forecast_source(
    settings: ProviderSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> ForecastSource:
    """The forecast chain over the configured provider (what the webhook and reconciler use)."""
    provider = build_provider(settings, transport=transport, sleep=sleep, clock=clock)
    return ForecastSource(provider, cache=settings.cache, settings=settings.forecast, clock=clock)

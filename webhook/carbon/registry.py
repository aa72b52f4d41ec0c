"""Building providers and the forecast chain from ``ProviderSettings``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Wiring:
    """What a provider's factory gets besides its own settings section (tests inject these)."""

    settings: ProviderSettings
    transport: httpx.AsyncBaseTransport | None
    sleep: Sleep
    clock: Callable[[], float]


def _http(cls: Any, section: str) -> Callable[[Wiring], Provider]:
    """The factory of a network provider: its settings section, the shared HTTP settings and
    the injected transport, sleep and clock (every ``HttpProvider`` takes these)."""

    def build(w: Wiring) -> Provider:
        provider: Provider = cls(
            getattr(w.settings, section),
            w.settings.http,
            transport=w.transport,
            sleep=w.sleep,
            clock=w.clock,
        )
        return provider

    return build


PROVIDERS: dict[ProviderName, Callable[[Wiring], Provider]] = {
    "replay": lambda w: ReplayProvider.from_settings(w.settings.replay, clock=w.clock),
    "electricitymaps": _http(ElectricityMapsProvider, "electricitymaps"),
    "watttime": _http(WattTimeProvider, "watttime"),
    "ukci": _http(UkCarbonIntensityProvider, "ukci"),
    "carbonaware": _http(CarbonAwareProvider, "carbonaware"),
}
"""Every provider, by the name ``GREENLIGHT_PROVIDER`` selects: the one place a provider is
registered. Adding one: its module, a line here, its name in ``base.ProviderName`` and its
settings section in ``config.ProviderSettings`` (typed, so the chart's schema and docs know
it); tests check the three agree."""


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
    factory = PROVIDERS[name or settings.provider]
    return factory(Wiring(settings, transport, sleep, clock))


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

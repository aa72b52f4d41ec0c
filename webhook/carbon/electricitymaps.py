"""Electricity Maps API v3: carbon intensity latest, forecast, history and past-range.

Requests carry the key in the ``auth-token`` header and the zone in ``zone``. The API falls back
to the caller's IP location when it does not recognise a zone; greenlight turns that off — with
``disableCallerLookup=true`` (the parameter of the current API reference) and
``shouldUseFallbackCallerLookup=false`` (its name in the older v3 documentation); unknown query
parameters are ignored — and, in case a fallback still happens, rejects any answer whose
``zone`` differs from the one requested (``ZoneMismatchError``).

Endpoints (relative to the base URL, e.g. ``https://api.electricitymaps.com/v3``):

- ``carbon-intensity/latest``   the current hour (free tier)
- ``carbon-intensity/history``  the last 24 hours (free tier)
- ``carbon-intensity/forecast`` ``horizonHours`` of 6, 24, 48 or 72 (paid plans)
- ``carbon-intensity/past-range`` ``start``/``end``, at most 10 days per request (paid plans)

A 401 for an endpoint outside the key's plan becomes ``UnauthorizedError`` naming the endpoint; the
forecast chain then falls back to greenlight's own history forecaster.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from webhook.carbon.base import (
    IntensityData,
    ProviderConfigError,
    build_series,
    check_zone,
    epoch,
    parse_answer,
)
from webhook.carbon.http import HttpProvider, HttpSettings, Sleep
from webhook.core.series import StepSeries, from_epoch

NAME = "electricitymaps"
HOUR_S = 3600
HISTORY_ENDPOINT_SPAN_S = 24 * HOUR_S
PAST_RANGE_MAX_S = 240 * HOUR_S
FORECAST_HORIZONS_H = (6, 24, 48, 72)

ENDPOINT_LATEST = "carbon-intensity/latest"
ENDPOINT_FORECAST = "carbon-intensity/forecast"
ENDPOINT_HISTORY = "carbon-intensity/history"
ENDPOINT_PAST_RANGE = "carbon-intensity/past-range"


class ElectricityMapsSettings(BaseModel):
    """Electricity Maps API v3 (https://portal.electricitymaps.com)."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = Field(
        None,
        description="API key, sent as the auth-token header. Env: "
        "GREENLIGHT_ELECTRICITYMAPS_API_KEY. Never logged.",
    )
    base_url: str = Field(
        "https://api.electricitymaps.com/v3",
        description="API root including the version (a proxy or mirror works too).",
    )
    emission_factor_type: Literal["lifecycle", "direct"] = Field(
        "lifecycle",
        description="Life-cycle (LCA, the API default) or direct (operational) emission factors.",
    )
    disable_estimations: bool = Field(
        False, description="Ask for measured data only (the API estimates missing hours)."
    )


class _Point(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    datetime: AwareDatetime
    carbon_intensity: float | None = Field(alias="carbonIntensity")
    is_estimated: bool | None = Field(None, alias="isEstimated")
    zone: str | None = None


class _Latest(_Point):
    zone: str | None = None
    updated_at: AwareDatetime | None = Field(None, alias="updatedAt")


class _Forecast(BaseModel):
    zone: str | None = None
    forecast: list[_Point]
    updated_at: AwareDatetime | None = Field(None, alias="updatedAt")


class _History(BaseModel):
    zone: str | None = None
    history: list[_Point]


class _PastRange(BaseModel):
    zone: str | None = None
    data: list[_Point]


def _api_time(moment: int) -> str:
    return from_epoch(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def forecast_horizon_hours(horizon_s: int) -> int:
    """The smallest ``horizonHours`` the API accepts that covers ``horizon_s`` (at most 72)."""
    hours = math.ceil(max(horizon_s, 1) / HOUR_S)
    return next((h for h in FORECAST_HORIZONS_H if h >= hours), FORECAST_HORIZONS_H[-1])


class ElectricityMapsProvider(HttpProvider):
    """``Provider`` for Electricity Maps API v3."""

    name = NAME

    def __init__(
        self,
        settings: ElectricityMapsSettings,
        http: HttpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.api_key is None or not settings.api_key.get_secret_value():
            raise ProviderConfigError(
                NAME,
                "no API key: set GREENLIGHT_ELECTRICITYMAPS_API_KEY (or electricitymaps.api_key)",
            )
        self._settings = settings
        super().__init__(
            settings,
            http,
            headers={"auth-token": settings.api_key.get_secret_value()},
            transport=transport,
            sleep=sleep,
            clock=clock,
        )

    def _params(self, zone: str, **extra: str | int) -> dict[str, str | int | bool]:
        params: dict[str, str | int | bool] = {
            "zone": zone,
            "emissionFactorType": self._settings.emission_factor_type,
            "disableCallerLookup": True,
            "shouldUseFallbackCallerLookup": False,
        }
        if self._settings.disable_estimations:
            params["disableEstimations"] = True
        params.update(extra)
        return params

    async def _get(self, endpoint: str, zone: str, **extra: str | int) -> Any:
        return await self._client.get_json(
            endpoint, endpoint=endpoint, zone=zone, params=self._params(zone, **extra)
        )

    async def latest(self, zone: str) -> IntensityData:
        payload = await self._get(ENDPOINT_LATEST, zone)
        answer = parse_answer(_Latest, payload, provider=NAME, endpoint=ENDPOINT_LATEST, zone=zone)
        check_zone(NAME, ENDPOINT_LATEST, zone, answer.zone)
        series = build_series(
            [(epoch(answer.datetime), answer.carbon_intensity)],
            step_s=HOUR_S,
            provider=NAME,
            endpoint=ENDPOINT_LATEST,
            zone=zone,
        )
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="latest",
            series=series,
            fetched_at=int(self._clock()),
            estimated=bool(answer.is_estimated),
            issued_at=epoch(answer.updated_at) if answer.updated_at else None,
        )

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        payload = await self._get(
            ENDPOINT_FORECAST, zone, horizonHours=forecast_horizon_hours(horizon_s)
        )
        answer = parse_answer(
            _Forecast, payload, provider=NAME, endpoint=ENDPOINT_FORECAST, zone=zone
        )
        check_zone(NAME, ENDPOINT_FORECAST, zone, answer.zone)
        series = self._series(answer.forecast, ENDPOINT_FORECAST, zone)
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="forecast",
            series=series,
            fetched_at=int(self._clock()),
            estimated=True,
            issued_at=epoch(answer.updated_at) if answer.updated_at else None,
        )

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        """``/history`` when the window lies within its last 24 hours (free tier), else
        ``/past-range`` in chunks of at most 10 days."""
        now = int(self._clock())
        points: list[_Point] = []
        if start >= now - HISTORY_ENDPOINT_SPAN_S:
            payload = await self._get(ENDPOINT_HISTORY, zone)
            answer = parse_answer(
                _History, payload, provider=NAME, endpoint=ENDPOINT_HISTORY, zone=zone
            )
            check_zone(NAME, ENDPOINT_HISTORY, zone, answer.zone)
            points = answer.history
            endpoint = ENDPOINT_HISTORY
        else:
            endpoint = ENDPOINT_PAST_RANGE
            chunk_start = start
            while chunk_start < end:
                chunk_end = min(end, chunk_start + PAST_RANGE_MAX_S)
                payload = await self._get(
                    ENDPOINT_PAST_RANGE,
                    zone,
                    start=_api_time(chunk_start),
                    end=_api_time(chunk_end),
                )
                chunk = parse_answer(
                    _PastRange, payload, provider=NAME, endpoint=ENDPOINT_PAST_RANGE, zone=zone
                )
                check_zone(NAME, ENDPOINT_PAST_RANGE, zone, chunk.zone)
                points.extend(chunk.data)
                chunk_start = chunk_end
        for point in points:
            check_zone(NAME, endpoint, zone, point.zone)
        inside = [p for p in points if start - HOUR_S < epoch(p.datetime) < end]
        series = self._series(inside, endpoint, zone)
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="history",
            series=series,
            fetched_at=now,
            estimated=any(bool(p.is_estimated) for p in inside),
        )

    @staticmethod
    def _series(points: list[_Point], endpoint: str, zone: str) -> StepSeries:
        return build_series(
            [(epoch(p.datetime), p.carbon_intensity) for p in points],
            step_s=HOUR_S,
            provider=NAME,
            endpoint=endpoint,
            zone=zone,
        )

"""Green Software Foundation Carbon Aware SDK WebAPI, for users who already run it.

The SDK sits in front of WattTime or Electricity Maps (its own configuration holds those keys)
and answers in gCO2eq/kWh per *location* (an Azure region name such as ``eastus`` or a location
configured in the SDK); a greenlight zone for this provider is such a location.

Endpoints (relative to the base URL, the WebAPI root such as ``http://carbon-aware-sdk:8080``):

- ``emissions/forecasts/current``  ``location``, ``dataStartAt``, ``dataEndAt``; the answer is a
  list of forecasts with ``forecastData`` points (``timestamp``, ``duration`` minutes, ``value``)
- ``emissions/bylocations``        ``location``, ``time``, ``toTime``; a list of
  ``{location, time, rating, duration}`` (also serves ``latest``)
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, field_validator

from webhook.carbon.base import (
    BadResponseError,
    IntensityData,
    RejectedError,
    UnknownZoneError,
    build_series,
    check_zone,
    epoch,
    median_step_s,
    parse_answer,
)
from webhook.carbon.http import HttpProvider
from webhook.core.series import from_epoch

NAME = "carbonaware"
DEFAULT_STEP_S = 300
LATEST_LOOKBACK_S = 2 * 3600

ENDPOINT_FORECAST = "emissions/forecasts/current"
ENDPOINT_BY_LOCATIONS = "emissions/bylocations"

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")


class CarbonAwareSettings(BaseModel):
    """Carbon Aware SDK WebAPI (https://github.com/Green-Software-Foundation/carbon-aware-sdk)."""

    model_config = ConfigDict(frozen=True)

    base_url: str = Field(
        "http://localhost:8080", description="Root of the SDK's WebAPI (it has no version path)."
    )


def parse_duration_s(value: object) -> int | None:
    """An SDK duration: minutes as a number (forecast points) or a .NET TimeSpan string
    ``[d.]hh:mm:ss`` (emissions data); ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value) * 60)
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
            return int(
                timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
            )
    raise ValueError(f"duration {value!r}: expected minutes or [d.]hh:mm:ss")


class _ForecastPoint(BaseModel):
    location: str | None = None
    timestamp: AwareDatetime
    duration: int | None = None
    value: float | None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int | None:
        return parse_duration_s(value)


class _Forecast(BaseModel):
    location: str | None = None
    generated_at: AwareDatetime | None = Field(None, alias="generatedAt")
    forecast_data: list[_ForecastPoint] = Field(alias="forecastData")


class _Forecasts(RootModel[list[_Forecast]]):
    pass


class _Emission(BaseModel):
    location: str | None = None
    time: AwareDatetime
    rating: float | None
    duration: int | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int | None:
        return parse_duration_s(value)


class _Emissions(RootModel[list[_Emission]]):
    pass


def _api_time(moment: int) -> str:
    return from_epoch(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _step_s(times: list[int], durations: list[int | None]) -> int:
    known = [d for d in durations if d]
    return known[-1] if known else median_step_s(times, DEFAULT_STEP_S)


class CarbonAwareProvider(HttpProvider):
    """``Provider`` for the Carbon Aware SDK WebAPI (zones are SDK locations)."""

    name = NAME

    async def _get(self, endpoint: str, zone: str, params: dict[str, str]) -> Any:
        try:
            return await self._client.get_json(
                endpoint, endpoint=endpoint, zone=zone, params=params
            )
        except RejectedError as error:
            if error.status in (400, 404):
                raise UnknownZoneError(NAME, error.detail, endpoint=endpoint, zone=zone) from error
            raise

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        now = int(self._clock())
        payload = await self._get(
            ENDPOINT_FORECAST,
            zone,
            {
                "location": zone,
                "dataStartAt": _api_time(now),
                "dataEndAt": _api_time(now + max(horizon_s, 1)),
            },
        )
        forecasts = parse_answer(
            _Forecasts, payload, provider=NAME, endpoint=ENDPOINT_FORECAST, zone=zone
        ).root
        if not forecasts:
            raise BadResponseError(
                NAME, "empty data (no forecast)", endpoint=ENDPOINT_FORECAST, zone=zone
            )
        if len(forecasts) > 1:
            raise BadResponseError(
                NAME,
                f"expected one forecast for one location, got {len(forecasts)}",
                endpoint=ENDPOINT_FORECAST,
                zone=zone,
            )
        forecast = forecasts[0]
        check_zone(NAME, ENDPOINT_FORECAST, zone, forecast.location)
        points = forecast.forecast_data
        times = [epoch(p.timestamp) for p in points]
        series = build_series(
            [(t, p.value) for t, p in zip(times, points, strict=True)],
            step_s=_step_s(times, [p.duration for p in points]),
            provider=NAME,
            endpoint=ENDPOINT_FORECAST,
            zone=zone,
        )
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="forecast",
            series=series,
            fetched_at=now,
            estimated=True,
            issued_at=epoch(forecast.generated_at) if forecast.generated_at else None,
        )

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        payload = await self._get(
            ENDPOINT_BY_LOCATIONS,
            zone,
            {"location": zone, "time": _api_time(start), "toTime": _api_time(end)},
        )
        rows = parse_answer(
            _Emissions, payload, provider=NAME, endpoint=ENDPOINT_BY_LOCATIONS, zone=zone
        ).root
        for row in rows:
            check_zone(NAME, ENDPOINT_BY_LOCATIONS, zone, row.location)
        times = [epoch(r.time) for r in rows]
        series = build_series(
            [(t, r.rating) for t, r in zip(times, rows, strict=True)],
            step_s=_step_s(times, [r.duration for r in rows]),
            provider=NAME,
            endpoint=ENDPOINT_BY_LOCATIONS,
            zone=zone,
        )
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="history",
            series=series,
            fetched_at=int(self._clock()),
            estimated=False,
        )

    async def latest(self, zone: str) -> IntensityData:
        now = int(self._clock())
        recent = await self.history(zone, now - LATEST_LOOKBACK_S, now)
        last = float(recent.series.times[-1])
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="latest",
            series=recent.series.window(last, float(recent.series.end)),
            fetched_at=recent.fetched_at,
            estimated=False,
        )

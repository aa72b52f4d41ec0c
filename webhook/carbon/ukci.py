"""UK Carbon Intensity API (National Grid ESO, https://carbonintensity.org.uk): free, no key.

Half-hourly values for Great Britain, national or per DNO region. Zones:

- ``GB``                 national (``actual`` where measured, else the forecast)
- ``regionid:<1-17>``    a region, e.g. ``regionid:3`` (North West England)
- ``postcode:<outward>`` the region of an outward postcode, e.g. ``postcode:RG10``

Endpoints (relative to the base URL ``https://api.carbonintensity.org.uk``):

- national: ``intensity``, ``intensity/{from}/fw48h``, ``intensity/{from}/{to}``
- regional: ``regional/regionid/{id}``, ``regional/intensity/{from}/fw48h/regionid/{id}``,
  ``regional/intensity/{from}/{to}/regionid/{id}`` and the same with ``postcode/{postcode}``

Regional values are always forecasts (the API has no regional actuals), so they are marked
estimated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from webhook.carbon.base import (
    BadResponseError,
    IntensityData,
    RejectedError,
    UnknownZoneError,
    ZoneMismatchError,
    build_series,
    epoch,
    median_step_s,
    parse_answer,
)
from webhook.carbon.http import HttpProvider
from webhook.core.series import from_epoch

NAME = "ukci"
HALF_HOUR_S = 1800
HISTORY_MAX_SPAN_S = 14 * 24 * 3600
REGION_IDS = range(1, 18)


class UkciSettings(BaseModel):
    """UK Carbon Intensity API (no key)."""

    model_config = ConfigDict(frozen=True)

    base_url: str = Field(
        "https://api.carbonintensity.org.uk",
        description="API root (the API has no version segment).",
    )


@dataclass(frozen=True)
class UkZone:
    """A parsed UK Carbon Intensity zone."""

    scope: Literal["national", "regionid", "postcode"]
    key: str = ""

    @property
    def suffix(self) -> str:
        return f"/{self.scope}/{self.key}"


_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


def parse_zone(zone: str) -> UkZone:
    """``GB``, ``regionid:<1-17>`` or ``postcode:<outward code>``; anything else is
    ``UnknownZoneError`` naming the accepted forms."""
    text = zone.strip()
    scope, _, key = text.partition(":")
    scope = scope.lower()
    if text.upper() in {"GB", "NATIONAL"}:
        return UkZone("national")
    if scope == "regionid" and key.isdigit() and int(key) in REGION_IDS:
        return UkZone("regionid", str(int(key)))
    if scope == "postcode" and _POSTCODE.match(key.strip().upper()):
        return UkZone("postcode", key.strip().upper())
    raise UnknownZoneError(
        NAME,
        f"unknown zone {zone!r}: use GB, regionid:<1-17> or postcode:<outward code, e.g. RG10>",
    )


class _Intensity(BaseModel):
    forecast: float | None = None
    actual: float | None = None


class _Period(BaseModel):
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    intensity: _Intensity


class _National(BaseModel):
    data: list[_Period]


class _Region(BaseModel):
    regionid: int | None = None
    postcode: str | None = None
    shortname: str | None = None
    data: list[_Period]


class _Regional(BaseModel):
    # The regional endpoints answer {"data": [region]} or {"data": region}.
    data: list[_Region] | _Region


def forecast_periods(payload: Any) -> list[tuple[int, int, float]]:
    """``(from, to, forecast)`` of every period of a national or regional answer (an
    ``intensity/...`` or ``regional/...`` body), for turning recorded answers into forecast
    vintages (``bench/ukci_vintages.py``); periods without a forecast are left out. A body of
    neither shape is a ``BadResponseError``."""
    national = isinstance(payload, dict) and isinstance(payload.get("data"), list)
    if national and all(isinstance(item, dict) and "from" in item for item in payload["data"]):
        periods = parse_answer(
            _National, payload, provider=NAME, endpoint="intensity", zone=None
        ).data
    else:
        answer = parse_answer(_Regional, payload, provider=NAME, endpoint="regional", zone=None)
        regions = answer.data if isinstance(answer.data, list) else [answer.data]
        if len(regions) != 1:
            raise BadResponseError(
                NAME, f"expected one region in the answer, got {len(regions)}", endpoint="regional"
            )
        periods = regions[0].data
    return [
        (epoch(p.from_), epoch(p.to), float(p.intensity.forecast))
        for p in periods
        if p.intensity.forecast is not None
    ]


def _api_time(moment: int) -> str:
    return from_epoch(moment).strftime("%Y-%m-%dT%H:%MZ")


class UkCarbonIntensityProvider(HttpProvider):
    """``Provider`` for the UK Carbon Intensity API."""

    name = NAME

    async def _get(self, path: str, endpoint: str, zone: str) -> Any:
        try:
            return await self._client.get_json(path, endpoint=endpoint, zone=zone)
        except RejectedError as error:
            if error.status in (400, 404):
                raise UnknownZoneError(NAME, error.detail, endpoint=endpoint, zone=zone) from error
            raise

    def _periods(self, where: UkZone, zone: str, endpoint: str, payload: Any) -> list[_Period]:
        if where.scope == "national":
            return parse_answer(
                _National, payload, provider=NAME, endpoint=endpoint, zone=zone
            ).data
        answer = parse_answer(_Regional, payload, provider=NAME, endpoint=endpoint, zone=zone)
        regions = answer.data if isinstance(answer.data, list) else [answer.data]
        if len(regions) != 1:
            raise BadResponseError(
                NAME,
                f"expected one region in the answer, got {len(regions)}",
                endpoint=endpoint,
                zone=zone,
            )
        region = regions[0]
        if (
            where.scope == "regionid"
            and region.regionid is not None
            and (str(region.regionid) != where.key)
        ):
            raise ZoneMismatchError(
                NAME, endpoint=endpoint, requested=zone, answered=f"regionid:{region.regionid}"
            )
        if (
            where.scope == "postcode"
            and region.postcode is not None
            and (region.postcode.upper() != where.key)
        ):
            raise ZoneMismatchError(
                NAME, endpoint=endpoint, requested=zone, answered=f"postcode:{region.postcode}"
            )
        return region.data

    def _data(
        self,
        where: UkZone,
        zone: str,
        endpoint: str,
        periods: list[_Period],
        kind: Literal["latest", "forecast", "history"],
    ) -> IntensityData:
        use_actual = kind != "forecast" and where.scope == "national"
        points: list[tuple[int, float | None]] = []
        estimated = False
        for period in periods:
            value = period.intensity.actual if use_actual else None
            if value is None:
                value = period.intensity.forecast
                estimated = True
            points.append((epoch(period.from_), value))
        steps = [epoch(p.to) - epoch(p.from_) for p in periods]
        step_s = (
            steps[-1]
            if steps and steps[-1] > 0
            else median_step_s([t for t, _ in points], HALF_HOUR_S)
        )
        series = build_series(points, step_s=step_s, provider=NAME, endpoint=endpoint, zone=zone)
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind=kind,
            series=series,
            fetched_at=int(self._clock()),
            estimated=estimated,
        )

    async def latest(self, zone: str) -> IntensityData:
        where = parse_zone(zone)
        if where.scope == "national":
            path = endpoint = "intensity"
        else:
            path, endpoint = f"regional{where.suffix}", f"regional/{where.scope}"
        periods = self._periods(where, zone, endpoint, await self._get(path, endpoint, zone))
        return self._data(where, zone, endpoint, periods[-1:], "latest")

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        where = parse_zone(zone)
        start = _api_time(int(self._clock()))
        if where.scope == "national":
            path, endpoint = f"intensity/{start}/fw48h", "intensity/fw48h"
        else:
            path = f"regional/intensity/{start}/fw48h{where.suffix}"
            endpoint = f"regional/intensity/fw48h/{where.scope}"
        periods = self._periods(where, zone, endpoint, await self._get(path, endpoint, zone))
        return self._data(where, zone, endpoint, periods, "forecast")

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        """Observed (national) or estimated (regional) values, in requests of at most 14 days."""
        where = parse_zone(zone)
        periods: list[_Period] = []
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + HISTORY_MAX_SPAN_S)
            span = f"{_api_time(chunk_start)}/{_api_time(chunk_end)}"
            if where.scope == "national":
                path, endpoint = f"intensity/{span}", "intensity/{from}/{to}"
            else:
                path = f"regional/intensity/{span}{where.suffix}"
                endpoint = f"regional/intensity/{{from}}/{{to}}/{where.scope}"
            periods.extend(
                self._periods(where, zone, endpoint, await self._get(path, endpoint, zone))
            )
            chunk_start = chunk_end
        kept = [p for p in periods if epoch(p.to) > start and epoch(p.from_) < end]
        endpoint = "intensity/{from}/{to}" if where.scope == "national" else "regional/intensity"
        return self._data(where, zone, endpoint, kept, "history")

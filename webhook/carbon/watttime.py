"""WattTime API v3: marginal emissions (MOER) forecast and history for a balancing area.

Authentication: HTTP basic auth on ``/login`` returns a bearer token valid 30 minutes. The token
is reused until ``token_refresh_margin_s`` before its expiry, renewed once on a 401 (then the
request is retried once), and logins are serialised so concurrent requests share one token.

Endpoints (relative to the base URL, e.g. ``https://api.watttime.org/v3``; ``/login`` lives
beside it, at ``https://api.watttime.org/login``):

- ``forecast``          MOER forecast (``horizon_hours`` up to 72), 5-minute steps
- ``historical``        MOER history over ``start``/``end`` (also serves ``latest``)
- ``region-from-loc``   the region of a latitude/longitude

A zone is a WattTime region such as ``CAISO_NORTH``. MOER is the *marginal* intensity, in
lbs CO2/MWh; greenlight converts it to g/kWh (x 0.453592). Free accounts get MOER only for
``CAISO_NORTH``; other regions answer 403 "Invalid scope", which becomes ``UnauthorizedError``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from webhook.carbon.base import (
    BadResponseError,
    IntensityData,
    ProviderConfigError,
    RejectedError,
    UnauthorizedError,
    UnknownZoneError,
    build_series,
    check_zone,
    epoch,
    parse_answer,
)
from webhook.carbon.http import HttpProvider, HttpSettings, Sleep
from webhook.core.series import from_epoch

NAME = "watttime"
LBS_PER_MWH_TO_G_PER_KWH = 0.453592
"""1 lb = 453.592 g and 1 MWh = 1000 kWh."""
UNIT_FACTORS = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0}
DEFAULT_STEP_S = 300
MAX_HORIZON_H = 72
LATEST_LOOKBACK_S = 3600

ENDPOINT_LOGIN = "login"
ENDPOINT_FORECAST = "forecast"
ENDPOINT_HISTORICAL = "historical"
ENDPOINT_REGION = "region-from-loc"


class WattTimeSettings(BaseModel):
    """WattTime API v3 (https://watttime.org)."""

    model_config = ConfigDict(frozen=True)

    username: str | None = Field(
        None, description="Account name. Env: GREENLIGHT_WATTTIME_USERNAME."
    )
    password: SecretStr | None = Field(
        None, description="Account password. Env: GREENLIGHT_WATTTIME_PASSWORD. Never logged."
    )
    base_url: str = Field(
        "https://api.watttime.org/v3", description="API root including the version."
    )
    login_url: str | None = Field(
        None,
        description="Login endpoint; default: the base URL's parent + /login "
        "(https://api.watttime.org/login).",
    )
    signal_type: str = Field("co2_moer", description="Signal requested (MOER, lbs CO2/MWh).")
    token_lifetime_s: float = Field(
        1800.0, gt=0, description="Validity of a login token (WattTime: 30 minutes)."
    )
    token_refresh_margin_s: float = Field(
        120.0, ge=0, description="Log in again this long before the token expires."
    )

    def resolved_login_url(self) -> str:
        if self.login_url:
            return self.login_url
        root = self.base_url.rstrip("/")
        parent = root.rsplit("/", 1)[0] if root.rsplit("/", 1)[-1].startswith("v") else root
        return f"{parent}/login"


class _Login(BaseModel):
    token: str = Field(min_length=1)


class _Point(BaseModel):
    point_time: AwareDatetime
    value: float | None


class _Meta(BaseModel):
    region: str | None = None
    units: str | None = None
    data_point_period_seconds: int | None = Field(None, gt=0)
    generated_at: AwareDatetime | None = None


class _Signal(BaseModel):
    data: list[_Point]
    meta: _Meta


class _Region(BaseModel):
    region: str = Field(min_length=1)
    region_full_name: str | None = None


def _api_time(moment: int) -> str:
    return from_epoch(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


class WattTimeProvider(HttpProvider):
    """``Provider`` for WattTime API v3 (zones are WattTime region codes)."""

    name = NAME

    def __init__(
        self,
        settings: WattTimeSettings,
        http: HttpSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.username or settings.password is None:
            raise ProviderConfigError(
                NAME,
                "no credentials: set GREENLIGHT_WATTTIME_USERNAME and GREENLIGHT_WATTTIME_PASSWORD",
            )
        self._settings = settings
        super().__init__(settings, http, transport=transport, sleep=sleep, clock=clock)
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._login_lock = asyncio.Lock()

    async def _login(self) -> str:
        username, password = self._settings.username, self._settings.password
        if username is None or password is None:  # checked in __init__; narrows the types
            raise ProviderConfigError(NAME, "no credentials")
        started = self._clock()
        try:
            payload = await self._client.get_json(
                self._settings.resolved_login_url(),
                endpoint=ENDPOINT_LOGIN,
                auth=(username, password.get_secret_value()),
            )
        except UnauthorizedError as error:
            raise UnauthorizedError(
                NAME,
                f"username/password rejected (HTTP {error.status})",
                endpoint=ENDPOINT_LOGIN,
                zone=None,
                status=error.status,
            ) from error
        answer = parse_answer(_Login, payload, provider=NAME, endpoint=ENDPOINT_LOGIN, zone=None)
        self._token = answer.token
        self._token_expires_at = started + self._settings.token_lifetime_s
        return answer.token

    async def _valid_token(self, *, renew: bool = False) -> str:
        async with self._login_lock:
            margin = self._settings.token_refresh_margin_s
            if renew or self._token is None or self._clock() >= self._token_expires_at - margin:
                return await self._login()
            return self._token

    async def _get(self, endpoint: str, zone: str | None, params: dict[str, Any]) -> Any:
        token = await self._valid_token()
        for renewed in (False, True):
            try:
                return await self._client.get_json(
                    endpoint,
                    endpoint=endpoint,
                    zone=zone,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except UnauthorizedError as error:
                # 401: the token expired early or was revoked; log in again, once.
                # 403 is a plan ("scope") refusal that a new token does not change.
                if renewed or error.status != 401:
                    raise
                token = await self._valid_token(renew=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def _signal(self, endpoint: str, zone: str, payload: Any, *, kind: str) -> IntensityData:
        answer = parse_answer(_Signal, payload, provider=NAME, endpoint=endpoint, zone=zone)
        check_zone(NAME, endpoint, zone, answer.meta.region)
        units = answer.meta.units or "lbs_co2_per_mwh"
        factor = UNIT_FACTORS.get(units)
        if factor is None:
            raise BadResponseError(
                NAME,
                f"units {units!r} cannot be converted to gCO2eq/kWh (accepted: "
                f"{', '.join(UNIT_FACTORS)}); is signal_type {self._settings.signal_type!r} "
                "included in the account's plan?",
                endpoint=endpoint,
                zone=zone,
            )
        step_s = answer.meta.data_point_period_seconds or DEFAULT_STEP_S
        series = build_series(
            [
                (epoch(p.point_time), None if p.value is None else p.value * factor)
                for p in answer.data
            ],
            step_s=step_s,
            provider=NAME,
            endpoint=endpoint,
            zone=zone,
        )
        generated = answer.meta.generated_at
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="forecast" if kind == "forecast" else "history",
            series=series,
            fetched_at=int(self._clock()),
            estimated=kind == "forecast",
            issued_at=epoch(generated) if generated else None,
        )

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        hours = min(MAX_HORIZON_H, math.ceil(max(horizon_s, 1) / 3600))
        payload = await self._get(
            ENDPOINT_FORECAST,
            zone,
            {"region": zone, "signal_type": self._settings.signal_type, "horizon_hours": hours},
        )
        return self._signal(ENDPOINT_FORECAST, zone, payload, kind="forecast")

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        payload = await self._get(
            ENDPOINT_HISTORICAL,
            zone,
            {
                "region": zone,
                "signal_type": self._settings.signal_type,
                "start": _api_time(start),
                "end": _api_time(end),
            },
        )
        return self._signal(ENDPOINT_HISTORICAL, zone, payload, kind="history")

    async def latest(self, zone: str) -> IntensityData:
        now = int(self._clock())
        recent = await self.history(zone, now - LATEST_LOOKBACK_S, now)
        last = len(recent.series) - 1
        point = recent.series.window(float(recent.series.times[last]), float(recent.series.end))
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="latest",
            series=point,
            fetched_at=recent.fetched_at,
            estimated=False,
        )

    async def region_from_location(self, latitude: float, longitude: float) -> str:
        """The WattTime region (a greenlight zone for this provider) at a location."""
        where = f"{latitude:g},{longitude:g}"
        try:
            payload = await self._get(
                ENDPOINT_REGION,
                where,
                {
                    "latitude": latitude,
                    "longitude": longitude,
                    "signal_type": self._settings.signal_type,
                },
            )
        except RejectedError as error:
            raise UnknownZoneError(
                NAME, error.detail, endpoint=ENDPOINT_REGION, zone=where
            ) from error
        return parse_answer(
            _Region, payload, provider=NAME, endpoint=ENDPOINT_REGION, zone=where
        ).region

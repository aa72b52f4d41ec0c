"""The provider interface: one Protocol, one data type, one family of typed errors.

Every carbon-intensity source (Electricity Maps, WattTime, UK Carbon Intensity, the Carbon Aware
SDK, file replay) answers the same three questions for a grid zone — the latest value, a
forecast, recent history — as an ``IntensityData`` holding a ``StepSeries`` in gCO2eq/kWh with
UTC epoch-second times. Anything that goes wrong on the way (HTTP, JSON, a nonsensical answer)
surfaces as a ``ProviderError`` subclass whose message names the provider, the endpoint, the
zone and what was wrong; a caller never sees an httpx, JSON or pydantic exception.

Answers are validated here, in pure functions shared by all providers (``build_series``):
points are sorted by time; exact duplicates (same time, same value) are dropped; a time given
twice with different values, an empty answer, a non-finite value or one outside
0..2000 gCO2eq/kWh rejects the whole answer with ``BadResponseError``. Rejecting rather than
repairing is deliberate: a feed that sends one absurd value is broken, and the forecast chain
(stale cache, then the history forecaster) is a safer source than a partly trusted answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from webhook.core.series import StepSeries, from_epoch

MAX_INTENSITY_G_PER_KWH = 2000.0
"""Above any real grid (coal plants emit ~1000-1200 g/kWh): larger values are feed errors."""

DataKind = Literal["latest", "forecast", "history"]

ProviderName = Literal["replay", "electricitymaps", "watttime", "ukci", "carbonaware"]
PROVIDER_NAMES: tuple[ProviderName, ...] = (
    "replay",
    "electricitymaps",
    "watttime",
    "ukci",
    "carbonaware",
)


@dataclass(frozen=True)
class IntensityData:
    """Carbon intensity of one zone from one provider, as fetched at ``fetched_at``.

    ``series`` is in gCO2eq/kWh. For ``latest`` it holds one step (the current datum); for
    ``history`` the observed steps; for ``forecast`` the predicted steps. ``issued_at`` is when
    the provider made a forecast (its ``updatedAt``/``generated_at``) where it says so.
    """

    zone: str
    provider: str
    kind: DataKind
    series: StepSeries
    fetched_at: int
    estimated: bool
    issued_at: int | None = None

    @property
    def data_time(self) -> int:
        """When the newest information in the answer was current: the last observed step for
        ``latest``/``history``, the issue time (else the fetch time) for a forecast."""
        if self.kind == "forecast":
            return self.issued_at if self.issued_at is not None else self.fetched_at
        return int(self.series.times[-1])

    def age_s(self, now: float) -> float:
        """Seconds since ``data_time`` (never negative)."""
        return max(0.0, float(now) - self.data_time)

    @property
    def latest_value_g_per_kwh(self) -> float:
        return float(self.series.values[-1])


class Provider(Protocol):
    """A source of carbon intensity for grid zones. All methods are coroutines and raise only
    ``ProviderError`` subclasses. Times are UTC epoch seconds."""

    @property
    def name(self) -> str:
        """The provider's id, e.g. ``electricitymaps``."""

    async def latest(self, zone: str) -> IntensityData:
        """The most recent value for ``zone``."""

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        """The forecast from the current step until about ``now + horizon_s`` (providers
        return what they have; a shorter forecast is not an error)."""

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        """Observed values over ``[start, end)``."""

    async def aclose(self) -> None:
        """Release connections."""


class ProviderError(Exception):
    """A provider could not give a usable answer. The message says which provider, which
    endpoint, which zone and what went wrong; it never contains a credential."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        endpoint: str | None = None,
        zone: str | None = None,
    ) -> None:
        where = " ".join(
            part for part in (endpoint, f"for zone {zone}" if zone else None) if part is not None
        )
        super().__init__(f"{provider}: {where}: {message}" if where else f"{provider}: {message}")
        self.provider = provider
        self.endpoint = endpoint
        self.zone = zone
        self.detail = message

    @property
    def reason(self) -> str:
        return str(self)


class ProviderConfigError(ProviderError):
    """The provider is not usable as configured (a missing key, an unreadable replay file)."""


class UnauthorizedError(ProviderError):
    """HTTP 401/403: the credentials are wrong, or the endpoint (or zone) is outside the key's
    plan. ``endpoint`` names the endpoint that was refused."""

    def __init__(
        self, provider: str, message: str, *, endpoint: str, zone: str | None, status: int
    ) -> None:
        super().__init__(provider, message, endpoint=endpoint, zone=zone)
        self.status = status


class RateLimitedError(ProviderError):
    """HTTP 429 after the retries (or a ``Retry-After`` longer than we are willing to wait)."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        endpoint: str,
        zone: str | None,
        retry_after_s: float | None,
    ) -> None:
        super().__init__(provider, message, endpoint=endpoint, zone=zone)
        self.retry_after_s = retry_after_s


class ProviderTimeoutError(ProviderError):
    """Connecting or reading took longer than the configured timeout, on every attempt."""


class UnavailableError(ProviderError):
    """The provider could not be reached (connection refused/reset, DNS) or answered 5xx."""


class RejectedError(ProviderError):
    """The provider refused the request (HTTP 4xx other than 401/403/429)."""

    def __init__(
        self, provider: str, message: str, *, endpoint: str, zone: str | None, status: int
    ) -> None:
        super().__init__(provider, message, endpoint=endpoint, zone=zone)
        self.status = status


class UnknownZoneError(ProviderError):
    """The provider does not serve this zone (or region, location, file)."""


class BadResponseError(ProviderError):
    """The answer is unusable: malformed JSON, missing fields, empty, conflicting or absurd
    values. ``detail`` says which."""


class ZoneMismatchError(BadResponseError):
    """The answer is for another zone than the one asked for."""

    def __init__(self, provider: str, *, endpoint: str, requested: str, answered: str) -> None:
        super().__init__(
            provider,
            f"answer is for zone {answered!r}, not the requested {requested!r}",
            endpoint=endpoint,
            zone=requested,
        )
        self.requested = requested
        self.answered = answered


def check_zone(provider: str, endpoint: str, requested: str, answered: str | None) -> None:
    """Raise ``ZoneMismatchError`` unless the answer names the requested zone (case-insensitive:
    zone keys are case-insensitive at every provider we speak to)."""
    if answered is not None and answered.casefold() != requested.casefold():
        raise ZoneMismatchError(provider, endpoint=endpoint, requested=requested, answered=answered)


def build_series(
    points: Iterable[tuple[int, float | None]],
    *,
    step_s: int,
    provider: str,
    endpoint: str,
    zone: str,
) -> StepSeries:
    """Validate ``(epoch seconds, gCO2eq/kWh)`` points into a series whose last step lasts
    ``step_s``: sorted, exact duplicates dropped; empty answers, missing, non-finite, negative,
    > 2000 g/kWh or conflicting duplicate values raise ``BadResponseError``."""
    by_time: dict[int, float] = {}
    for time_s, value in points:
        when = from_epoch(time_s).isoformat()
        if value is None or not math.isfinite(value):
            raise BadResponseError(
                provider,
                f"missing or non-finite value {value!r} at {when}",
                endpoint=endpoint,
                zone=zone,
            )
        if value < 0 or value > MAX_INTENSITY_G_PER_KWH:
            raise BadResponseError(
                provider,
                f"absurd intensity {value:g} gCO2eq/kWh at {when} "
                f"(accepted: 0 to {MAX_INTENSITY_G_PER_KWH:g})",
                endpoint=endpoint,
                zone=zone,
            )
        previous = by_time.setdefault(time_s, value)
        if previous != value:
            raise BadResponseError(
                provider,
                f"conflicting values for {when}: {previous:g} and {value:g}",
                endpoint=endpoint,
                zone=zone,
            )
    if not by_time:
        raise BadResponseError(provider, "empty data (no points)", endpoint=endpoint, zone=zone)
    times = np.array(sorted(by_time), dtype=np.int64)
    values = np.array([by_time[int(t)] for t in times], dtype=np.float64)
    return StepSeries(times, values, int(times[-1]) + max(int(step_s), 1))


def epoch(moment: datetime) -> int:
    """Epoch seconds of an aware datetime from a parsed answer."""
    return int(moment.timestamp())


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_answer(
    model: type[ModelT], payload: Any, *, provider: str, endpoint: str, zone: str | None
) -> ModelT:
    """Validate decoded JSON against the wire model; any mismatch is a ``BadResponseError`` naming
    the first offending field."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        count = error.error_count()
        more = f" (and {count - 1} more problem(s))" if count > 1 else ""
        raise BadResponseError(
            provider,
            f"unexpected answer: field {location}: {first['msg']}{more}",
            endpoint=endpoint,
            zone=zone,
        ) from error


def median_step_s(times: list[int], default_s: int) -> int:
    """The typical spacing of sorted-or-not point times (``default_s`` for fewer than two)."""
    unique = sorted(set(times))
    if len(unique) < 2:
        return default_s
    return int(np.median(np.diff(np.array(unique, dtype=np.int64))))

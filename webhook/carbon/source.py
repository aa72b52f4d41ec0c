"""Forecasts for decisions: a provider outage of any length never blocks one.

``ForecastSource`` keeps, per zone, the provider's last forecast and the intensity greenlight
has observed. A background refresher calls ``refresh(zone)`` (I/O, coalesced per zone; it
stores what it got, then raises one ``ProviderError`` naming what failed); the admission path
calls ``snapshot(zone, now)``, which does no I/O and picks, in order:

1. ``provider``    the provider's forecast, fetched less than ``cache.ttl_s`` ago;
2. ``stale-cache`` that forecast, fetched up to ``cache.max_staleness_s`` ago;
3. ``history``     greenlight's own forecast from the observed history (``history_forecast``);
4. ``none``        no data: the caller runs the Job now and records ``reason``.

A provider forecast (fresh or stale) is corrected by its latest observed error when observed
values overlap it (``correct_forecast``). A forecast that no longer covers ``now`` counts as
expired. ``reason`` says why a result is not a fresh provider forecast (the refresh errors,
e.g. the ``UnauthorizedError`` naming the endpoint a free plan lacks).

``choose_forecast`` is the pure decision; ``ForecastSource`` holds the state and does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from webhook.carbon.base import IntensityData, Provider, ProviderError
from webhook.carbon.cache import AsyncTtlCache, Cached, CacheSettings
from webhook.core.forecast import (
    ForecastResult,
    PastForecasts,
    Prediction,
    SourceKind,
    correct_forecast,
    skilled_history_forecast,
)
from webhook.core.series import StepSeries

logger = logging.getLogger(__name__)

HOUR_S = 3600
RECENT_HISTORY_S = 24 * HOUR_S
"""Fallback seed window: what free plans' history endpoints cover."""
HISTORY_GAP_S = 2 * HOUR_S
"""Observed data older than this at a refresh is back-filled from the history endpoint."""

HistoryForecaster = Callable[[StepSeries, int, int], Prediction]
Corrector = Callable[[StepSeries, StepSeries, int], Prediction]


class ForecastSettings(BaseModel):
    """What the forecast chain asks providers for and keeps."""

    model_config = ConfigDict(frozen=True)

    horizon_s: int = Field(
        24 * 3600,
        gt=0,
        description="Forecast horizon requested from providers and forecast from history.",
    )
    history_seed_s: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="Observed history fetched when a zone is first refreshed (falls back to the "
        "last 24 h when the plan refuses the longer window).",
    )
    history_keep_s: int = Field(
        28 * 24 * 3600,
        gt=0,
        description="Observed history kept per zone (the history forecaster looks back 28 days).",
    )
    correct_with_actuals: bool = Field(
        True, description="Correct provider forecasts by their latest observed error."
    )


def _from_history(history: StepSeries, now: int, horizon_s: int) -> Prediction:
    result = skilled_history_forecast(history, now, horizon_s)
    return result.series, result.uncertainty


def skill_aware_forecaster(past: PastForecasts) -> HistoryForecaster:
    """The history forecaster scaled by its own measured skill (``skilled_history_forecast``),
    its past forecasts memoised in ``past`` (one per zone): the simulator's code, unchanged."""

    def forecast(history: StepSeries, now: int, horizon_s: int) -> Prediction:
        result = skilled_history_forecast(history, now, horizon_s, past=past)
        return result.series, result.uncertainty

    return forecast


def _correct(forecast: StepSeries, actuals: StepSeries, now: int) -> Prediction:
    result = correct_forecast(forecast, actuals, now)
    return result.series, result.uncertainty


def choose_forecast(
    *,
    zone: str,
    provider: str,
    now: float,
    forecast: Cached[IntensityData] | None,
    actuals: StepSeries | None,
    error: str | None,
    horizon_s: int,
    cache: CacheSettings,
    correct: bool = True,
    forecaster: HistoryForecaster = _from_history,
    corrector: Corrector = _correct,
    issued: StepSeries | None = None,
) -> ForecastResult:
    """The chain provider -> stale cache -> history -> none, as a pure function of the state.

    ``issued`` holds what earlier forecasts said about hours now past: with it, the correction
    can measure the provider's recent error (and so its uncertainty), not just the latest one.
    """
    reasons: list[str] = [error] if error else []
    if forecast is not None:
        data = forecast.value
        fetched_age = now - forecast.stored_at
        if data.series.end <= now:
            reasons.append(f"the cached {provider} forecast ended before now")
        elif fetched_age <= cache.max_staleness_s:
            source: SourceKind = "provider" if fetched_age < cache.ttl_s else "stale-cache"
            if source == "stale-cache" and not reasons:
                reasons.append(f"the {provider} forecast is {fetched_age:.0f} s old")
            series = data.series
            uncertainty = None
            if correct and actuals is not None:
                if issued is not None and issued.start < series.start:
                    series = merge_observed(issued, series, keep_from=issued.start)
                series, uncertainty = corrector(series, actuals, int(now))
            return ForecastResult(
                zone,
                provider,
                source,
                series,
                data.age_s(now),
                data.estimated,
                "; ".join(reasons) if source == "stale-cache" else None,
                uncertainty,
            )
        else:
            reasons.append(
                f"the cached {provider} forecast is {fetched_age:.0f} s old, beyond the "
                f"{cache.max_staleness_s:.0f} s staleness limit"
            )
    elif not reasons:
        reasons.append(f"no {provider} forecast fetched yet")
    if actuals is not None:
        try:
            series, uncertainty = forecaster(actuals, int(now), horizon_s)
        except ValueError as exc:
            reasons.append(f"history forecast impossible: {exc}")
        else:
            age = max(0.0, now - float(actuals.times[-1]))
            return ForecastResult(
                zone, provider, "history", series, age, True, "; ".join(reasons), uncertainty
            )
    else:
        reasons.append("no observed history to forecast from")
    return ForecastResult(zone, provider, "none", None, None, True, "; ".join(reasons))


def merge_observed(old: StepSeries | None, new: StepSeries, *, keep_from: int) -> StepSeries:
    """Observed steps of ``old`` and ``new`` (``new`` wins where both have a step), without
    steps before ``keep_from`` (the step in force at ``keep_from`` is kept)."""
    if old is None:
        merged_times, merged_values, end = new.times, new.values, new.end
    else:
        points = dict(zip(old.times.tolist(), old.values.tolist(), strict=True))
        points.update(zip(new.times.tolist(), new.values.tolist(), strict=True))
        merged_times = np.array(sorted(points), dtype=np.int64)
        merged_values = np.array([points[t] for t in merged_times.tolist()], dtype=np.float64)
        end = max(old.end, new.end)
    first = max(int(np.searchsorted(merged_times, keep_from, side="right")) - 1, 0)
    return StepSeries(merged_times[first:], merged_values[first:], int(end))


@dataclass
class _ZoneState:
    actuals: StepSeries | None = None
    issued: StepSeries | None = None
    """Every forecast received, the newest winning where they overlap (bounded like actuals)."""
    error: str | None = None


class ForecastSource:
    """Per-zone forecasts kept warm by ``refresh`` and read without I/O by ``snapshot``
    (``refresh``/``age_s`` fit ``webhook.carbon.refresher.Refreshable``)."""

    def __init__(
        self,
        provider: Provider,
        *,
        cache: CacheSettings | None = None,
        settings: ForecastSettings | None = None,
        clock: Callable[[], float] = time.time,
        forecaster: HistoryForecaster | None = None,
        corrector: Corrector = _correct,
    ) -> None:
        """``forecaster``: the history forecaster for every zone; by default each zone gets
        the skill-aware one with its own memo of past forecasts."""
        self._provider = provider
        self._cache_settings = cache or CacheSettings()
        self._settings = settings or ForecastSettings()
        self._clock = clock
        self._forecaster = forecaster
        self._past_forecasts: dict[str, PastForecasts] = {}
        self._corrector = corrector
        # zone -> (what the correction was computed from, its result); see ``snapshot``.
        self._corrections: dict[str, tuple[tuple[object, object, object, int], Prediction]] = {}
        self._forecasts: AsyncTtlCache[IntensityData] = AsyncTtlCache(
            self._cache_settings, clock=clock
        )
        self._states: dict[str, _ZoneState] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}

    @property
    def provider(self) -> Provider:
        return self._provider

    @property
    def zones(self) -> list[str]:
        """Zones refreshed at least once."""
        return sorted(self._states)

    async def aclose(self) -> None:
        await self._provider.aclose()

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        """The best forecast available in memory for ``zone`` at ``now``; never does I/O."""
        state = self._states.get(zone, _ZoneState())
        now_s = self._clock() if now is None else now
        cached = self._forecasts.peek(zone)
        return choose_forecast(
            zone=zone,
            provider=self._provider.name,
            now=now_s,
            forecast=cached,
            actuals=state.actuals,
            error=state.error,
            horizon_s=self._settings.horizon_s,
            cache=self._cache_settings,
            correct=self._settings.correct_with_actuals,
            forecaster=self._zone_forecaster(zone),
            corrector=self._memoised_corrector(zone, (cached, state.actuals, state.issued), now_s),
            issued=state.issued,
        )

    def _zone_forecaster(self, zone: str) -> HistoryForecaster:
        if self._forecaster is not None:
            return self._forecaster
        return skill_aware_forecaster(self._past_forecasts.setdefault(zone, PastForecasts()))

    def _memoised_corrector(
        self, zone: str, inputs: tuple[object, object, object], now: float
    ) -> Corrector:
        """The corrector, computed once per zone for the same data and hour.

        The correction (a regression per lead, ~3 ms) depends on ``now`` only through the
        current hour, and on the data only through the cached forecast, the observed actuals and
        the issued forecasts — objects replaced, never changed, on each refresh. So admission
        requests reuse it until a refresh or the next hour instead of recomputing it.
        """
        hour = int(now) // HOUR_S

        def correct(series: StepSeries, actuals: StepSeries, at: int) -> Prediction:
            held = self._corrections.get(zone)
            if (
                held is not None
                and held[0][3] == hour
                and all(a is b for a, b in zip(held[0][:3], inputs, strict=True))
            ):
                return held[1]
            result = self._corrector(series, actuals, at)
            self._corrections[zone] = ((*inputs, hour), result)
            return result

        return correct

    def age_s(self, zone: str, now: float) -> float | None:
        """Age of the newest data held for ``zone`` (forecast issue time within the staleness
        limit, else the last observation); ``None`` when nothing is held."""
        cached = self._forecasts.peek(zone)
        if cached is not None and now - cached.stored_at <= self._cache_settings.max_staleness_s:
            return cached.value.age_s(now)
        state = self._states.get(zone)
        if state is not None and state.actuals is not None:
            return max(0.0, now - float(state.actuals.times[-1]))
        return None

    async def refresh(self, zone: str) -> None:
        """Fetch what is due for ``zone``: the forecast once past its TTL, the latest value,
        missing history. Concurrent calls for one zone share one refresh. What succeeded is
        stored even when something failed; then a ``ProviderError`` naming every failure is
        raised (after storing it as the zone's ``reason``), so a refresher can count it."""
        task = self._inflight.get(zone)
        if task is None:
            task = asyncio.ensure_future(self._refresh(zone))
            self._inflight[zone] = task
            task.add_done_callback(lambda done: self._done(zone, done))
        await asyncio.shield(task)

    def _done(self, zone: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(zone) is task:
            del self._inflight[zone]
        if not task.cancelled():
            task.exception()

    async def _refresh(self, zone: str) -> None:
        state = self._states.setdefault(zone, _ZoneState())
        errors: list[str] = []
        horizon_s = self._settings.horizon_s
        try:
            cached = await self._forecasts.get(
                zone, lambda: self._provider.forecast(zone, horizon_s)
            )
        except ProviderError as error:
            errors.append(str(error))
        else:
            if cached.error is not None:
                errors.append(str(cached.error))
            else:
                state.issued = merge_observed(
                    state.issued,
                    cached.value.series,
                    keep_from=int(self._clock()) - self._settings.history_keep_s,
                )
        now = int(self._clock())
        await self._fill_history(zone, state, now, errors)
        try:
            latest = await self._provider.latest(zone)
        except ProviderError as error:
            errors.append(str(error))
        else:
            state.actuals = merge_observed(
                state.actuals, latest.series, keep_from=now - self._settings.history_keep_s
            )
        state.error = "; ".join(errors) if errors else None
        if state.error is not None:
            raise ProviderError(
                self._provider.name, f"refresh incomplete: {state.error}", zone=zone
            )

    async def _fill_history(
        self, zone: str, state: _ZoneState, now: int, errors: list[str]
    ) -> None:
        seed_from = now - self._settings.history_seed_s
        start = seed_from if state.actuals is None else max(seed_from, state.actuals.end)
        if now - start < HISTORY_GAP_S:
            return
        windows = [start]
        failure = ""
        if now - start > RECENT_HISTORY_S:
            windows.append(now - RECENT_HISTORY_S)
        for window_start in windows:
            try:
                observed = await self._provider.history(zone, window_start, now)
            except ProviderError as error:
                failure = str(error)
                continue
            state.actuals = merge_observed(
                state.actuals, observed.series, keep_from=now - self._settings.history_keep_s
            )
            return
        errors.append(failure)

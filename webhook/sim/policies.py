"""Scheduling policies replayed against real grid data.

- ``immediate``: start at arrival.
- ``threshold``: the seed system — check the *current* intensity every 5 minutes and start at
  the first check at or below the threshold, or at the max delay.
- ``oracle``: the true future — the contiguous window with the least actual emissions among
  starts in [arrival, arrival + max delay].
- ``greenlight``: what the product knows at each moment (a provider forecast corrected by the
  actuals so far, or its own history forecaster), planned at arrival and re-planned every hour
  while the Job waits, exactly through the planner's ``plan``/``replan`` entry points. With
  forecast vintages, the provider forecast at each hour is every vintage issued by then, the
  newest winning (what the product keeps), so each re-plan sees the latest issue.

Each policy returns the start time of every Job (UTC epoch seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

import numpy as np

from webhook.core.datafiles import ForecastVintages
from webhook.core.forecast import (
    HistoryForecastConfig,
    PastForecasts,
    SkillConfig,
    correct_forecast,
    history_forecast,
    skilled_history_forecast,
)
from webhook.core.planner import (
    EXACT,
    ForecastUncertainty,
    PlannerSettings,
    PlanRequest,
    plan,
    replan,
)
from webhook.core.series import IntArray, StepSeries
from webhook.sim.traces import Job

HOUR_S = 3600
THRESHOLD_CHECK_S = 300
FORECAST_HORIZON_S = 48 * HOUR_S

ForecastSource = Literal["oracle", "dacf", "history", "noisy", "vintages"]
FORECAST_SOURCES: tuple[ForecastSource, ...] = ("oracle", "dacf", "history", "noisy", "vintages")
CORRECTION_LOOKBACK_S = 15 * 86400
"""Past forecasts and actuals the provider-forecast correction learns from."""

Progress = Callable[[int], None]


def immediate(jobs: list[Job], actual: StepSeries) -> IntArray:
    return np.array([job.arrival for job in jobs], dtype=np.int64)


def threshold(jobs: list[Job], actual: StepSeries, threshold_g_per_kwh: float) -> IntArray:
    starts = np.empty(len(jobs), dtype=np.int64)
    for index, job in enumerate(jobs):
        checks = job.arrival + THRESHOLD_CHECK_S * np.arange(
            job.max_delay_s // THRESHOLD_CHECK_S + 1, dtype=np.int64
        )
        position = np.searchsorted(actual.times, checks, side="right") - 1
        below = np.flatnonzero(actual.values[np.clip(position, 0, None)] <= threshold_g_per_kwh)
        starts[index] = checks[below[0]] if below.size else job.arrival + job.max_delay_s
    return starts


def _request(job: Job) -> PlanRequest:
    arrival = datetime.fromtimestamp(job.arrival, tz=UTC)
    latest = datetime.fromtimestamp(job.arrival + job.max_delay_s, tz=UTC)
    return PlanRequest(arrival, job.duration_s, job.energy_kwh, latest)


def oracle(jobs: list[Job], actual: StepSeries) -> IntArray:
    exact = PlannerSettings(min_saving_pct=0.0, uncertainty_z=0.0)
    return np.array(
        [
            int(plan(_request(job), actual, exact, uncertainty=EXACT).start.timestamp())
            for job in jobs
        ],
        dtype=np.int64,
    )


@dataclass(frozen=True)
class Knowledge:
    """What greenlight knows at one moment: a forecast and how far to trust it."""

    forecast: StepSeries
    uncertainty: ForecastUncertainty


class ForecastOracle:
    """What the product would know at each hour, for one forecast source (cached per hour)."""

    def __init__(
        self,
        source: ForecastSource,
        actual: StepSeries,
        provider_forecast: StepSeries | None,
        *,
        noise_sigma: float = 0.08,
        noise_phi: float = 0.85,
        seed: int = 7,
        history_config: HistoryForecastConfig | None = None,
        skill_config: SkillConfig | None = None,
        measure_skill: bool = True,
        vintages: ForecastVintages | None = None,
    ) -> None:
        if source == "dacf" and provider_forecast is None:
            raise ValueError(
                "forecast source 'dacf' needs a file with a forecast column (DACF format)"
            )
        if source == "vintages" and vintages is None:
            raise ValueError("forecast source 'vintages' needs a forecast-vintages file")
        self.vintages = vintages
        self.source = source
        self.actual = actual
        self.history_config = history_config or HistoryForecastConfig()
        self.skill_config = skill_config or SkillConfig()
        self.measure_skill = measure_skill
        self.past_forecasts = PastForecasts()
        if source == "noisy":
            provider_forecast = noisy_forecast(actual, noise_sigma, noise_phi, seed)
        self.provider_forecast = provider_forecast
        self.at_hour = lru_cache(maxsize=64)(self._at_hour)

    def at(self, now: int) -> Knowledge:
        return self.at_hour(now // HOUR_S * HOUR_S)

    def _at_hour(self, hour: int) -> Knowledge:
        if self.source == "oracle":
            return Knowledge(self.actual, EXACT)
        if self.source == "vintages":
            assert self.vintages is not None
            received = self.vintages.received(
                hour, hour - CORRECTION_LOOKBACK_S, hour + FORECAST_HORIZON_S
            )
            if received is not None and received.end > hour:
                return self._corrected(received, hour)
            # No vintage covers now: the product falls back to its own forecaster.
            return self._history(hour)
        if self.source == "history":
            return self._history(hour)
        assert self.provider_forecast is not None
        # The provider's forecast for the next 48 h, corrected by what has been observed.
        # Forecasts received so far: past hours (to measure the error) and the next 48 h.
        received = self.provider_forecast.window(
            hour - CORRECTION_LOOKBACK_S, hour + FORECAST_HORIZON_S
        )
        return self._corrected(received, hour)

    def _corrected(self, received: StepSeries, hour: int) -> Knowledge:
        correction = correct_forecast(
            received, self.actual.window(hour - CORRECTION_LOOKBACK_S, hour + HOUR_S), hour
        )
        return Knowledge(
            correction.series,
            correction.uncertainty or ForecastUncertainty(10.0, correction.decay_per_hour),
        )

    def _history(self, hour: int) -> Knowledge:
        # Only what was observed by then: the product's history store at that hour.
        observed = self.actual.window(
            hour - (self.history_config.lookback_days + self.skill_config.window_days + 2) * 86400,
            hour + HOUR_S,
        )
        if self.measure_skill:
            result = skilled_history_forecast(
                observed,
                hour,
                FORECAST_HORIZON_S,
                config=self.history_config,
                skill_config=self.skill_config,
                past=self.past_forecasts,
            )
        else:
            result = history_forecast(
                observed, hour, FORECAST_HORIZON_S, config=self.history_config
            )
        return Knowledge(result.series, result.uncertainty)


def noisy_forecast(actual: StepSeries, sigma: float, phi: float, seed: int) -> StepSeries:
    """actual x (1 + e), e an AR(1) process with lag-1 ``phi`` and marginal std ``sigma``."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, sigma * np.sqrt(1 - phi * phi), size=len(actual))
    errors = np.empty(len(actual))
    errors[0] = rng.normal(0.0, sigma)
    for index in range(1, len(actual)):
        errors[index] = phi * errors[index - 1] + shocks[index]
    return StepSeries(actual.times, actual.values * (1 + errors), actual.end)


def _check_times(start: int, until: int) -> Iterator[int]:
    """Hour boundaries after ``start`` up to ``until``: when fresh actuals arrive."""
    moment = (start // HOUR_S + 1) * HOUR_S
    while moment < until:
        yield moment
        moment += HOUR_S


def greenlight_start(
    job: Job, knowledge: ForecastOracle, settings: PlannerSettings
) -> tuple[int, int]:
    """Replay the product for one Job: plan at arrival, re-plan at every hour while waiting.

    Returns the start time and the number of times the release moved.
    """
    request = _request(job)
    now = job.arrival
    known = knowledge.at(now)
    first = plan(
        request,
        known.forecast,
        settings,
        uncertainty=known.uncertainty,
        now=datetime.fromtimestamp(now, tz=UTC),
    )
    if not first.deferred:
        return now, 0
    release = int(first.start.timestamp())
    moves = 0
    while True:
        # Wake at the next hour (new data) or at the planned release, whichever comes first.
        next_hour = (now // HOUR_S + 1) * HOUR_S
        now = min(next_hour, release)
        known = knowledge.at(now)
        decision = replan(
            datetime.fromtimestamp(release, tz=UTC),
            request,
            now=datetime.fromtimestamp(now, tz=UTC),
            forecast=known.forecast,
            settings=settings,
            uncertainty=known.uncertainty,
        )
        if decision.action == "release-now":
            return now, moves
        target = int(decision.start.timestamp())
        if decision.action == "move":
            moves += 1
            release = target
        if release <= now:
            return now, moves


def greenlight(
    jobs: list[Job],
    knowledge: ForecastOracle,
    settings: PlannerSettings,
    progress: Progress | None = None,
) -> tuple[IntArray, IntArray]:
    starts = np.empty(len(jobs), dtype=np.int64)
    moves = np.empty(len(jobs), dtype=np.int64)
    for index, job in enumerate(jobs):
        starts[index], moves[index] = greenlight_start(job, knowledge, settings)
        if progress is not None:
            progress(1)
    return starts, moves

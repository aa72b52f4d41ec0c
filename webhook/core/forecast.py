"""Forecasts greenlight makes itself: from recorded history alone, and corrections of a
provider's forecast by its most recent observed error.

Both exploit the same fact about grid carbon intensity: it has a strong daily (and weaker
weekly) shape, and deviations from that shape — and a provider forecast's errors — are strongly
autocorrelated hour to hour (lag-1 about 0.8-0.9), so the latest observation says a lot about
the next few hours and little about tomorrow.

- ``history_forecast``: a recency-weighted hour-of-day profile, blended with an hour-of-week
  profile where enough weeks exist, plus the latest observed deviation from that profile
  decaying at the rate the history itself shows (its lag-1 autocorrelation).
- ``correct_forecast``: the provider's forecast plus its latest observed error, decaying the
  same way (the error's own autocorrelation, estimated from recent errors).
- ``forecast_error_pct``: the recent relative error of a forecast, used by the planner to
  require a predicted saving larger than the forecast's own uncertainty.

All times are UTC epoch seconds; the forecasts are hourly ``StepSeries``. An "observed" step is
one whose start is at or before ``now`` (what a provider's ``latest`` endpoint reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from webhook.core.series import FloatArray, IntArray, StepSeries

HOUR_S = 3600
DAY_HOURS = 24
WEEK_HOURS = 168


@dataclass(frozen=True)
class ForecastUncertainty:
    """Relative error of a forecast: ``error_pct`` at long lead times, shrinking toward zero
    for the next hours as ``error_pct x sqrt(1 - decay^(2 x lead_h))`` — the error of an AR(1)
    process corrected by its latest observed value."""

    error_pct: float
    decay_per_hour: float = 0.0
    by_lead_pct: tuple[float, ...] = ()
    """Measured error (%) at leads 0, 1, 2, ... hours where known; it takes precedence over
    the AR(1) curve (beyond the table, its last value holds)."""
    from_history: bool = False
    """The forecast is greenlight's own, from recorded history (no provider forecast): the
    planner then asks for its wider ``history_uncertainty_z`` margin."""

    def at_lead(self, lead_s: float) -> float:
        lead_h = max(lead_s, 0.0) / 3600.0
        if self.by_lead_pct:
            return self.by_lead_pct[min(math.ceil(lead_h), len(self.by_lead_pct) - 1)]
        return self.error_pct * math.sqrt(max(1.0 - self.decay_per_hour ** (2.0 * lead_h), 0.0))


EXACT = ForecastUncertainty(0.0)
"""A forecast known to be right (the oracle, tests)."""


@dataclass(frozen=True)
class HistoryForecastConfig:
    """Tuning of the history-only forecaster (defaults measured in docs/benchmarks.md)."""

    lookback_days: int = 28
    """History used; older data carries almost no weight at the default half-lives."""
    daily_half_life_days: float = 3.0
    """Recency weighting of the hour-of-day profile: a day this old counts half."""
    weekly_half_life_weeks: float = 2.0
    """Recency weighting of the hour-of-week profile."""
    weekly_blend: float = 0.3
    """Weight of the hour-of-week profile once at least two weeks of history exist."""
    min_anchor_decay: float = 0.0
    max_anchor_decay: float = 0.98
    """Bounds on the per-hour decay of the latest deviation (its lag-1 autocorrelation)."""


def hourly_means(series: StepSeries, start: int, end: int) -> tuple[IntArray, FloatArray]:
    """Hour-aligned steps in ``[start, end)`` and the series' mean over each (any resolution)."""
    first = -(-max(start, series.start) // HOUR_S) * HOUR_S
    last = min(end, series.end) // HOUR_S * HOUR_S
    if last <= first:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    hours = np.arange(first, last, HOUR_S, dtype=np.int64)
    return hours, series.integral(hours, hours + HOUR_S) / HOUR_S


def _lag1(residuals: FloatArray) -> float:
    if residuals.size < 3:
        return 0.0
    head, tail = residuals[:-1], residuals[1:]
    denominator = float(np.sqrt(np.dot(head, head) * np.dot(tail, tail)))
    return float(np.dot(head, tail) / denominator) if denominator > 0 else 0.0


def _autocorrelation(errors: FloatArray, max_lag: int, default_decay: float) -> FloatArray:
    """Autocorrelation of ``errors`` at lags 0..max_lag, clipped to [0, 1].

    It weights the latest error at each lead: the best linear predictor of a stationary error
    from its latest value. Unlike a fixed AR(1) decay it follows the error's real structure,
    e.g. day-ahead forecasts whose errors are correlated within one issuance and not across
    issuances. With less than a day of errors, ``default_decay ** lag``."""
    lags = np.arange(max_lag + 1)
    if errors.size < DAY_HOURS:
        return np.power(default_decay, lags)
    # Uncentred (about zero, not the mean): a persistent bias is an error that persists.
    denominator = float(np.dot(errors, errors))
    rho = np.zeros(max_lag + 1)
    rho[0] = 1.0
    if denominator <= 0:
        return rho
    for lag in range(1, min(max_lag, errors.size - 1) + 1):
        rho[lag] = float(np.dot(errors[:-lag], errors[lag:])) / denominator
    return np.clip(rho, 0.0, 1.0)


def _weighted_profile(
    values: FloatArray, bins: IntArray, ages_h: FloatArray, half_life_h: float, size: int
) -> tuple[FloatArray, FloatArray]:
    weights = np.power(0.5, ages_h / half_life_h)
    total = np.bincount(bins, weights=weights * values, minlength=size)
    weight = np.bincount(bins, weights=weights, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile: FloatArray = np.where(
            weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan
        )
    return profile, weight.astype(np.float64)


@dataclass(frozen=True)
class HistoryForecast:
    """A history-only forecast and how far it is to be trusted."""

    series: StepSeries
    error_pct: float
    """RMS relative deviation (%) of recent history from the profile: the error at long leads."""
    decay_per_hour: float
    """Lag-1 autocorrelation of those deviations: how fast the latest one fades."""

    skill: ForecastSkill | None = None
    """How this forecaster's own past forecasts fared, where it was measured
    (``skilled_history_forecast``); the series is then already shrunk by it."""

    @property
    def uncertainty(self) -> ForecastUncertainty:
        by_lead = self.skill.error_by_lead_pct if self.skill is not None else ()
        return ForecastUncertainty(self.error_pct, self.decay_per_hour, by_lead, from_history=True)


def history_forecast(
    history: StepSeries,
    now: int,
    horizon_s: int,
    config: HistoryForecastConfig | None = None,
) -> HistoryForecast:
    """An hourly forecast for ``[hour of now, now + horizon_s)`` from observations up to ``now``.

    The hour containing ``now`` is taken as observed when the history has it (a provider's
    ``latest``). Raises ``ValueError`` when the history holds no whole hour before ``now``.
    """
    config = config or HistoryForecastConfig()
    current_hour = now // HOUR_S * HOUR_S
    hours, values = hourly_means(
        history, current_hour - config.lookback_days * DAY_HOURS * HOUR_S, current_hour + HOUR_S
    )
    if hours.size == 0:
        raise ValueError("no recorded history before now: cannot forecast from history")
    last_hour = int(hours[-1])
    index = hours // HOUR_S
    ages_h = (last_hour - hours) / HOUR_S

    # The profiles are built from data at least a day old, so every hour-of-day bin has the same
    # vintage: otherwise the bins just observed today lean toward today's level while the next
    # hours' bins still hold yesterday's, and the forecast jumps at the current hour.
    profiled = ages_h >= DAY_HOURS if hours.size > 2 * DAY_HOURS else np.ones(hours.size, bool)
    daily, _ = _weighted_profile(
        values[profiled],
        index[profiled] % DAY_HOURS,
        ages_h[profiled],
        config.daily_half_life_days * DAY_HOURS,
        DAY_HOURS,
    )
    daily = np.where(np.isnan(daily), float(np.mean(values)), daily)
    weekly_weight = config.weekly_blend if hours.size >= 2 * WEEK_HOURS else 0.0
    # Hour-of-week bins are counted from the epoch: any fixed origin works for a 168 h cycle.
    weekly, _ = _weighted_profile(
        values[profiled],
        index[profiled] % WEEK_HOURS,
        ages_h[profiled],
        config.weekly_half_life_weeks * WEEK_HOURS,
        WEEK_HOURS,
    )

    def profile_at(hour_index: IntArray) -> FloatArray:
        base = daily[hour_index % DAY_HOURS]
        if weekly_weight == 0.0:
            return base
        week = weekly[hour_index % WEEK_HOURS]
        return np.where(np.isnan(week), base, (1 - weekly_weight) * base + weekly_weight * week)

    residuals = values - profile_at(index)
    recent = residuals[-14 * DAY_HOURS :]
    decay = float(np.clip(_lag1(recent), config.min_anchor_decay, config.max_anchor_decay))
    scale = np.maximum(np.abs(values[-recent.size :]), 1.0)
    error_pct = float(100.0 * np.sqrt(np.mean((recent / scale) ** 2)))
    target_hours = np.arange(
        last_hour + HOUR_S, max(now + horizon_s, last_hour + HOUR_S + 1), HOUR_S, dtype=np.int64
    )
    leads = (target_hours - last_hour) // HOUR_S
    forecast = profile_at(target_hours // HOUR_S) + residuals[-1] * np.power(decay, leads)
    times = np.concatenate(([last_hour], target_hours))
    values_out = np.concatenate(([values[-1]], forecast))
    series = StepSeries(times, values_out, int(times[-1] + HOUR_S))
    return HistoryForecast(series, error_pct, decay)


@dataclass(frozen=True)
class ForecastCorrection:
    """How a provider forecast was corrected: the error it started from and its decay."""

    series: StepSeries
    latest_error_g_per_kwh: float
    decay_per_hour: float
    observed_until: int
    error_pct: float | None = None
    """The provider forecast's recent RMS relative error (%), where a day of overlap exists."""
    error_by_lead_pct: tuple[float, ...] = ()
    """The corrected forecast's own error (%) at leads 0, 1, 2, ... h, where it was learned."""

    @property
    def uncertainty(self) -> ForecastUncertainty | None:
        if self.error_pct is None:
            return None
        return ForecastUncertainty(self.error_pct, self.decay_per_hour, self.error_by_lead_pct)


def correct_forecast(
    forecast: StepSeries,
    actuals: StepSeries,
    now: int,
    *,
    lookback_h: int = 14 * DAY_HOURS,
    default_decay: float = 0.85,
    max_decay: float = 0.98,
) -> ForecastCorrection:
    """The forecast for hours after ``now``, shifted by its latest observed error weighted at
    each lead by the errors' own autocorrelation at that lag (from the last ``lookback_h``
    hours; ``default_decay`` per hour with less than a day of overlap); the observed hour
    carries its actual value. ``decay_per_hour`` reports the lag-1 autocorrelation.

    Without an overlap of forecast and actuals the forecast is returned unchanged.
    """
    current_hour = now // HOUR_S * HOUR_S
    start = current_hour - lookback_h * HOUR_S
    hours, actual = hourly_means(actuals, start, current_hour + HOUR_S)
    overlap = (hours >= forecast.start) & (hours + HOUR_S <= forecast.end)
    hours, actual = hours[overlap], actual[overlap]
    if hours.size == 0:
        return ForecastCorrection(forecast, 0.0, 0.0, current_hour)
    predicted = forecast.integral(hours, hours + HOUR_S) / HOUR_S
    errors = actual - predicted
    decay = _lag1(errors) if errors.size >= 24 else default_decay
    decay = float(np.clip(decay, 0.0, max_decay))
    last_hour = int(hours[-1])
    future_hours, future = hourly_means(forecast, last_hour + HOUR_S, forecast.end)
    leads = (future_hours - last_hour) // HOUR_S
    # The latest error, weighted per lead by the errors' autocorrelation; where enough past
    # hours exist for a lead, the learned nowcast replaces it.
    corrected = (
        future
        + errors[-1] * _autocorrelation(errors, int(leads.max(initial=0)), default_decay)[leads]
    )
    corrected, error_by_lead = _learned_nowcast(
        hours, actual, predicted, future, leads, fallback=corrected
    )
    return ForecastCorrection(
        _shifted_by_hour(forecast, last_hour, float(actual[-1]), corrected - future),
        float(errors[-1]),
        decay,
        last_hour,
        error_pct=_rms_relative_pct(errors[-7 * DAY_HOURS :], actual[-7 * DAY_HOURS :]),
        error_by_lead_pct=error_by_lead,
    )


def _shifted_by_hour(
    forecast: StepSeries, observed_hour: int, observed: float, offsets: FloatArray
) -> StepSeries:
    """The observed hour at its actual value, then ``forecast`` at its own resolution, each
    whole hour after it shifted by its correction (a half-hourly or 5-minute forecast keeps its
    shape; a trailing partial hour keeps the last correction)."""
    start = observed_hour + HOUR_S
    if forecast.end <= start:
        return StepSeries(np.array([observed_hour]), np.array([observed]), start)
    rest = forecast.window(start, forecast.end)
    times = np.maximum(rest.times, start)
    hour_index = np.minimum((times - start) // HOUR_S, max(offsets.size - 1, 0))
    shifted = rest.values + (offsets[hour_index] if offsets.size else 0.0)
    return StepSeries(
        np.concatenate(([observed_hour], times)),
        np.concatenate(([observed], shifted)),
        rest.end,
    )


NOWCAST_MIN_SAMPLES = 48
"""Past (hour, lead) pairs needed before a lead's nowcast is learned rather than assumed."""


def _learned_nowcast(
    hours: IntArray,
    actual: FloatArray,
    predicted: FloatArray,
    future: FloatArray,
    leads: IntArray,
    *,
    fallback: FloatArray,
    ridge: float = 1e-3,
) -> tuple[FloatArray, tuple[float, ...]]:
    """For each lead L, learn from the recent hours how the actual intensity moves over L
    hours compared with what the forecast says, and apply it from now.

    Ridge least squares of ``A(t+L) - A(t)`` on the forecast's change ``F(t+L) - F(t)``, the
    latest two errors ``e(t)``, ``e(t-1)``, the latest actual step ``A(t) - A(t-1)``, a
    constant, and ``e(t)`` once more for targets in the same UTC day as ``t`` (day-ahead
    forecasts are issued per day: their errors persist within an issuance, not across). The
    fit is shrunk toward "the forecast's change", i.e. the latest error carried unchanged.
    Leads with fewer than ``NOWCAST_MIN_SAMPLES`` past pairs keep their ``fallback`` value.

    Also returns the fit's RMS error relative to the mean level (%) at leads 0, 1, 2, ... h
    for the consecutive leads it learned (empty when none): the nowcast's own uncertainty.
    """
    errors = actual - predicted
    day = hours // 86400
    scale = max(float(np.std(actual)), 1.0)
    prior = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    identity = np.eye(prior.size)
    last = actual.size - 1
    target_days = (hours[-1] + leads * HOUR_S) // 86400

    def features(origin: IntArray, forecast_change: FloatArray, same_day: FloatArray) -> FloatArray:
        return np.column_stack(
            (
                forecast_change,
                errors[origin],
                errors[origin - 1],
                actual[origin] - actual[origin - 1],
                np.full(origin.size, scale),
                errors[origin] * same_day,
            )
        )

    out = fallback.copy()
    level = max(float(np.mean(np.abs(actual))), 1.0)
    error_by_lead: list[float] = [0.0]
    for index, lead in enumerate(leads.tolist()):
        origin = np.arange(1, actual.size - lead)
        if origin.size < NOWCAST_MIN_SAMPLES:
            continue
        x = features(
            origin,
            predicted[origin + lead] - predicted[origin],
            (day[origin + lead] == day[origin]).astype(np.float64),
        )
        y = actual[origin + lead] - actual[origin]
        gram = x.T @ x + ridge * origin.size * scale * scale * identity
        coefficients = prior + np.linalg.solve(gram, x.T @ (y - x @ prior))
        if lead == len(error_by_lead):
            residual = y - x @ coefficients
            error_by_lead.append(100.0 * float(np.sqrt(np.mean(residual * residual))) / level)
        now = features(
            np.array([last]),
            np.array([future[index] - predicted[last]]),
            np.array([float(target_days[index] == day[last])]),
        )[0]
        out[index] = actual[last] + float(now @ coefficients)
    return out, tuple(error_by_lead) if len(error_by_lead) > 1 else ()


def forecast_error_pct(
    forecast: StepSeries, actuals: StepSeries, now: int, *, lookback_h: int = 7 * DAY_HOURS
) -> float | None:
    """Root-mean-square relative error (%) of ``forecast`` against the actuals over the last
    ``lookback_h`` observed hours; ``None`` without enough overlap (fewer than 24 hours)."""
    current_hour = now // HOUR_S * HOUR_S
    hours, actual = hourly_means(actuals, current_hour - lookback_h * HOUR_S, current_hour)
    overlap = (hours >= forecast.start) & (hours + HOUR_S <= forecast.end)
    hours, actual = hours[overlap], actual[overlap]
    if hours.size < 24:
        return None
    predicted = forecast.integral(hours, hours + HOUR_S) / HOUR_S
    return _rms_relative_pct(actual - predicted, actual)


def _rms_relative_pct(errors: FloatArray, actual: FloatArray) -> float | None:
    """RMS of errors relative to the actual values (%), None with less than a day of them."""
    if errors.size < DAY_HOURS:
        return None
    scale = np.maximum(np.abs(actual), 1.0)
    return float(100.0 * np.sqrt(np.mean((errors / scale) ** 2)))


# --- The one forecast type decisions read -------------------------------------------------

SourceKind = Literal["provider", "stale-cache", "history", "none"]
"""Where a forecast came from (``webhook.carbon.source`` documents the chain)."""
Prediction = tuple[StepSeries, ForecastUncertainty | None]
"""A forecast series and, where it can be measured, how far to trust it."""


@dataclass(frozen=True)
class ForecastResult:
    """The forecast a decision uses, where it came from, and why it is not fresher.

    ``series`` is in gCO2eq/kWh (``None`` only for ``source == "none"``); ``age_s`` is the age
    of the newest information behind it (forecast issue time, or last observation).
    """

    zone: str
    provider: str
    source: SourceKind
    series: StepSeries | None
    age_s: float | None
    estimated: bool
    reason: str | None
    uncertainty: ForecastUncertainty | None = None
    """Measured relative error of ``series`` (None: unknown, the planner assumes its default)."""

    @property
    def has_data(self) -> bool:
        return self.series is not None


class ForecastSnapshots(Protocol):
    """Forecasts held in memory, per zone: what the webhook and the reconciler plan on.
    ``snapshot`` never does I/O (``webhook.carbon.source.ForecastSource`` and its memo
    ``webhook.carbon.refresher.WarmForecasts`` implement it)."""

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult: ...


@dataclass(frozen=True)
class SkillConfig:
    """How greenlight measures its own history forecaster (defaults in docs/benchmarks.md)."""

    window_days: int = 14
    """Past forecasts scored: the most recent two weeks of origins, every hour."""
    max_lead_h: int = 48
    """Leads measured; beyond it the last lead's skill holds."""
    min_samples: int = 72
    """Scored forecasts needed at a lead before its skill counts; fewer means no skill (0)."""
    learned: bool = False
    """True: combine the history's signals per lead by their measured past effect
    (``learned_history_forecast``); False (the default): scale the plain history forecast by
    its measured skill. Off because on a random walk it still predicts swings that never come,
    and its gain (about one point fewer Jobs made worse at equal capture, on the 16 history
    runs and on 2021) needs a wider margin than the provider forecast's default
    (docs/benchmarks.md, "The learned combination")."""
    ridge: float = 0.05
    """Shrinkage of the learned combination toward "no change" (the current level), as a share
    of each signal's own variance: what keeps a signal seen only a few times from moving the
    forecast. 0.05 was set on four runs and not re-measured; it shrinks a swing that always
    comes true by about 5 %."""


@dataclass(frozen=True)
class ForecastSkill:
    """How far the changes a forecaster predicted came true, per lead 0, 1, 2, ... hours.

    For each lead L, over forecasts made in the last ``window_days`` whose target hour has been
    observed: the least-squares slope of the actual change ``A(t+L) - A(t)`` on the predicted
    change ``F_t(t+L) - A(t)`` (clipped to [0, 1]: 1 = the predicted swings happen, 0 = no
    skill), and the RMS error left after scaling the prediction by it, relative to the mean
    level (%). Lead 0 is the observed hour: slope 1, error 0.
    """

    slope_by_lead: tuple[float, ...]
    error_by_lead_pct: tuple[float, ...]
    samples: int
    """Scored forecasts at lead 1 (0: nothing measured yet)."""

    def slope_at(self, lead_h: int) -> float:
        return self.slope_by_lead[min(max(lead_h, 0), len(self.slope_by_lead) - 1)]

    @property
    def has_skill(self) -> bool:
        return any(slope > 0 for slope in self.slope_by_lead[1:])


class PastForecasts:
    """The history forecaster's forecasts at past hours, kept so each is made once.

    A memo, not state: a forecast made at an hour depends only on the history up to that hour,
    so recomputing it from the same history gives the same values. Entries older than the skill
    window are dropped.
    """

    def __init__(self) -> None:
        self._by_origin: dict[int, tuple[float, FloatArray] | None] = {}
        self._features: dict[int, tuple[float, FloatArray] | None] = {}

    def features_at(
        self, history: StepSeries, origin: int, config: HistoryForecastConfig, max_lead_h: int
    ) -> tuple[float, FloatArray] | None:
        """The observed value at ``origin`` and ``history_signals`` for leads 1..max_lead_h."""
        if origin not in self._features:
            try:
                self._features[origin] = history_signals(history, origin, max_lead_h, config)
            except ValueError:
                self._features[origin] = None
        return self._features[origin]

    def at(
        self, history: StepSeries, origin: int, config: HistoryForecastConfig, max_lead_h: int
    ) -> tuple[float, FloatArray] | None:
        """The observed value at ``origin`` and the forecast for leads 1..``max_lead_h``."""
        if origin not in self._by_origin:
            try:
                made = history_forecast(history, origin, max_lead_h * HOUR_S, config=config)
            except ValueError:
                self._by_origin[origin] = None
            else:
                _, values = hourly_means(
                    made.series, origin + HOUR_S, origin + (max_lead_h + 1) * HOUR_S
                )
                leads = np.full(max_lead_h, np.nan)
                leads[: values.size] = values
                self._by_origin[origin] = (float(made.series.values[0]), leads)
        return self._by_origin[origin]

    def drop_before(self, origin: int) -> None:
        for memo in (self._by_origin, self._features):
            for old in [key for key in memo if key < origin]:
                del memo[old]


def _past_origins(
    history: StepSeries, now: int, skill_config: SkillConfig, past: PastForecasts
) -> tuple[IntArray, FloatArray, float] | None:
    """The origins scored at ``now`` (every hour of the last ``window_days``), what was
    observed at each ``origin + L`` for leads 1..max_lead_h (NaN where not yet observed, or
    missing), and the window's mean level (at least 1) that errors are relative to. Drops the
    memo's older entries; None where the window holds no observation."""
    current_hour = now // HOUR_S * HOUR_S
    first = current_hour - skill_config.window_days * DAY_HOURS * HOUR_S
    past.drop_before(first)
    hours, observed = hourly_means(history, first, current_hour + HOUR_S)
    if hours.size == 0:
        return None
    actual = np.full((current_hour - first) // HOUR_S + 1, np.nan)
    actual[(hours - first) // HOUR_S] = observed
    origins = np.arange(first, current_hour, HOUR_S, dtype=np.int64)
    index = np.arange(origins.size)[:, None] + np.arange(1, skill_config.max_lead_h + 1)[None, :]
    realised = np.where(index < actual.size, actual[np.minimum(index, actual.size - 1)], np.nan)
    level = max(float(np.nanmean(np.abs(observed))), 1.0)
    return origins, realised, level


def measure_skill(
    history: StepSeries,
    now: int,
    *,
    config: HistoryForecastConfig | None = None,
    skill_config: SkillConfig | None = None,
    past: PastForecasts | None = None,
) -> ForecastSkill:
    """Score the history forecaster's forecasts made at each hour of the last
    ``window_days`` against what was observed since, using only data up to ``now``."""
    config = config or HistoryForecastConfig()
    skill_config = skill_config or SkillConfig()
    past = past if past is not None else PastForecasts()
    max_lead = skill_config.max_lead_h
    window = _past_origins(history, now, skill_config, past)
    if window is None:
        return ForecastSkill((1.0,), (0.0,), 0)
    origins, realised, level = window
    base = np.full(origins.size, np.nan)
    predicted = np.full((origins.size, max_lead), np.nan)
    for row, origin in enumerate(origins.tolist()):
        made = past.at(history, origin, config, max_lead)
        if made is not None:
            base[row], predicted[row] = made
    predicted_change = predicted - base[:, None]
    actual_change = realised - base[:, None]
    valid = np.isfinite(predicted_change) & np.isfinite(actual_change)
    slopes, errors = [1.0], [0.0]
    for lead in range(max_lead):
        ok = valid[:, lead]
        if int(ok.sum()) < skill_config.min_samples:
            slopes.append(0.0)
            errors.append(errors[-1])
            continue
        p, r = predicted_change[ok, lead], actual_change[ok, lead]
        denominator = float(np.dot(p, p))
        slope = float(np.clip(np.dot(p, r) / denominator, 0.0, 1.0)) if denominator > 0 else 0.0
        residual = r - slope * p
        slopes.append(slope)
        errors.append(100.0 * float(np.sqrt(np.mean(residual * residual))) / level)
    return ForecastSkill(tuple(slopes), tuple(errors), int(valid[:, 0].sum()))


def skilled_history_forecast(
    history: StepSeries,
    now: int,
    horizon_s: int,
    *,
    config: HistoryForecastConfig | None = None,
    skill_config: SkillConfig | None = None,
    past: PastForecasts | None = None,
) -> HistoryForecast:
    """The history forecast with its predicted changes scaled by its measured skill per lead
    (``measure_skill``), its uncertainty by lead the error left after that scaling.

    Where the forecaster has shown no skill at a lead, the forecast there is the current level:
    the planner then sees nothing to gain by waiting that long, and runs the Job now.
    """
    config = config or HistoryForecastConfig()
    if (skill_config or SkillConfig()).learned:
        return learned_history_forecast(
            history, now, horizon_s, config=config, skill_config=skill_config, past=past
        )
    raw = history_forecast(history, now, horizon_s, config=config)
    skill = measure_skill(history, now, config=config, skill_config=skill_config, past=past)
    series = raw.series
    observed_hour = int(series.times[0])
    level = float(series.values[0])
    leads = (series.times - observed_hour) // HOUR_S
    slopes = np.array(skill.slope_by_lead)[np.minimum(leads, len(skill.slope_by_lead) - 1)]
    shrunk = level + slopes * (series.values - level)
    return HistoryForecast(
        StepSeries(series.times, shrunk, series.end), raw.error_pct, raw.decay_per_hour, skill
    )


# --- The learned combination ---------------------------------------------------------------

SIGNALS = ("daily shape", "day-type shape", "latest deviation", "day's deviation")
"""What the history says about the change from now to a later hour (``history_signals``)."""
WEEKEND_DAYS = (5, 6)
"""Saturday and Sunday (Monday = 0), by UTC day."""


def _weekday(hour_index: IntArray) -> IntArray:
    # The epoch, day 0, was a Thursday (3).
    weekday: IntArray = (hour_index // DAY_HOURS + 3) % 7
    return weekday


def history_signals(
    history: StepSeries, now: int, max_lead_h: int, config: HistoryForecastConfig | None = None
) -> tuple[float, FloatArray]:
    """The observed value ``A`` at ``now``'s hour and, for leads 1..``max_lead_h``, the
    change the history suggests by each of its signals (``SIGNALS``, columns):

    - the daily shape: the profile's change from now to the target hour (the recency-weighted
      hour-of-day profile blended with the hour-of-week one, as in ``history_forecast``);
    - the day-type shape: how much more the weekday or weekend profile changes than that;
    - the latest deviation from the profile (the same for every lead);
    - the day's deviation so far: its mean over the last 24 hours (a windy or a still day).

    How much of each comes true at each lead is what ``learned_history_forecast`` measures.
    Raises ``ValueError`` when the history holds no whole hour before ``now``.
    """
    config = config or HistoryForecastConfig()
    current_hour = now // HOUR_S * HOUR_S
    hours, values = hourly_means(
        history, current_hour - config.lookback_days * DAY_HOURS * HOUR_S, current_hour + HOUR_S
    )
    if hours.size == 0:
        raise ValueError("no recorded history before now: cannot forecast from history")
    index = hours // HOUR_S
    last = int(index[-1])
    ages_h = (last - index).astype(np.float64)
    profiled = ages_h >= DAY_HOURS if hours.size > 2 * DAY_HOURS else np.ones(hours.size, bool)
    old, old_index, old_ages = values[profiled], index[profiled], ages_h[profiled]
    mean = float(np.mean(values))
    daily, _ = _weighted_profile(
        old, old_index % DAY_HOURS, old_ages, config.daily_half_life_days * DAY_HOURS, DAY_HOURS
    )
    daily = np.where(np.isnan(daily), mean, daily)
    weekly_weight = config.weekly_blend if hours.size >= 2 * WEEK_HOURS else 0.0
    weekly, _ = _weighted_profile(
        old,
        old_index % WEEK_HOURS,
        old_ages,
        config.weekly_half_life_weeks * WEEK_HOURS,
        WEEK_HOURS,
    )
    # Weekday and weekend hour-of-day profiles, over the longer (weekly) half-life: a weekend
    # profile has two days a week to learn from.
    weekend_bin = np.isin(_weekday(old_index), WEEKEND_DAYS).astype(np.int64) * DAY_HOURS
    by_type, _ = _weighted_profile(
        old,
        weekend_bin + old_index % DAY_HOURS,
        old_ages,
        config.weekly_half_life_weeks * WEEK_HOURS,
        2 * DAY_HOURS,
    )

    def profile_at(hour_index: IntArray) -> FloatArray:
        base = daily[hour_index % DAY_HOURS]
        if weekly_weight == 0.0:
            return base
        week = weekly[hour_index % WEEK_HOURS]
        return np.where(np.isnan(week), base, (1 - weekly_weight) * base + weekly_weight * week)

    def type_excess_at(hour_index: IntArray) -> FloatArray:
        weekend = np.isin(_weekday(hour_index), WEEKEND_DAYS).astype(np.int64) * DAY_HOURS
        typed = by_type[weekend + hour_index % DAY_HOURS]
        excess = typed - daily[hour_index % DAY_HOURS]
        return np.where(np.isnan(excess), 0.0, excess)

    now_index = np.array([last], dtype=np.int64)
    targets = last + np.arange(1, max_lead_h + 1, dtype=np.int64)
    deviations = values[-DAY_HOURS:] - profile_at(index[-DAY_HOURS:])
    signals = np.empty((max_lead_h, len(SIGNALS)))
    signals[:, 0] = profile_at(targets) - profile_at(now_index)[0]
    signals[:, 1] = type_excess_at(targets) - type_excess_at(now_index)[0]
    signals[:, 2] = deviations[-1]
    signals[:, 3] = float(np.mean(deviations))
    return float(values[-1]), signals


@dataclass(frozen=True)
class LearnedCombination:
    """Per lead 1, 2, ... hours, the weight of each history signal (``SIGNALS``) in the change
    to expect, fitted on past origins, and the RMS error (% of the mean level) left."""

    weights_by_lead: FloatArray
    """Shape (leads, signals); a lead not yet learned has all weights 0 (no change)."""
    error_by_lead_pct: tuple[float, ...]
    """Leads 0, 1, 2, ... (lead 0, the observed hour: 0)."""
    samples: int
    level_g_per_kwh: float = 1.0
    """The mean level the errors are relative to."""


def learn_combination(
    history: StepSeries,
    now: int,
    *,
    config: HistoryForecastConfig | None = None,
    skill_config: SkillConfig | None = None,
    past: PastForecasts | None = None,
) -> LearnedCombination:
    """For each lead L, ridge least squares of the actual change ``A(t+L) - A(t)`` on the
    signals at each past origin ``t`` of the last ``window_days`` whose target has been
    observed (by ``now``: strictly causal), shrunk toward all-zero weights ("no change")."""
    config = config or HistoryForecastConfig()
    skill_config = skill_config or SkillConfig()
    past = past if past is not None else PastForecasts()
    max_lead = skill_config.max_lead_h
    size = len(SIGNALS)
    window = _past_origins(history, now, skill_config, past)
    if window is None:
        return LearnedCombination(np.zeros((max_lead, size)), (0.0,), 0, 1.0)
    origins, realised, level = window
    base = np.full(origins.size, np.nan)
    signals = np.full((origins.size, max_lead, size), np.nan)
    for row, origin in enumerate(origins.tolist()):
        made = past.features_at(history, origin, config, max_lead)
        if made is not None:
            base[row], signals[row] = made
    change = realised - base[:, None]
    valid = np.isfinite(change) & np.all(np.isfinite(signals), axis=2)
    # All leads at once: invalid pairs weigh nothing.
    x = np.where(valid[:, :, None], signals, 0.0)
    y = np.where(valid, change, 0.0)
    counts = valid.sum(axis=0)
    gram = np.einsum("nlk,nlj->lkj", x, x)
    # Ridge on each signal's own scale: a signal that barely varied (a flat profile) is shrunk
    # as much as one that did, relative to what it could explain.
    diagonal = np.maximum(np.einsum("lkk->lk", gram), 1e-9)
    penalty = skill_config.ridge * diagonal[:, :, None] * np.eye(size)[None, :, :]
    weights = np.linalg.solve(gram + penalty, np.einsum("nlk,nl->lk", x, y)[:, :, None])[..., 0]
    learned = counts >= skill_config.min_samples
    weights[~learned] = 0.0
    residual = y - np.einsum("nlk,lk->nl", x, weights)
    rms = np.sqrt(np.sum(residual * residual, axis=0) / np.maximum(counts, 1))
    errors = [0.0]
    for lead in range(max_lead):
        # A lead not learned yet keeps the error of the one before (it forecasts no change).
        errors.append(100.0 * float(rms[lead]) / level if learned[lead] else errors[-1])
    return LearnedCombination(weights, tuple(errors), int(valid[:, 0].sum()), level)


def learned_history_forecast(
    history: StepSeries,
    now: int,
    horizon_s: int,
    *,
    config: HistoryForecastConfig | None = None,
    skill_config: SkillConfig | None = None,
    past: PastForecasts | None = None,
) -> HistoryForecast:
    """The current level plus, at each lead, the history's signals weighted as they have
    measured up at that lead (``learn_combination``); the uncertainty by lead is the error the
    fit left. Where nothing has been learned yet the forecast stays at the current level (the
    Job runs now).

    ``skill`` reports, per lead, the share of the daily shape's predicted change that the fit
    keeps (its weight) and the same errors, so callers reading skill keep working."""
    config = config or HistoryForecastConfig()
    skill_config = skill_config or SkillConfig()
    raw = history_forecast(history, now, horizon_s, config=config)
    learned = learn_combination(history, now, config=config, skill_config=skill_config, past=past)
    series = raw.series
    observed_hour = int(series.times[0])
    leads = (series.times - observed_hour) // HOUR_S
    max_lead = int(leads.max(initial=0))
    level, signals = history_signals(history, now, max(max_lead, 1), config)
    rows = np.minimum(np.maximum(leads[1:], 1), skill_config.max_lead_h) - 1
    change = np.einsum("ij,ij->i", signals[leads[1:] - 1], learned.weights_by_lead[rows])
    values = np.concatenate(([level], level + change))
    # The planner judges a saving relative to running now, so the error is stated relative to
    # the current level too: at a low moment the same g/kWh of error is a larger share.
    scale = learned.level_g_per_kwh / max(level, 1.0)
    skill = ForecastSkill(
        (1.0, *np.clip(learned.weights_by_lead[:, 0], 0.0, 1.0).tolist()),
        tuple(error * scale for error in learned.error_by_lead_pct),
        learned.samples,
    )
    return HistoryForecast(
        StepSeries(series.times, values, series.end), raw.error_pct, raw.decay_per_hour, skill
    )

"""The window planner: when should a deferrable Job start?

Pure and deterministic. Given the arrival time, the expected duration and energy, the latest
allowed start (from the max delay and/or the deadline) and a forecast of carbon intensity at any
resolution, it finds the start whose whole run has the least expected emissions — integrating
over the run, not sampling its first hour — and defers only when the predicted saving is worth
it: above the minimum saving *and* above the forecast's own uncertainty at that lead time.

Emissions of a run from s to s+d: energy/d x integral of intensity over [s, s+d). For a step
series that integral is piecewise linear in s, with kinks where s or s+d crosses a step
boundary, so the minimum lies at one of: the earliest start, the latest start, or a start or end
on a boundary. Those candidates are evaluated together with numpy.

``replan`` is what the reconciler calls while a Job waits: fresher forecast, actuals so far ->
keep the release time or move it (earlier or later, never past the latest start), with a small
hysteresis so plans do not churn on noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from webhook.core.forecast import EXACT, ForecastUncertainty
from webhook.core.reasons import ReasonCode
from webhook.core.series import FloatArray, StepSeries, from_epoch, to_epoch

__all__ = [
    "EXACT",
    "ForecastUncertainty",
    "Plan",
    "PlanRequest",
    "PlannerSettings",
    "Replan",
    "latest_start",
    "plan",
    "replan",
]

TIE_TOLERANCE = 1e-9
"""Relative difference under which two candidate windows count as equal (earliest wins)."""


class PlannerSettings(BaseModel):
    """How the planner trades waiting against saving."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_saving_pct: float = Field(
        default=1.0,
        ge=0.0,
        le=100.0,
        description="Defer only when the predicted saving is at least this share of the "
        "emissions of running now (percent).",
    )
    min_saving_g: float = Field(
        default=0.0,
        ge=0.0,
        description="... and at least this many grams of CO2eq (0 = no absolute floor).",
    )
    uncertainty_z: float = Field(
        default=0.5,
        ge=0.0,
        description="Required margin in forecast standard errors at admission: a Job is "
        "deferred only if the predicted saving is above uncertainty_z x the forecast's relative "
        "error at the planned lead time.",
    )
    history_uncertainty_z: float = Field(
        default=0.9,
        ge=0.0,
        description="The same margin at admission when the forecast is greenlight's own, from "
        "recorded history (no provider forecast: free plans, outages). Wider, because a history "
        "forecast cannot see weather-driven swings: at 0.9 every zone and year measured, "
        "2021-2023, kept at most 5 % of Jobs made worse (docs/benchmarks.md).",
    )
    default_forecast_error_pct: float = Field(
        default=10.0,
        ge=0.0,
        description="Relative error (%) assumed for a forecast whose recent accuracy is unknown.",
    )
    waiting_uncertainty_z: float = Field(
        default=0.0,
        ge=0.0,
        description="The same margin while a deferred Job waits (re-planning). Once the arrival "
        "opportunity is gone, following the best current estimate serves better than a margin "
        "(measured in docs/benchmarks.md).",
    )
    replan_hysteresis_pct: float = Field(
        default=1.0,
        ge=0.0,
        description="A re-plan moves the release only if that improves the expected emissions "
        "by at least this share of the current plan's (percent).",
    )
    cost_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Weight of electricity cost against carbon in the objective: 0 = carbon "
        "only (default), 1 = cost only. Both are normalised by their mean over the window.",
    )


@dataclass(frozen=True)
class PlanRequest:
    """One Job to place: when it arrived, how long it runs, what it uses, how late it may start."""

    arrival: datetime
    duration_s: int
    energy_kwh: float
    latest_start: datetime

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"duration must be positive, got {self.duration_s} s")
        if not math.isfinite(self.energy_kwh) or self.energy_kwh < 0:
            raise ValueError(f"energy must be a finite, non-negative kWh, got {self.energy_kwh}")
        to_epoch(self.arrival)
        to_epoch(self.latest_start)


@dataclass(frozen=True)
class Plan:
    """The decision with the numbers behind it."""

    decided_at: datetime
    start: datetime
    deferred: bool
    reason: ReasonCode
    detail: str
    latest_start: datetime
    intensity_now_g_per_kwh: float
    intensity_planned_g_per_kwh: float
    emissions_now_g: float
    emissions_planned_g: float
    savings_g: float
    savings_pct: float
    cost_now_usd: float | None
    cost_planned_usd: float | None
    forecast_end: datetime

    @property
    def delay_s(self) -> float:
        return (self.start - self.decided_at).total_seconds()


def _percent(part: float, whole: float) -> float:
    """``part`` as a percentage of ``whole`` (0 where ``whole`` is not positive)."""
    return 100.0 * part / whole if whole > 0 else 0.0


def latest_start(
    arrival: datetime, duration_s: int, max_delay_s: int | None, deadline: datetime | None
) -> datetime:
    """The latest allowed start: ``arrival + max_delay`` and/or ``deadline - duration``,
    whichever is earlier, never before ``arrival``."""
    bounds = []
    if max_delay_s is not None:
        bounds.append(arrival + timedelta(seconds=max(max_delay_s, 0)))
    if deadline is not None:
        bounds.append(deadline - timedelta(seconds=duration_s))
    if not bounds:
        raise ValueError("a max delay or a deadline is required")
    return max(min(bounds), arrival)


def _candidates(series: StepSeries, earliest: int, latest: int, duration_s: int) -> FloatArray:
    edges = np.append(series.times, series.end).astype(np.float64)
    starts = np.concatenate((edges, edges - duration_s, [earliest, latest]))
    starts = starts[(starts >= earliest) & (starts <= latest)]
    return np.unique(starts)


def _window_means(series: StepSeries, starts: FloatArray, duration_s: int) -> FloatArray:
    return series.integral(starts, starts + duration_s) / duration_s


@dataclass(frozen=True)
class _Evaluation:
    start: int
    intensity_now: float
    intensity_best: float
    cost_now: float | None
    cost_best: float | None


def _evaluate(
    *,
    earliest: int,
    latest: int,
    duration_s: int,
    energy_kwh: float,
    forecast: StepSeries,
    prices: StepSeries | None,
    cost_weight: float,
) -> _Evaluation:
    starts = _candidates(forecast, earliest, latest, duration_s)
    intensity = _window_means(forecast, starts, duration_s)
    objective = intensity
    price_means: FloatArray | None = None
    if prices is not None:
        price_means = _window_means(prices, starts, duration_s)
        if cost_weight > 0:
            carbon_scale = max(float(np.mean(np.abs(intensity))), 1e-9)
            cost_scale = float(np.mean(np.abs(price_means)))
            if cost_scale > 0:
                objective = (1 - cost_weight) * intensity / carbon_scale + (
                    cost_weight * price_means / cost_scale
                )
    best_value = float(np.min(objective))
    tolerance = TIE_TOLERANCE * max(abs(best_value), 1.0)
    best = int(np.flatnonzero(objective <= best_value + tolerance)[0])
    now_index = 0  # candidates are sorted and include `earliest`
    return _Evaluation(
        start=int(starts[best]),
        intensity_now=float(intensity[now_index]),
        intensity_best=float(intensity[best]),
        cost_now=None if price_means is None else float(price_means[now_index] * energy_kwh),
        cost_best=None if price_means is None else float(price_means[best] * energy_kwh),
    )


def plan(
    request: PlanRequest,
    forecast: StepSeries,
    settings: PlannerSettings,
    *,
    prices: StepSeries | None = None,
    uncertainty: ForecastUncertainty | None = None,
    now: datetime | None = None,
) -> Plan:
    """Choose the start for ``request`` from ``forecast`` (gCO2eq/kWh at any resolution) and,
    optionally, ``prices`` (USD/kWh). ``now`` (default: the arrival) is when the decision is
    made: the earliest possible start. ``prices`` must cover the same span as the forecast.

    Windows running past the forecast's end are not considered (the planner does not guess);
    when even a start now runs past it, the forecast's last value is held for the comparison.
    """
    decided = to_epoch(now or request.arrival)
    latest = max(to_epoch(request.latest_start), decided)
    duration = request.duration_s
    if uncertainty is None:
        uncertainty = ForecastUncertainty(settings.default_forecast_error_pct)

    covered_latest = min(latest, forecast.end - duration)
    usable = forecast
    if covered_latest < decided:
        usable = forecast.extended_to(decided + duration)
        covered_latest = decided
    if prices is not None:
        prices = prices.extended_to(max(usable.end, decided + duration))
    if decided < usable.start:
        raise ValueError(
            f"forecast starts at {from_epoch(usable.start).isoformat()}, after the decision time "
            f"{from_epoch(decided).isoformat()}"
        )
    evaluation = _evaluate(
        earliest=decided,
        latest=covered_latest,
        duration_s=duration,
        energy_kwh=request.energy_kwh,
        forecast=usable,
        prices=prices,
        cost_weight=settings.cost_weight,
    )
    energy = request.energy_kwh
    emissions_now = evaluation.intensity_now * energy
    emissions_best = evaluation.intensity_best * energy
    savings = emissions_now - emissions_best
    savings_pct = _percent(savings, emissions_now)
    # Relative to zero or negative emissions, any real saving is worth the full percentage.
    judged_pct = savings_pct if emissions_now > 0 else (100.0 if savings > 0 else 0.0)
    lead = evaluation.start - decided
    z = settings.history_uncertainty_z if uncertainty.from_history else settings.uncertainty_z
    margin_pct = z * uncertainty.at_lead(lead)

    def decide(start: int, reason: ReasonCode, detail: str) -> Plan:
        planned = evaluation if start != decided else None
        intensity_planned = evaluation.intensity_best if planned else evaluation.intensity_now
        cost_planned = evaluation.cost_best if planned else evaluation.cost_now
        saved = emissions_now - intensity_planned * energy
        return Plan(
            decided_at=from_epoch(decided),
            start=from_epoch(start),
            deferred=start > decided,
            reason=reason,
            detail=detail,
            latest_start=from_epoch(latest),
            intensity_now_g_per_kwh=evaluation.intensity_now,
            intensity_planned_g_per_kwh=intensity_planned,
            emissions_now_g=emissions_now,
            emissions_planned_g=intensity_planned * energy,
            savings_g=saved,
            savings_pct=_percent(saved, emissions_now),
            cost_now_usd=evaluation.cost_now,
            cost_planned_usd=cost_planned,
            forecast_end=from_epoch(forecast.end),
        )

    if latest <= decided:
        return decide(
            decided, ReasonCode.NO_ROOM_BEFORE_DEADLINE, "the latest allowed start is now"
        )
    if forecast.end - duration < decided:
        return decide(
            decided, ReasonCode.FORECAST_TOO_SHORT, "the forecast ends before a run could end"
        )
    if evaluation.start == decided:
        return decide(decided, ReasonCode.BEST_NOW, "no later window is cleaner than running now")
    if judged_pct < settings.min_saving_pct or savings < settings.min_saving_g:
        return decide(
            decided,
            ReasonCode.SAVING_BELOW_THRESHOLD,
            f"best window saves {savings_pct:.1f}% ({savings:.0f} g), below the minimum "
            f"{settings.min_saving_pct:g}%",
        )
    if judged_pct <= margin_pct:
        return decide(
            decided,
            ReasonCode.SAVING_WITHIN_UNCERTAINTY,
            f"best window saves {savings_pct:.1f}%, within the forecast's uncertainty "
            f"({margin_pct:.1f}% at {lead / 3600:.1f} h)",
        )
    return decide(
        evaluation.start,
        ReasonCode.WINDOW,
        f"cleanest window saves {savings_pct:.1f}% ({savings:.0f} g): "
        f"{evaluation.intensity_now:.0f} -> {evaluation.intensity_best:.0f} g/kWh",
    )


ReplanAction = Literal["keep", "move", "release-now"]


@dataclass(frozen=True)
class Replan:
    """What to do with a waiting Job: keep its release time, move it, or release it now."""

    action: ReplanAction
    start: datetime
    plan: Plan
    detail: str


def replan(
    current_start: datetime,
    request: PlanRequest,
    *,
    now: datetime,
    forecast: StepSeries,
    settings: PlannerSettings,
    prices: StepSeries | None = None,
    uncertainty: ForecastUncertainty | None = None,
) -> Replan:
    """Re-plan a waiting Job at ``now`` with fresher data (``forecast`` should already carry the
    actuals observed so far, e.g. through ``forecast.correct_forecast``). The uncertainty margin
    here is ``waiting_uncertainty_z``: the margin guards the decision to give up running at
    admission; once that is gone, the best current estimate is the best guide.

    - The release is never later than the latest start, and never earlier than ``now``.
    - If running now is best, or no longer-worth-waiting, the answer is ``release-now``.
    - Otherwise the release moves only when the new window beats the current one by the
      hysteresis; else it is kept (bounded churn).
    """
    z = settings.waiting_uncertainty_z
    waiting = settings.model_copy(update={"uncertainty_z": z, "history_uncertainty_z": z})
    fresh = plan(request, forecast, waiting, prices=prices, uncertainty=uncertainty, now=now)
    now_s = to_epoch(now)
    current_s = min(max(to_epoch(current_start), now_s), to_epoch(fresh.latest_start))
    if not fresh.deferred:
        return Replan("release-now", from_epoch(now_s), fresh, fresh.detail)
    if current_s <= now_s:
        # The planned time has come but a later window now looks better.
        return Replan("move", fresh.start, fresh, f"moved later: {fresh.detail}")
    usable = forecast.extended_to(current_s + request.duration_s)
    current_mean = float(_window_means(usable, np.array([float(current_s)]), request.duration_s)[0])
    improvement_pct = (
        100.0 * (current_mean - fresh.intensity_planned_g_per_kwh) / abs(current_mean)
        if current_mean != 0
        else 0.0
    )
    if to_epoch(fresh.start) == current_s or improvement_pct < settings.replan_hysteresis_pct:
        return Replan(
            "keep",
            from_epoch(current_s),
            fresh,
            f"kept: the best window improves on the plan by {improvement_pct:.1f}%",
        )
    direction = "earlier" if to_epoch(fresh.start) < current_s else "later"
    return Replan("move", fresh.start, fresh, f"moved {direction}: {fresh.detail}")

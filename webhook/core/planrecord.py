"""The annotations that record a plan and what it was made from (pure).

One writer for every workload greenlight plans: the admission webhook (Jobs and the other
kinds it suspends) and the Kueue AdmissionCheck (a Kueue Workload held by its check) record the
same ``greenlight.dev/*`` keys, so the reconciler, ``greenlight report`` and a person reading
``kubectl get -o yaml`` read one contract.
"""

from __future__ import annotations

from webhook.core import annotations as keys
from webhook.core.annotations import format_energy, format_number, format_time
from webhook.core.forecast import ForecastResult
from webhook.core.planner import Plan


def plan_annotation_parts(
    result: Plan,
    *,
    zone: str,
    duration_s: int,
    energy_kwh: float,
    min_saving_pct: float,
    forecast: ForecastResult,
) -> tuple[dict[str, str], dict[str, str]]:
    """The plan's annotations before and after the forecast's age (the one output that
    changes between workloads sharing a plan; :func:`forecast_age` formats it)."""
    head = {
        keys.PLANNED_ZONE: zone,
        keys.PLANNED_DURATION_S: str(duration_s),
        keys.ENERGY_KWH: format_energy(energy_kwh),
        keys.RELEASE_BY: format_time(result.latest_start),
        keys.INTENSITY_NOW: format_number(result.intensity_now_g_per_kwh),
        keys.EMISSIONS_NOW_G: format_number(result.emissions_now_g),
        keys.PROVIDER: forecast.provider,
        keys.FORECAST_SOURCE: forecast.source,
    }
    tail: dict[str, str] = {}
    if result.deferred:
        tail = {
            keys.RELEASE_AT: format_time(result.start),
            keys.INTENSITY_PLANNED: format_number(result.intensity_planned_g_per_kwh),
            keys.EMISSIONS_PLANNED_G: format_number(result.emissions_planned_g),
            keys.SAVINGS_G: format_number(result.savings_g),
            keys.SAVINGS_PCT: format_number(result.savings_pct),
            keys.PLANNED_MIN_SAVINGS_PCT: str(float(min_saving_pct)),  # exact: re-plans use it
        }
        if forecast.uncertainty is not None:
            # The skill-aware history forecast and the corrected provider forecast measure it.
            error_pct = forecast.uncertainty.at_lead(result.delay_s)
            tail[keys.FORECAST_ERROR_PCT] = format_number(error_pct)
            tail[keys.SAVINGS_PCT_LOW] = format_number(result.savings_pct - error_pct)
            tail[keys.SAVINGS_PCT_HIGH] = format_number(result.savings_pct + error_pct)
        if result.cost_now_usd is not None and result.cost_planned_usd is not None:
            tail[keys.COST_NOW_USD] = format_number(result.cost_now_usd, 4)
            tail[keys.COST_PLANNED_USD] = format_number(result.cost_planned_usd, 4)
    return head, tail


def forecast_age(forecast: ForecastResult) -> str:
    """The ``greenlight.dev/forecast-age-s`` value: whole seconds."""
    return str(round(forecast.age_s or 0.0))


def plan_annotations(
    result: Plan,
    *,
    zone: str,
    duration_s: int,
    energy_kwh: float,
    min_saving_pct: float,
    forecast: ForecastResult,
) -> dict[str, str]:
    """Every annotation recording ``result`` (a new dict)."""
    head, tail = plan_annotation_parts(
        result,
        zone=zone,
        duration_s=duration_s,
        energy_kwh=energy_kwh,
        min_saving_pct=min_saving_pct,
        forecast=forecast,
    )
    return {**head, keys.FORECAST_AGE_S: forecast_age(forecast), **tail}

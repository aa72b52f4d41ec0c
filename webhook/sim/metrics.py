"""How a policy did: emissions against running immediately and against the oracle.

Emissions of a run from s to s+d: energy/d x integral of actual intensity over [s, s+d)
(intensity is piecewise constant over each data step; partial steps count by their fraction).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from webhook.core.series import FloatArray, IntArray, StepSeries
from webhook.sim.traces import Job

RELEASE_SLOT_S = 300
WORSE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Outcome:
    """Per-job results of one policy."""

    starts: IntArray
    emissions_g: FloatArray


def job_arrays(jobs: list[Job]) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    return (
        np.array([job.arrival for job in jobs], dtype=np.int64),
        np.array([job.duration_s for job in jobs], dtype=np.int64),
        np.array([job.max_delay_s for job in jobs], dtype=np.int64),
        np.array([job.energy_kwh for job in jobs], dtype=np.float64),
    )


def emissions_g(jobs: list[Job], starts: IntArray, actual: StepSeries) -> FloatArray:
    """Grams of CO2eq each job emits when started at ``starts``."""
    _, durations, _, energy = job_arrays(jobs)
    starts_f = starts.astype(np.float64)
    mean_intensity = actual.integral(starts_f, starts_f + durations) / durations
    return mean_intensity * energy


@dataclass(frozen=True)
class WeeklySpread:
    min: float
    p10: float
    median: float
    p90: float
    max: float


@dataclass(frozen=True)
class PolicyMetrics:
    """The benchmark's metrics for one policy (percentages in %, delays in hours)."""

    reduction_pct: float
    oracle_capture_pct: float | None
    worse_jobs_pct: float
    worse_jobs_mean_extra_pct: float
    """Mean extra emissions of the Jobs made worse, % of running each at arrival (0: none)."""
    worse_jobs_mean_extra_g: float
    """The same in grams of CO2eq per worse Job (0: none)."""
    mean_delay_h: float
    p50_delay_h: float
    p95_delay_h: float
    max_delay_h: float
    deadline_misses: int
    max_releases_per_5min: int
    emissions_kg: float
    mean_intensity_g_per_kwh: float
    weekly_reduction_pct: WeeklySpread

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reduction_pct(policy_g: FloatArray, immediate_g: FloatArray) -> float:
    total = float(np.sum(immediate_g))
    return 100.0 * (1.0 - float(np.sum(policy_g)) / total) if total > 0 else 0.0


def weekly_spread(
    jobs: list[Job], policy_g: FloatArray, immediate_g: FloatArray, zone: ZoneInfo
) -> WeeklySpread:
    """Reduction per ISO week of arrival (local time), over the weeks with jobs."""
    weeks = np.array(
        [
            datetime.fromtimestamp(job.arrival, tz=UTC).astimezone(zone).isocalendar()[:2]
            for job in jobs
        ]
    )
    keys = weeks[:, 0] * 100 + weeks[:, 1]
    values = [
        reduction_pct(policy_g[keys == key], immediate_g[keys == key]) for key in np.unique(keys)
    ]
    p = np.percentile(values, [0, 10, 50, 90, 100])
    return WeeklySpread(*(float(x) for x in p))


def evaluate(
    jobs: list[Job],
    *,
    starts: IntArray,
    actual: StepSeries,
    immediate_g: FloatArray,
    oracle_reduction_pct: float | None,
    zone: ZoneInfo,
) -> PolicyMetrics:
    arrivals, _, max_delays, energy = job_arrays(jobs)
    policy_g = emissions_g(jobs, starts, actual)
    delays_h = (starts - arrivals) / 3600.0
    reduction = reduction_pct(policy_g, immediate_g)
    slots = Counter(((starts - arrivals) > 0).astype(np.int64) * (starts // RELEASE_SLOT_S))
    slots.pop(0, None)  # jobs that started at arrival were never held and released
    total_energy = float(np.sum(energy))
    worse = policy_g > immediate_g + WORSE_TOLERANCE * np.abs(immediate_g)
    extra_pct = 100.0 * (policy_g - immediate_g) / np.maximum(np.abs(immediate_g), 1e-9)
    return PolicyMetrics(
        reduction_pct=reduction,
        oracle_capture_pct=(
            100.0 * reduction / oracle_reduction_pct
            if oracle_reduction_pct is not None and oracle_reduction_pct > 0
            else None
        ),
        worse_jobs_pct=100.0 * float(np.mean(worse)),
        worse_jobs_mean_extra_pct=float(np.mean(extra_pct[worse])) if worse.any() else 0.0,
        worse_jobs_mean_extra_g=(
            float(np.mean(policy_g[worse] - immediate_g[worse])) if worse.any() else 0.0
        ),
        mean_delay_h=float(np.mean(delays_h)),
        p50_delay_h=float(np.percentile(delays_h, 50)),
        p95_delay_h=float(np.percentile(delays_h, 95)),
        max_delay_h=float(np.max(delays_h)),
        deadline_misses=int(np.sum((starts < arrivals) | (starts > arrivals + max_delays))),
        max_releases_per_5min=max(slots.values(), default=0),
        emissions_kg=float(np.sum(policy_g)) / 1000.0,
        mean_intensity_g_per_kwh=float(np.sum(policy_g)) / total_energy if total_energy else 0.0,
        weekly_reduction_pct=weekly_spread(jobs, policy_g, immediate_g, zone),
    )

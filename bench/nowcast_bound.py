"""Experiment: how much of the DACF gap is the nowcast? The greenlight policy, unchanged, fed
the corrected day-ahead forecast with its next ``k`` hours replaced by the actual intensity.

    .venv/bin/python bench/nowcast_bound.py [--data ../shared/data/carbon/dacf] [--hours 0,1,3]

``k = 0`` is the product as it is (the current hour observed, everything after forecast). A
perfect ``k``-hour nowcast is an upper bound on what any better short-term correction could
bring to this policy; docs/benchmarks.md records the table.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from webhook.core.datafiles import load_carbon_file
from webhook.core.planner import PlannerSettings
from webhook.core.series import StepSeries
from webhook.sim import policies
from webhook.sim.metrics import emissions_g, evaluate, reduction_pct
from webhook.sim.policies import HOUR_S, ForecastOracle, Knowledge
from webhook.sim.run import resolve_time_zone, zone_of
from webhook.sim.traces import build_trace

REGIONS = ("CISO", "DE", "ERCO", "PJM")


class KnownAhead(ForecastOracle):
    """The DACF forecast source, except that the next ``hours`` hours are known exactly."""

    def __init__(self, actual: StepSeries, forecast: StepSeries, hours: int) -> None:
        super().__init__("dacf", actual, forecast)
        self.hours = hours

    def _at_hour(self, hour: int) -> Knowledge:
        known = super()._at_hour(hour)
        if self.hours == 0:
            return known
        # Hourly data: the current hour and the next ``hours`` from the actuals, the rest from
        # the forecast (which, at the end of the data, may not reach past them).
        cut = min(hour + (self.hours + 1) * HOUR_S, self.actual.end)
        head = self.actual.window(hour, cut)
        if known.forecast.end <= cut:
            return Knowledge(head, known.uncertainty)
        tail = known.forecast.window(cut, known.forecast.end)
        series = StepSeries(
            np.concatenate((head.times, tail.times)),
            np.concatenate((head.values, tail.values)),
            tail.end,
        )
        return Knowledge(series, known.uncertainty)


def run(path: Path, hours: int) -> tuple[float, float]:
    data = load_carbon_file(path)
    assert data.forecast is not None, f"{path} has no forecast column"
    zone = resolve_time_zone(zone_of(data), None)
    actual = data.actual
    jobs = build_trace(
        "seed", data_start=actual.start, data_end=actual.end, zone=zone, max_delay_s=24 * HOUR_S
    )
    immediate_g = emissions_g(jobs, policies.immediate(jobs, actual), actual)
    oracle_g = emissions_g(jobs, policies.oracle(jobs, actual), actual)
    knowledge = KnownAhead(actual, data.forecast, hours)
    starts, _ = policies.greenlight(jobs, knowledge, PlannerSettings())
    metrics = evaluate(
        jobs,
        starts=starts,
        actual=actual,
        immediate_g=immediate_g,
        oracle_reduction_pct=reduction_pct(oracle_g, immediate_g),
        zone=zone,
    )
    assert metrics.oracle_capture_pct is not None, "the oracle saves nothing here"
    return metrics.oracle_capture_pct, metrics.worse_jobs_pct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/carbon/dacf"))
    parser.add_argument("--hours", default="0,1,3", help="comma-separated k values")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ks = [int(k) for k in args.hours.split(",")]
    paths = [args.data / f"{r}_carbon_from_src_prod_forecasts_direct.csv" for r in REGIONS]
    tasks = [(path, k) for k in ks for path in paths]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, *zip(*tasks, strict=True)))
    print("| next hours known | capture CISO / DE / ERCO / PJM % (avg) | worse jobs % |")
    print("|---|---|---|")
    for row, k in enumerate(ks):
        cells = results[row * len(paths) : (row + 1) * len(paths)]
        captures = " / ".join(f"{c:.1f}" for c, _ in cells)
        average = sum(c for c, _ in cells) / len(cells)
        worse = " / ".join(f"{w:.1f}" for _, w in cells)
        print(f"| {k} | {captures} ({average:.1f}) | {worse} |")


if __name__ == "__main__":
    main()

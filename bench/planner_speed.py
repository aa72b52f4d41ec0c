"""Benchmark: time per planning decision.

    .venv/bin/python bench/planner_speed.py

One decision = `plan()` for a 57-minute Job with a 24 h max delay on a 72 h forecast, hourly
(73 points) and at 5-minute resolution (865 points); and `replan()` likewise. Real data:
US-CAL-CISO 2022 (Electricity Maps), 2,000 decisions at varied arrival times, best of 5 runs.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from webhook.core.datafiles import load_carbon_file
from webhook.core.planner import PlannerSettings, PlanRequest, latest_start, plan, replan
from webhook.core.series import StepSeries


def five_minute(series: StepSeries) -> StepSeries:
    times = np.arange(series.start, series.end, 300, dtype=np.int64)
    return StepSeries(times, series.integral(times, times + 300) / 300, series.end)


def measure(forecasts: list[StepSeries], arrivals: list[datetime], replanning: bool) -> float:
    settings = PlannerSettings()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for forecast, arrival in zip(forecasts, arrivals, strict=True):
            request = PlanRequest(
                arrival, 57 * 60, 0.475, latest_start(arrival, 57 * 60, 86400, None)
            )
            if replanning:
                replan(
                    arrival + timedelta(hours=6),
                    request,
                    now=arrival + timedelta(minutes=30),
                    forecast=forecast,
                    settings=settings,
                )
            else:
                plan(request, forecast, settings)
        best = min(best, (time.perf_counter() - started) / len(arrivals))
    return best * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--carbon",
        type=Path,
        default=Path("../shared/data/carbon/electricitymaps/US-CAL-CISO_2022_hourly.csv"),
    )
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    actual = load_carbon_file(args.carbon).actual
    rng = np.random.default_rng(0)
    starts = rng.integers(actual.start, actual.end - 73 * 3600, size=args.decisions)
    arrivals = [datetime.fromtimestamp(int(s), tz=UTC) for s in starts]
    hourly = [actual.window(int(s) // 3600 * 3600, int(s) + 72 * 3600) for s in starts]
    fine = [five_minute(f) for f in hourly]
    print("| forecast | points | plan() ms/decision | replan() ms/decision |")
    print("|---|---|---|---|")
    for label, forecasts in (("72 h hourly", hourly), ("72 h at 5 min", fine)):
        points = int(np.mean([len(f) for f in forecasts]))
        print(
            f"| {label} | {points} | {measure(forecasts, arrivals, False):.3f} | "
            f"{measure(forecasts, arrivals, True):.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

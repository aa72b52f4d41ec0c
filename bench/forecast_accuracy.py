"""Benchmark: accuracy (MAPE by lead time) of the forecasts greenlight uses.

    .venv/bin/python bench/forecast_accuracy.py [--data ../shared/data/carbon]

For every 5th hour of each file (after a 15-day warm-up), each forecaster predicts the next
24 h from what it could know then; the table gives the mean absolute percentage error at leads
1, 3, 6, 12 and 24 h. Forecasters: `persistence` (the latest value, a baseline), `history`
(greenlight's own, from recorded actuals only), and on the DACF files `dacf` (the raw
day-ahead forecast) and `dacf+correction` (greenlight's correction by the latest observed
error).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from webhook.core.datafiles import load_carbon_file
from webhook.core.forecast import correct_forecast, history_forecast
from webhook.core.series import StepSeries

H = 3600
LEADS = (1, 3, 6, 12, 24)
WARMUP_S = 15 * 86400
STRIDE_H = 5


def evaluate(path: Path) -> list[str]:
    data = load_carbon_file(path)
    actual = data.actual
    methods: dict[str, Callable[[int], StepSeries | None]] = {
        "persistence": lambda hour: None,
        "history": lambda hour: history_forecast(actual, hour, 26 * H).series,
    }
    if data.forecast is not None:
        provider = data.forecast
        methods["dacf"] = lambda hour: provider
        methods["dacf+correction"] = lambda hour: (
            correct_forecast(
                provider.window(hour - WARMUP_S, hour + 48 * H),
                actual.window(hour - WARMUP_S, hour + H),
                hour,
            ).series
        )
    errors: dict[str, dict[int, list[float]]] = {m: {lead: [] for lead in LEADS} for m in methods}
    for hour in range(actual.start + WARMUP_S, actual.end - 26 * H, STRIDE_H * H):
        truth = {lead: actual.value_at(hour + lead * H) for lead in LEADS}
        for name, method in methods.items():
            forecast = method(hour)
            for lead in LEADS:
                predicted = (
                    actual.value_at(hour)
                    if forecast is None
                    else forecast.value_at(hour + lead * H)
                )
                errors[name][lead].append(abs(predicted - truth[lead]) / max(abs(truth[lead]), 1.0))
    label = data.zone or path.name.split("_")[0]
    return [
        f"| {label} | {name} | "
        + " | ".join(f"{100 * np.mean(errors[name][lead]):.1f}" for lead in LEADS)
        + " |"
        for name in methods
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/carbon"))
    args = parser.parse_args()
    files = sorted((args.data / "dacf").glob("*.csv")) + sorted(
        (args.data / "electricitymaps").glob("*_2022_hourly.csv")
    )
    print("| zone | forecaster | " + " | ".join(f"MAPE {lead} h %" for lead in LEADS) + " |")
    print("|---|---|" + "---|" * len(LEADS))
    with ProcessPoolExecutor(max_workers=2) as pool:
        for lines in pool.map(evaluate, files):
            print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the history-only forecaster's variants on every Electricity Maps run.

    .venv/bin/python bench/history_skill.py [--years 2022,2023] [--z 0.9] [--learned both]

For each variant (``SkillConfig.learned`` off/on x the planner's ``history_uncertainty_z``,
the margin at admission on a history forecast) replays the seed trace on the 8 zones x the
given years in process, two at a time, through ``webhook.sim.run.simulate`` (what
``greenlight simulate --forecast history`` runs), and prints per run greenlight's capture of the
oracle's saving / jobs made worse (%), then the mean capture and the worst run's worse-jobs
share per variant.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from savings import ZONES  # the same 8 zones, run as bench/history_skill.py

from webhook.core.forecast import SkillConfig
from webhook.core.planner import PlannerSettings
from webhook.sim.run import SimulationConfig, simulate


def run(job: tuple[str, str, bool, float, Path, str]) -> tuple[str, str, dict[str, float]]:
    variant, label, learned, z, path, tz = job
    config = SimulationConfig(
        carbon=path,
        tz=tz,
        policies=("greenlight",),
        forecast="history",
        planner=PlannerSettings(history_uncertainty_z=z),
        skill=replace(SkillConfig(), learned=learned),
    )
    metrics = simulate(config).metrics["greenlight"]
    return (
        variant,
        label,
        {
            "capture": metrics.oracle_capture_pct or 0.0,
            "worse": metrics.worse_jobs_pct,
            "misses": float(metrics.deadline_misses),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/carbon"))
    parser.add_argument("--years", default="2022,2023")
    parser.add_argument("--zones", default=",".join(ZONES))
    parser.add_argument("--z", default="0.9", help="history_uncertainty_z values (comma-separated)")
    parser.add_argument("--learned", choices=("off", "on", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    flags = {"off": [False], "on": [True], "both": [False, True]}[args.learned]
    jobs = []
    for learned in flags:
        for z in (float(value) for value in args.z.split(",")):
            variant = f"{'learned' if learned else 'scaled'} z={z:g}"
            for zone in args.zones.split(","):
                prefix, tz = ZONES[zone]
                for year in args.years.split(","):
                    path = args.data / "electricitymaps" / f"{prefix}_{year}_hourly.csv"
                    jobs.append((variant, f"{zone} {year}", learned, z, path, tz))
    results: dict[str, dict[str, dict[str, float]]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for variant, label, metrics in pool.map(run, jobs):
            results.setdefault(variant, {})[label] = metrics
    labels = list(next(iter(results.values())))
    print("| run | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for label in labels:
        cells = [
            f"{results[v][label]['capture']:.1f} / {results[v][label]['worse']:.1f}"
            for v in results
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    summary: list[str] = []
    for variant in results.values():
        runs = list(variant.values())
        mean = sum(r["capture"] for r in runs) / len(runs)
        worst = max(r["worse"] for r in runs)
        misses = int(sum(r["misses"] for r in runs))
        summary.append(f"**{mean:.1f} / max {worst:.1f}** ({misses} misses)")
    print("| mean capture / max worse | " + " | ".join(summary) + " |")
    if args.json is not None:
        document: dict[str, Any] = results
        args.json.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

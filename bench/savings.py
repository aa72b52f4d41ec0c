"""Benchmark: carbon savings of every policy on real grid data, as markdown tables.

    .venv/bin/python bench/savings.py [--data ../shared/data/carbon] [--json out.json]

Runs `greenlight simulate` (the seed trace, max delay 24 h, default planner settings) on the
8 zones x 2022/2023 with greenlight's own history forecaster, and on the 4 DACF regions with
their real day-ahead forecasts, two simulations at a time. Prints the tables that
docs/benchmarks.md records.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ZONES = {
    "US-CAL-CISO": ("US-CAL-CISO", "America/Los_Angeles"),
    "GB": ("GB", "Europe/London"),
    "DE": ("DE-LU", "Europe/Berlin"),
    "ES": ("ES", "Europe/Madrid"),
    "US-TEX-ERCO": ("US-TEX-ERCO", "America/Chicago"),
    "US-MIDA-PJM": ("US-MIDA-PJM", "America/New_York"),
    "NO": ("NO", "Europe/Oslo"),
    "SG": ("SG", "Asia/Singapore"),
}
DACF = ("CISO", "DE", "ERCO", "PJM")
POLICIES = ("threshold", "greenlight", "oracle")


def simulate(args: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "webhook", "simulate", *args, "--json"]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    result: dict[str, Any] = json.loads(completed.stdout)
    result["command"] = "greenlight simulate " + " ".join(args)
    return result


def row(label: str, result: dict[str, Any]) -> str:
    p = result["policies"]
    g = p["greenlight"]
    cells = [
        label,
        f"{p['oracle']['reduction_pct']:.1f}",
        f"{p['threshold']['reduction_pct']:.1f}" if "threshold" in p else "-",
        f"{p['threshold']['oracle_capture_pct']:.0f}" if "threshold" in p else "-",
        f"{g['reduction_pct']:.1f}",
        f"**{g['oracle_capture_pct']:.1f}**",
        f"{g['worse_jobs_pct']:.1f}",
        f"{g['mean_delay_h']:.1f}",
        f"{g['p95_delay_h']:.1f}",
        str(g["deadline_misses"]),
        str(g["max_releases_per_5min"]),
        f"{g['weekly_reduction_pct']['min']:.1f} / {g['weekly_reduction_pct']['median']:.1f}"
        f" / {g['weekly_reduction_pct']['max']:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| run | oracle % | threshold % | threshold of oracle % | greenlight % | greenlight of "
    "oracle % | worse jobs % | mean delay h | p95 delay h | deadline misses | max releases "
    "/ 5 min | weekly greenlight % min / median / max |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/carbon"))
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    parser.add_argument("--only", choices=("history", "dacf"), default=None)
    args = parser.parse_args()

    jobs: list[tuple[str, list[str]]] = []
    if args.only in (None, "history"):
        for zone, (prefix, tz) in ZONES.items():
            for year in (2022, 2023):
                path = args.data / "electricitymaps" / f"{prefix}_{year}_hourly.csv"
                jobs.append(
                    (
                        f"{zone} {year}",
                        [
                            "--carbon",
                            str(path),
                            "--tz",
                            tz,
                            "--trace",
                            "seed",
                            "--policies",
                            "immediate," + ",".join(POLICIES),
                            "--forecast",
                            "history",
                        ],
                    )
                )
    if args.only in (None, "dacf"):
        for region in DACF:
            path = args.data / "dacf" / f"{region}_carbon_from_src_prod_forecasts_direct.csv"
            jobs.append(
                (
                    f"{region} Jul-Dec 2021",
                    [
                        "--carbon",
                        str(path),
                        "--trace",
                        "seed",
                        "--forecast",
                        "dacf",
                        "--policies",
                        "immediate," + ",".join(POLICIES),
                    ],
                )
            )
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: (job[0], simulate(job[1])), jobs))
    print(HEADER)
    for label, result in results:
        print(row(label, result))
    dacf = [r for label, r in results if "2021" in label]
    if dacf:
        captures = [r["policies"]["greenlight"]["oracle_capture_pct"] for r in dacf]
        print(f"\nDACF average greenlight capture: {sum(captures) / len(captures):.1f} %")
    if args.json is not None:
        args.json.write_text(json.dumps(dict(results), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``greenlight simulate``: replay real grid data and compare scheduling policies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SOURCES = ("oracle", "dacf", "history", "noisy", "vintages")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="replay real grid data: immediate vs threshold vs greenlight vs oracle",
        description=(
            "Replay a Job trace on real carbon-intensity data and compare policies: immediate, "
            "threshold (the seed system), greenlight (the product's planner and re-planning, "
            "with a forecast source) and oracle (the best possible window). "
            "Carbon data: Electricity Maps."
        ),
    )
    parser.add_argument(
        "--carbon",
        required=True,
        type=Path,
        help="carbon-intensity CSV: Electricity Maps export or DACF format",
    )
    parser.add_argument(
        "--trace",
        default="seed",
        help="seed, poisson, overnight, or a CSV of arrival,duration,max_delay,energy_kwh",
    )
    parser.add_argument(
        "--policies",
        default="immediate,threshold,greenlight,oracle",
        help="comma-separated policies (default: all four)",
    )
    parser.add_argument(
        "--forecast",
        choices=SOURCES,
        default=None,
        help="what greenlight knows: oracle (perfect), dacf (the file's day-ahead forecast), "
        "history (its own forecaster), noisy (actual x AR(1) error), vintages (the "
        "--vintages file, re-planned on the vintage current at each hour). Default: vintages "
        "with --vintages, dacf for DACF files, else history",
    )
    parser.add_argument(
        "--vintages",
        type=Path,
        default=None,
        metavar="CSV",
        help="forecast vintages for the zone (issued_at,target_time,value; actuals from --carbon)",
    )
    parser.add_argument("--tz", default=None, help="local time zone of the trace (IANA name)")
    parser.add_argument(
        "--column",
        choices=("lca", "direct"),
        default="lca",
        help="Electricity Maps intensity column (default: lca)",
    )
    parser.add_argument("--max-delay", default="24h", help="max delay per job (default: 24h)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=200.0,
        help="threshold policy's intensity (g/kWh, default: 200)",
    )
    parser.add_argument(
        "--min-savings",
        type=float,
        default=None,
        help="greenlight's minimum saving to defer, percent (default: the product's)",
    )
    parser.add_argument(
        "--noise-sigma", type=float, default=None, help="noisy forecast error std (fraction)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (poisson, noisy)")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG plot here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"greenlight simulate: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import orjson
    from rich.console import Console

    from webhook.core.datafiles import DataFileError
    from webhook.core.durations import parse_duration
    from webhook.core.planner import PlannerSettings
    from webhook.sim.report import progress_bar, render_table, to_json
    from webhook.sim.run import SimulationConfig, SimulationError, simulate
    from webhook.sim.traces import TraceError

    try:
        max_delay_s = parse_duration(args.max_delay)
    except ValueError as error:
        return _fail(f"--max-delay: {error}")
    planner = PlannerSettings()
    if args.min_savings is not None:
        if not 0 <= args.min_savings <= 100:
            return _fail(f"--min-savings {args.min_savings}: expected a percent in 0..100")
        planner = planner.model_copy(update={"min_saving_pct": args.min_savings})
    if args.noise_sigma is not None and not 0 <= args.noise_sigma < 1:
        return _fail(f"--noise-sigma {args.noise_sigma}: expected a fraction in [0, 1)")
    config = SimulationConfig(
        carbon=args.carbon,
        trace=args.trace,
        policies=tuple(name.strip() for name in args.policies.split(",") if name.strip()),
        forecast=args.forecast,
        vintages=args.vintages,
        tz=args.tz,
        column=args.column,
        max_delay_s=max_delay_s,
        threshold_g_per_kwh=args.threshold,
        planner=planner,
        noise_sigma=args.noise_sigma,
        seed=args.seed,
    )
    console = Console(stderr=True)
    try:
        with progress_bar(console) as progress:
            result = simulate(config, progress)
    except (DataFileError, TraceError, SimulationError) as error:
        return _fail(str(error))
    if args.plot is not None:
        from webhook.sim.plot import plot_result

        try:
            plot_result(result, args.plot)
        except OSError as error:
            return _fail(f"--plot {args.plot}: {error}")
    payload: dict[str, Any] = to_json(result)
    if args.json:
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        Console().print(render_table(result))
        if args.plot is not None:
            Console().print(f"plot written to {args.plot}")
    return 0

"""One simulation: load the data, build the trace, replay each policy, compute the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from webhook.core.datafiles import (
    CarbonFile,
    Column,
    ForecastVintages,
    load_carbon_file,
    load_vintage_file,
)
from webhook.core.forecast import SkillConfig
from webhook.core.planner import PlannerSettings
from webhook.core.series import IntArray
from webhook.sim import policies
from webhook.sim.metrics import PolicyMetrics, emissions_g, evaluate, reduction_pct
from webhook.sim.policies import ForecastOracle, ForecastSource
from webhook.sim.traces import Job, build_trace

POLICIES = ("immediate", "threshold", "greenlight", "oracle")

# Local time zones of the benchmark's zones, by Electricity Maps zone id, file prefix and DACF
# region name.
ZONE_TIME_ZONES = {
    "US-CAL-CISO": "America/Los_Angeles",
    "CISO": "America/Los_Angeles",
    "US-TEX-ERCO": "America/Chicago",
    "ERCO": "America/Chicago",
    "US-MIDA-PJM": "America/New_York",
    "PJM": "America/New_York",
    "DE": "Europe/Berlin",
    "DE-LU": "Europe/Berlin",
    "GB": "Europe/London",
    "ES": "Europe/Madrid",
    "NO": "Europe/Oslo",
    "SG": "Asia/Singapore",
}

# Marginal std of the `noisy` forecast's AR(1) error by zone (0.05-0.14 by grid, per the
# benchmark guide), anchored on the DACF day-ahead MAPEs where a zone has one.
NOISE_SIGMA = {
    "US-CAL-CISO": 0.09,
    "CISO": 0.09,
    "DE": 0.11,
    "US-TEX-ERCO": 0.10,
    "ERCO": 0.10,
    "US-MIDA-PJM": 0.05,
    "PJM": 0.05,
    "GB": 0.14,
    "ES": 0.12,
    "NO": 0.12,
    "SG": 0.05,
}


class SimulationError(ValueError):
    """A simulation that cannot run as asked (bad combination of inputs)."""


@dataclass(frozen=True)
class SimulationConfig:
    carbon: Path
    trace: str = "seed"
    policies: tuple[str, ...] = POLICIES
    forecast: ForecastSource | None = None
    """None: ``vintages`` with a vintages file, ``dacf`` when the file carries a forecast, else
    ``history``."""
    vintages: Path | None = None
    """Forecast-vintages file (``issued_at,target_time,value``) for ``carbon``'s zone."""
    tz: str | None = None
    column: Column = "lca"
    max_delay_s: int = 24 * 3600
    threshold_g_per_kwh: float = 200.0
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    skill: SkillConfig = field(default_factory=SkillConfig)
    """How the history forecaster measures its own skill (the product's defaults)."""
    noise_sigma: float | None = None
    seed: int = 7


@dataclass(frozen=True)
class SimulationResult:
    config: SimulationConfig
    data: CarbonFile
    zone: str
    time_zone: ZoneInfo
    forecast: ForecastSource
    jobs: list[Job]
    starts: dict[str, IntArray]
    metrics: dict[str, PolicyMetrics]
    replan_moves: int


def zone_of(data: CarbonFile) -> str:
    return data.zone or data.path.name.split("_", 1)[0]


def resolve_time_zone(zone: str, tz: str | None) -> ZoneInfo:
    name = tz or ZONE_TIME_ZONES.get(zone)
    if name is None:
        raise SimulationError(
            f"no local time zone known for zone {zone!r}: pass --tz (an IANA name such as "
            "Europe/Berlin)"
        )
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        raise SimulationError(f"unknown time zone {name!r} (expected an IANA name)") from None


def simulate(
    config: SimulationConfig, progress: Callable[[int, int], Callable[[int], None]] | None = None
) -> SimulationResult:
    """Replay ``config.policies`` on ``config.carbon``. ``progress(total, ...)`` may return a
    callback advanced once per job of the greenlight replay (the slow one)."""
    unknown = [name for name in config.policies if name not in POLICIES]
    if unknown:
        raise SimulationError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    data = load_carbon_file(config.carbon, column=config.column)
    zone = zone_of(data)
    time_zone = resolve_time_zone(zone, config.tz)
    vintages: ForecastVintages | None = (
        load_vintage_file(config.vintages) if config.vintages is not None else None
    )
    default: ForecastSource = (
        "vintages" if vintages is not None else "dacf" if data.forecast is not None else "history"
    )
    source: ForecastSource = config.forecast or default
    if source == "vintages" and vintages is None:
        raise SimulationError("--forecast vintages needs a forecast-vintages file (--vintages)")
    if source == "dacf" and data.forecast is None and "greenlight" in config.policies:
        raise SimulationError(
            f"--forecast dacf needs a file with a forecast column (DACF format); {data.path} "
            "has none"
        )
    actual = data.actual
    jobs = build_trace(
        config.trace,
        data_start=actual.start,
        data_end=actual.end,
        zone=time_zone,
        max_delay_s=config.max_delay_s,
        seed=config.seed,
    )
    # Immediate and oracle are always computed: every metric is relative to them.
    immediate_starts = policies.immediate(jobs, actual)
    immediate_g = emissions_g(jobs, immediate_starts, actual)
    oracle_starts = policies.oracle(jobs, actual)
    oracle_reduction = reduction_pct(emissions_g(jobs, oracle_starts, actual), immediate_g)

    starts: dict[str, IntArray] = {}
    moves = 0
    for name in config.policies:
        if name == "immediate":
            starts[name] = immediate_starts
        elif name == "oracle":
            starts[name] = oracle_starts
        elif name == "threshold":
            starts[name] = policies.threshold(jobs, actual, config.threshold_g_per_kwh)
        else:
            knowledge = ForecastOracle(
                source,
                actual,
                data.forecast,
                noise_sigma=config.noise_sigma or NOISE_SIGMA.get(zone, 0.08),
                seed=config.seed,
                skill_config=config.skill,
                vintages=vintages,
            )
            callback = progress(len(jobs), 0) if progress is not None else None
            starts[name], job_moves = policies.greenlight(jobs, knowledge, config.planner, callback)
            moves = int(job_moves.sum())
    metrics = {
        name: evaluate(
            jobs,
            starts=policy_starts,
            actual=actual,
            immediate_g=immediate_g,
            oracle_reduction_pct=oracle_reduction,
            zone=time_zone,
        )
        for name, policy_starts in starts.items()
    }
    return SimulationResult(
        config, data, zone, time_zone, source, jobs, starts, metrics, replan_moves=moves
    )

"""Job traces for the simulator: when Jobs arrive, how long they run, what they use.

- ``seed``: the published experiment — four Jobs a day at 03:55, 10:19, 17:41 and 23:12 local
  time, 57 min, 0.475 kWh each, every day.
- ``poisson``: Poisson arrivals at 4 a day, lognormal durations (median 2 h, clipped to
  0.25-12 h), energy proportional to duration at the seed Job's power, fixed seed.
- ``overnight``: one Job a night arriving uniformly in 00:00-03:00 local, 1 h.
- a CSV file: ``arrival,duration,max_delay,energy_kwh`` per line (RFC 3339 arrival, durations
  like ``57m``/``2h`` or seconds), an optional header line.

Local times are resolved with ``zoneinfo``: a wall time that does not exist (spring forward)
moves forward by the gap; an ambiguous one (fall back) takes its first occurrence.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from webhook.core.durations import parse_duration

SEED_TIMES = (time(3, 55), time(10, 19), time(17, 41), time(23, 12))
SEED_DURATION_S = 57 * 60
SEED_ENERGY_KWH = 0.475
SEED_POWER_KW = SEED_ENERGY_KWH / (SEED_DURATION_S / 3600)
DAY_S = 86400

BUILTIN_TRACES = ("seed", "poisson", "overnight")


class TraceError(ValueError):
    """A trace that cannot be built or read (names the file, line and problem)."""


@dataclass(frozen=True)
class Job:
    """One Job of a trace, times in UTC epoch seconds."""

    arrival: int
    duration_s: int
    max_delay_s: int
    energy_kwh: float


def local_to_epoch(day: date, wall: time, zone: ZoneInfo) -> int:
    """Epoch seconds of a local wall time. ``fold=0`` gives exactly the documented rule: a
    wall time inside a spring-forward gap is read with the offset before the gap (so it lands
    the gap's length later), an ambiguous one is its first occurrence."""
    return int(datetime.combine(day, wall).replace(tzinfo=zone, fold=0).timestamp())


def whole_local_days(data_start: int, last_arrival: int, zone: ZoneInfo) -> list[date]:
    """Local days from the first whole one at or after ``data_start`` up to ``last_arrival``."""
    first = datetime.fromtimestamp(data_start, tz=zone)
    day = first.date()
    if first.timetz().replace(tzinfo=None) != time(0, 0):
        day += timedelta(days=1)
    days = []
    while local_to_epoch(day, time(0, 0), zone) <= last_arrival:
        days.append(day)
        day += timedelta(days=1)
    return days


def seed_trace(days: list[date], zone: ZoneInfo, max_delay_s: int) -> list[Job]:
    return [
        Job(local_to_epoch(day, wall, zone), SEED_DURATION_S, max_delay_s, SEED_ENERGY_KWH)
        for day in days
        for wall in SEED_TIMES
    ]


def overnight_trace(days: list[date], zone: ZoneInfo, max_delay_s: int, seed: int) -> list[Job]:
    rng = np.random.default_rng(seed)
    jobs = []
    for day in days:
        midnight = local_to_epoch(day, time(0, 0), zone)
        arrival = midnight + int(rng.uniform(0, 3 * 3600))
        jobs.append(Job(arrival, 3600, max_delay_s, SEED_POWER_KW))
    return jobs


def poisson_trace(start: int, end: int, max_delay_s: int, seed: int) -> list[Job]:
    rng = np.random.default_rng(seed)
    jobs: list[Job] = []
    moment = float(start)
    while True:
        moment += rng.exponential(DAY_S / 4)
        if moment >= end:
            return jobs
        hours = float(np.clip(rng.lognormal(math.log(2.0), 0.75), 0.25, 12.0))
        duration = round(hours * 3600)
        jobs.append(Job(int(moment), duration, max_delay_s, SEED_POWER_KW * duration / 3600))


def _duration(text: str, path: Path, line: int, field: str) -> int:
    text = text.strip()
    try:
        return int(float(text)) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as error:
        raise TraceError(f"{path}:{line}: {field} {text!r}: {error}") from None


def csv_trace(path: Path) -> list[Job]:
    """Read ``arrival,duration,max_delay,energy_kwh`` lines (header optional)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise TraceError(f"{path}: cannot read trace: {error}") from error
    jobs = []
    for number, row in enumerate(rows, start=1):
        if not row or row[0].strip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "arrival":
            continue
        if len(row) != 4:
            raise TraceError(
                f"{path}:{number}: expected 4 fields arrival,duration,max_delay,energy_kwh, "
                f"found {len(row)}"
            )
        try:
            arrival = datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
        except ValueError:
            raise TraceError(f"{path}:{number}: arrival {row[0]!r} is not RFC 3339") from None
        if arrival.tzinfo is None:
            raise TraceError(f"{path}:{number}: arrival {row[0]!r} has no UTC offset")
        duration = _duration(row[1], path, number, "duration")
        max_delay = _duration(row[2], path, number, "max_delay")
        try:
            energy = float(row[3])
        except ValueError:
            raise TraceError(f"{path}:{number}: energy_kwh {row[3]!r} is not a number") from None
        if duration <= 0 or max_delay < 0 or not math.isfinite(energy) or energy < 0:
            raise TraceError(
                f"{path}:{number}: duration must be > 0, max_delay >= 0, energy_kwh >= 0"
            )
        jobs.append(Job(int(arrival.timestamp()), duration, max_delay, energy))
    if not jobs:
        raise TraceError(f"{path}: the trace has no jobs")
    return sorted(jobs, key=lambda job: job.arrival)


def build_trace(
    name: str,
    *,
    data_start: int,
    data_end: int,
    zone: ZoneInfo,
    max_delay_s: int,
    seed: int = 7,
) -> list[Job]:
    """A built-in trace over the data's span, or a CSV trace from a path.

    Built-in traces start on the first whole local day of the data and keep only Jobs whose
    whole window (arrival + max delay + duration) fits in the data. CSV Jobs must fit too.
    """
    if name not in BUILTIN_TRACES:
        jobs = csv_trace(Path(name))
    else:
        # The longest possible job must still end before the data does.
        longest = 12 * 3600 if name == "poisson" else SEED_DURATION_S
        days = whole_local_days(data_start, data_end - max_delay_s - longest, zone)
        if not days:
            raise TraceError("the data is too short for one whole local day plus the max delay")
        if name == "seed":
            jobs = seed_trace(days, zone, max_delay_s)
        elif name == "overnight":
            jobs = overnight_trace(days, zone, max_delay_s, seed)
        else:
            start = local_to_epoch(days[0], time(0, 0), zone)
            jobs = poisson_trace(start, start + len(days) * DAY_S, max_delay_s, seed)
    fitting = [
        job
        for job in jobs
        if job.arrival >= data_start and job.arrival + job.max_delay_s + job.duration_s <= data_end
    ]
    if not fitting:
        raise TraceError("no job of the trace fits in the data's time span")
    return fitting

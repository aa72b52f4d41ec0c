"""Carbon-intensity data files: the Electricity Maps export format and the DACF format.

Both are CSV with one row per time step (UTC). Loading is strict: a file with a missing column,
an unparseable or non-finite value, an unsorted or duplicate time, or a gap gets a
``DataFileError`` naming the file, the line and the problem, so a replay or a benchmark never
runs on silently damaged data.

Electricity Maps export (data portal)::

    Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),
    Carbon Intensity gCO₂eq/kWh (LCA),...,Data Estimated,...

DACF (Maji et al., e-Energy 2022)::

    ,UTC time,carbon_intensity,carbon_from_src_forecasts,...

DACF values are direct (operational) intensity, with the day-ahead forecast made for each hour.

Forecast vintages (every forecast a provider issued, as it was issued)::

    issued_at,target_time,value
    2026-01-05T00:00Z,2026-01-05T00:00Z,182
    2026-01-05T00:00Z,2026-01-05T00:30Z,175
    2026-01-05T00:30Z,2026-01-05T00:30Z,171

One row per (issue time, target step), sorted by ``issued_at`` then ``target_time``; each
vintage's targets are evenly spaced without gaps, start no earlier than one step before its
issue time (the step in force when it was issued), and its step is the spacing of its targets
(a one-row vintage takes the file's most common step). Values are g/kWh, finite and
non-negative. Actuals come from an intensity file beside it.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from webhook.core.series import FloatArray, IntArray, StepSeries

EM_TIME = "Datetime (UTC)"
EM_ZONE = "Zone Id"
EM_ESTIMATED = "Data Estimated"
EM_COLUMNS = {
    "lca": "Carbon Intensity gCO₂eq/kWh (LCA)",
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
}
DACF_TIME = "UTC time"
DACF_ACTUAL = "carbon_intensity"
DACF_FORECAST = "carbon_from_src_forecasts"

Column = Literal["lca", "direct"]
FileFormat = Literal["electricitymaps", "dacf"]


class DataFileError(ValueError):
    """A data file that cannot be used, with the file, line and problem in the message."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class CarbonFile:
    """One loaded file: actual intensity, and the forecast made for each step where present."""

    path: Path
    format: FileFormat
    zone: str | None
    column: str
    actual: StepSeries
    forecast: StepSeries | None
    estimated_share: float
    """Share of rows the source marked as estimated (0 where the format has no such column)."""


def _parse_time(path: Path, line: int, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataFileError(path, f"unparseable time {text!r} (expected ISO 8601)", line) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _parse_value(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataFileError(path, f"column {column!r}: {text!r} is not a number", line) from None
    if not math.isfinite(value):
        raise DataFileError(path, f"column {column!r}: non-finite value {text!r}", line)
    return value


def _check_times(path: Path, times: list[int]) -> int:
    """Sorted, unique, evenly spaced; returns the step in seconds. Line = row index + 2."""
    if len(times) < 2:
        raise DataFileError(path, f"needs at least 2 rows of data, found {len(times)}")
    steps = [b - a for a, b in itertools.pairwise(times)]
    step = Counter(steps).most_common(1)[0][0]
    if step <= 0:
        step = min(s for s in steps if s > 0) if any(s > 0 for s in steps) else 0
    for index, delta in enumerate(steps):
        line = index + 3  # the later of the two rows; line 1 is the header
        if delta == 0:
            raise DataFileError(path, "duplicate time (same as the previous row)", line)
        if delta < 0:
            raise DataFileError(path, "unsorted: time earlier than the previous row", line)
        if delta != step:
            raise DataFileError(
                path,
                f"gap: {delta / 3600:g} h after the previous row where the file's step is "
                f"{step / 3600:g} h",
                line,
            )
    return step


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(path, f"cannot read: {error}") from error
    if not header:
        raise DataFileError(path, "empty file (no header)")
    return header, rows


def detect_format(header: list[str]) -> FileFormat | None:
    if EM_TIME in header:
        return "electricitymaps"
    if DACF_TIME in header:
        return "dacf"
    return None


def load_carbon_file(path: str | Path, *, column: Column = "lca") -> CarbonFile:
    """Load an Electricity Maps export or a DACF file (detected from the header).

    ``column`` picks life-cycle (``lca``, Electricity Maps' default) or ``direct`` intensity in
    Electricity Maps files; DACF files only have direct intensity.
    """
    path = Path(path)
    header, rows = _rows(path)
    file_format = detect_format(header)
    if file_format is None:
        raise DataFileError(
            path,
            f"unknown format: expected a {EM_TIME!r} column (Electricity Maps export) or a "
            f"{DACF_TIME!r} column (DACF); found {header[:6]}",
            1,
        )
    if file_format == "electricitymaps":
        time_column, value_column, forecast_column = EM_TIME, EM_COLUMNS[column], None
        required = [EM_TIME, value_column]
    else:
        time_column, value_column, forecast_column = DACF_TIME, DACF_ACTUAL, DACF_FORECAST
        required = [DACF_TIME, DACF_ACTUAL]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}", 1)

    times: list[int] = []
    actual: list[float] = []
    forecast: list[float] = []
    zones: set[str] = set()
    estimated = 0
    has_forecast = forecast_column is not None and forecast_column in header
    for index, row in enumerate(rows):
        line = index + 2
        if None in row or any(row.get(name) is None for name in required):
            raise DataFileError(path, "wrong number of fields", line)
        times.append(_parse_time(path, line, row[time_column]))
        actual.append(_parse_value(path, line, value_column, row[value_column]))
        if has_forecast and forecast_column is not None:
            forecast.append(_parse_value(path, line, forecast_column, row[forecast_column]))
        if file_format == "electricitymaps":
            if row.get(EM_ZONE):
                zones.add(row[EM_ZONE])
            if row.get(EM_ESTIMATED, "").strip().lower() == "true":
                estimated += 1
    step = _check_times(path, times)
    if len(zones) > 1:
        raise DataFileError(path, f"several zones in one file: {sorted(zones)}")
    time_array = np.asarray(times, dtype=np.int64)
    end = int(time_array[-1] + step)
    return CarbonFile(
        path=path,
        format=file_format,
        zone=next(iter(zones)) if zones else None,
        column=value_column,
        actual=StepSeries(time_array, np.asarray(actual), end),
        forecast=StepSeries(time_array, np.asarray(forecast), end) if has_forecast else None,
        estimated_share=estimated / len(rows),
    )


VINTAGE_COLUMNS = ("issued_at", "target_time", "value")


@dataclass(frozen=True)
class ForecastVintages:
    """Every forecast issued, as issued: which one was current at any moment, and the forecast
    a client that kept each one it received (the newest winning) would hold then."""

    path: Path
    issued: IntArray
    """Issue times, sorted and unique (epoch seconds)."""
    vintages: tuple[StepSeries, ...]
    """The forecast issued at ``issued[i]``."""
    _targets: IntArray
    _issues: IntArray
    _values: FloatArray
    _ends: IntArray
    """Every row, sorted by target then issue time, and the end of the row's step."""

    @classmethod
    def build(cls, path: Path, issued: list[int], vintages: list[StepSeries]) -> ForecastVintages:
        targets = np.concatenate([v.times for v in vintages])
        issues = np.concatenate(
            [
                np.full(v.times.size, at, dtype=np.int64)
                for at, v in zip(issued, vintages, strict=True)
            ]
        )
        values = np.concatenate([v.values for v in vintages])
        ends = np.concatenate([np.append(v.times[1:], v.end) for v in vintages])
        order = np.lexsort((issues, targets))
        return cls(
            path,
            np.asarray(issued, dtype=np.int64),
            tuple(vintages),
            targets[order],
            issues[order],
            values[order],
            ends[order].astype(np.int64),
        )

    def current(self, now: int) -> tuple[int, StepSeries] | None:
        """The newest vintage issued at or before ``now`` and its issue time (None: none yet)."""
        index = int(np.searchsorted(self.issued, now, side="right")) - 1
        if index < 0:
            return None
        return int(self.issued[index]), self.vintages[index]

    def received(self, now: int, start: int, end: int) -> StepSeries | None:
        """What a client holding every vintage issued by ``now`` knows about ``[start, end)``:
        per target step the newest vintage's value (the product's own merge of forecasts).
        Only the unbroken stretch that reaches furthest is returned (None: nothing covers the
        window)."""
        first = int(np.searchsorted(self._targets, start, side="left"))
        last = int(np.searchsorted(self._targets, end, side="left"))
        targets = self._targets[first:last]
        known = self._issues[first:last] <= now
        targets = targets[known]
        if targets.size == 0:
            return None
        values = self._values[first:last][known]
        ends = self._ends[first:last][known]
        # Rows are sorted by issue time within a target: the last of each target is the newest.
        newest = np.append(targets[1:] != targets[:-1], True)
        targets, values, ends = targets[newest], values[newest], ends[newest]
        breaks = np.flatnonzero(ends[:-1] < targets[1:])
        begin = int(breaks[-1]) + 1 if breaks.size else 0
        return StepSeries(targets[begin:], values[begin:], int(min(ends[-1], end)))


def load_vintage_file(path: str | Path) -> ForecastVintages:
    """Load a forecast-vintages file (format in the module doc), strictly: any problem is a
    ``DataFileError`` naming the file, the line and what is wrong."""
    path = Path(path)
    header, rows = _rows(path)
    missing = [name for name in VINTAGE_COLUMNS if name not in header]
    if missing:
        raise DataFileError(
            path,
            f"missing column(s) {missing}: a forecast-vintages file has the columns "
            f"{','.join(VINTAGE_COLUMNS)}; found {header[:6]}",
            1,
        )
    groups: list[tuple[int, int, list[int], list[float]]] = []  # issued, first line, ...
    previous: tuple[int, int] | None = None
    for index, row in enumerate(rows):
        line = index + 2
        if None in row or any(row.get(name) is None for name in VINTAGE_COLUMNS):
            raise DataFileError(path, "wrong number of fields", line)
        issued = _parse_time(path, line, row["issued_at"])
        target = _parse_time(path, line, row["target_time"])
        value = _parse_value(path, line, "value", row["value"])
        if value < 0:
            raise DataFileError(path, f"column 'value': negative intensity {value:g}", line)
        if previous is not None:
            if issued < previous[0]:
                raise DataFileError(
                    path, "unsorted: issued_at earlier than the previous row's", line
                )
            if issued == previous[0] and target <= previous[1]:
                problem = "duplicate" if target == previous[1] else "unsorted"
                raise DataFileError(
                    path,
                    f"{problem} target_time within the vintage issued at "
                    f"{row['issued_at'].strip()}",
                    line,
                )
        if not groups or groups[-1][0] != issued:
            groups.append((issued, line, [], []))
        groups[-1][2].append(target)
        groups[-1][3].append(value)
        previous = (issued, target)
    if not groups:
        raise DataFileError(path, "no forecast rows")
    spacings = Counter(step for *_, targets, _ in groups for step in np.diff(targets).tolist())
    if not spacings:
        raise DataFileError(
            path, "every vintage has a single row: the step between targets is unknown"
        )
    file_step = spacings.most_common(1)[0][0]
    issued_times: list[int] = []
    vintages: list[StepSeries] = []
    for issued, line, targets, values in groups:
        steps = np.diff(targets)
        step = int(Counter(steps.tolist()).most_common(1)[0][0]) if steps.size else file_step
        odd = np.flatnonzero(steps != step)
        if odd.size:
            bad = int(odd[0])
            raise DataFileError(
                path,
                f"gap: {steps[bad] / 3600:g} h between targets where the vintage's step is "
                f"{step / 3600:g} h",
                line + bad + 1,
            )
        if targets[0] < issued - step:
            raise DataFileError(
                path,
                "target_time more than one step before issued_at: a vintage forecasts from the "
                "step in force when it was issued",
                line,
            )
        issued_times.append(issued)
        vintages.append(
            StepSeries(np.asarray(targets, dtype=np.int64), np.asarray(values), targets[-1] + step)
        )
    return ForecastVintages.build(path, issued_times, vintages)

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

from webhook.core.series import StepSeries

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

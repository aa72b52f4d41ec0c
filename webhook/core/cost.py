"""Electricity prices and the cost of a run.

A price model yields a ``StepSeries`` of USD/kWh over any window (``series``), which the planner
integrates exactly, and the cost of one run (``cost_usd``: the run's constant average power x
the price, integrated over the run). Three models:

- ``FlatPrice``: one price.
- ``TimeOfUsePrice``: windows of weekdays and local hours with a price each (the first window
  that matches wins) and a default price elsewhere, in an IANA time zone; DST-correct because the
  schedule is evaluated on every quarter hour in UTC (all current UTC offsets and transitions
  fall on quarter hours).
- ``SeriesPrice``: an hourly price series loaded from CSV files in the
  ``Datetime (UTC),Datetime (Local),Price (USD/MWh)`` format (negative prices allowed).

Pure apart from ``load_price_series`` (files).
"""

from __future__ import annotations

import csv
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webhook.core.datafiles import DataFileError
from webhook.core.series import FloatArray, IntArray, StepSeries, from_epoch, to_epoch

USD_PER_MWH_PER_USD_PER_KWH = 1000.0
PRICE_TIME_COLUMN = "Datetime (UTC)"
PRICE_VALUE_COLUMN = "Price (USD/MWh)"

_QUARTER_HOUR_S = 900
_SLOTS_PER_DAY = 96
_DAY_S = 86400
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS: dict[str, int] = {
    **{name: day for day, name in enumerate(WEEKDAY_NAMES)},
    **{name: day for day, name in enumerate(_FULL_NAMES)},
}
_DAY_GROUPS: dict[str, tuple[int, ...]] = {
    "weekdays": (0, 1, 2, 3, 4),
    "weekday": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "weekend": (5, 6),
    "daily": (0, 1, 2, 3, 4, 5, 6),
    "all": (0, 1, 2, 3, 4, 5, 6),
}


class PriceError(ValueError):
    """A price that cannot be given: a window outside a price series, a bad schedule."""


Moment = datetime | int | float


def _epoch(moment: Moment) -> float:
    return float(to_epoch(moment)) if isinstance(moment, datetime) else float(moment)


class PriceModel(ABC):
    """Electricity price in USD/kWh as a step function of time."""

    @abstractmethod
    def series(self, start: Moment, end: Moment) -> StepSeries:
        """Prices (USD/kWh) covering at least ``[start, end)`` (aware datetimes or UTC epoch
        seconds); a series of one step when ``end <= start``."""

    def cost_usd(self, energy_kwh: float, start: Moment, duration_s: float) -> float:
        """Cost of drawing ``energy_kwh`` evenly over ``[start, start + duration_s)``."""
        if not math.isfinite(energy_kwh) or not math.isfinite(duration_s) or duration_s < 0:
            raise PriceError(
                f"cost needs finite energy and a non-negative duration, got {energy_kwh} kWh "
                f"over {duration_s} s"
            )
        begin = _epoch(start)
        prices = self.series(begin, begin + duration_s)
        if duration_s == 0:
            return energy_kwh * prices.value_at(begin)
        total = prices.integral(np.array([begin]), np.array([begin + duration_s]))[0]
        return float(energy_kwh * total / duration_s)


@dataclass(frozen=True, slots=True)
class FlatPrice(PriceModel):
    """The same price at every hour."""

    usd_per_kwh: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.usd_per_kwh):
            raise PriceError(f"flat price must be finite, got {self.usd_per_kwh}")

    def series(self, start: Moment, end: Moment) -> StepSeries:
        begin = math.floor(_epoch(start))
        stop = max(math.ceil(_epoch(end)), begin + 1)
        return StepSeries(
            np.array([begin], dtype=np.int64), np.array([self.usd_per_kwh]), int(stop)
        )


@dataclass(frozen=True, slots=True)
class TouWindow:
    """A price on some weekdays between two local times. ``end_minute <= start_minute`` means
    the window runs past midnight into the next day (``days`` are the days it starts on)."""

    days: frozenset[int]
    """Weekdays, Monday = 0."""
    start_minute: int
    end_minute: int
    usd_per_kwh: float

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise PriceError(f"window days must be weekdays 0-6 (Monday = 0), got {self.days}")
        for name, value, low, high in (
            ("start", self.start_minute, 0, 1439),
            ("end", self.end_minute, 1, 1440),
        ):
            if not low <= value <= high or value % 15:
                raise PriceError(
                    f"window {name} {value // 60:02d}:{value % 60:02d} must be a quarter hour "
                    f"between {low // 60:02d}:00 and {high // 60:02d}:{high % 60:02d}"
                )
        if self.start_minute == self.end_minute:
            raise PriceError("window start and end are equal: the window is empty")
        if not math.isfinite(self.usd_per_kwh):
            raise PriceError(f"window price must be finite, got {self.usd_per_kwh}")

    def covers(self, weekday: int, minute: int) -> bool:
        if self.start_minute < self.end_minute:
            return weekday in self.days and self.start_minute <= minute < self.end_minute
        return (weekday in self.days and minute >= self.start_minute) or (
            (weekday - 1) % 7 in self.days and minute < self.end_minute
        )


@dataclass(frozen=True, slots=True, eq=False)
class TimeOfUsePrice(PriceModel):
    """A time-of-use tariff: the first window covering a local time sets the price, else
    ``default_usd_per_kwh``. ``timezone`` is an IANA name (``Europe/Berlin``)."""

    windows: tuple[TouWindow, ...]
    timezone: ZoneInfo
    default_usd_per_kwh: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.default_usd_per_kwh):
            raise PriceError(f"default price must be finite, got {self.default_usd_per_kwh}")

    def _week_table(self) -> FloatArray:
        """Price of each quarter hour of the local week (Monday 00:00 first)."""
        table = np.full(7 * _SLOTS_PER_DAY, self.default_usd_per_kwh)
        for slot in range(table.size):
            weekday, minute = divmod(slot, _SLOTS_PER_DAY)
            minute *= 15
            for window in self.windows:
                if window.covers(weekday, minute):
                    table[slot] = window.usd_per_kwh
                    break
        return table

    def _offsets(self, grid: IntArray) -> IntArray:
        """UTC offset (s) at each grid time; computed per point only on days with a change."""
        offsets = np.empty(grid.size, dtype=np.int64)
        days = grid // _DAY_S
        for day in np.unique(days):
            mask = days == day
            first = self._offset(int(day) * _DAY_S)
            if first == self._offset((int(day) + 1) * _DAY_S):
                offsets[mask] = first
            else:
                offsets[mask] = [self._offset(int(t)) for t in grid[mask]]
        return offsets

    def _offset(self, epoch_s: int) -> int:
        offset = from_epoch(epoch_s).astimezone(self.timezone).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def series(self, start: Moment, end: Moment) -> StepSeries:
        begin = math.floor(_epoch(start) / _QUARTER_HOUR_S) * _QUARTER_HOUR_S
        stop = max(math.ceil(_epoch(end)), begin + 1)
        grid = np.arange(begin, stop, _QUARTER_HOUR_S, dtype=np.int64)
        local = grid + self._offsets(grid)
        weekday = (local // _DAY_S + _EPOCH_WEEKDAY) % 7
        slot = weekday * _SLOTS_PER_DAY + (local % _DAY_S) // _QUARTER_HOUR_S
        prices = self._week_table()[slot]
        keep = np.concatenate(([0], np.flatnonzero(np.diff(prices) != 0) + 1))
        return StepSeries(grid[keep], prices[keep], int(stop))


@dataclass(frozen=True, slots=True, eq=False)
class SeriesPrice(PriceModel):
    """Prices from a recorded or published series; a window outside it is an error (a stale
    price silently held would be wrong)."""

    prices: StepSeries

    def series(self, start: Moment, end: Moment) -> StepSeries:
        begin, stop = _epoch(start), max(_epoch(end), _epoch(start))
        if not (self.prices.start <= begin and stop <= self.prices.end):
            raise PriceError(
                f"the price series covers {from_epoch(self.prices.start).isoformat()} to "
                f"{from_epoch(self.prices.end).isoformat()}; the window "
                f"{from_epoch(begin).isoformat()} to {from_epoch(stop).isoformat()} is outside it"
            )
        return self.prices.window(begin, stop)


# --- Price series files --------------------------------------------------------------------------


def load_price_series(paths: Sequence[str | Path]) -> StepSeries:
    """USD/kWh from one or more price CSVs (``Datetime (UTC),...,Price (USD/MWh)``), joined in
    time order; they must be evenly spaced and contiguous. ``DataFileError`` names the file,
    line and problem."""
    if not paths:
        raise PriceError("no price files given")
    parts = sorted((_read_price_file(Path(p)) for p in paths), key=lambda part: part[1][0])
    times: list[int] = []
    values: list[float] = []
    step: int | None = None
    for path, file_times, file_values, file_step in parts:
        if step is not None and file_step != step:
            raise DataFileError(
                path, f"step {file_step / 3600:g} h differs from the other files' {step / 3600:g} h"
            )
        step = file_step
        if times and file_times[0] != times[-1] + step:
            raise DataFileError(
                path,
                f"starts at {from_epoch(file_times[0]).isoformat()}, not one step after the "
                f"previous file's last row ({from_epoch(times[-1]).isoformat()}): files must "
                "be contiguous",
                2,
            )
        times.extend(file_times)
        values.extend(file_values)
    assert step is not None
    time_array = np.asarray(times, dtype=np.int64)
    return StepSeries(time_array, np.asarray(values), int(time_array[-1] + step))


def _read_price_file(path: Path) -> tuple[Path, list[int], list[float], int]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise DataFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(path, f"cannot read: {error}") from error
    missing = [c for c in (PRICE_TIME_COLUMN, PRICE_VALUE_COLUMN) if c not in header]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; found {header[:6]}", 1)
    times: list[int] = []
    values: list[float] = []
    for index, row in enumerate(rows):
        line = index + 2
        time_text, price_text = row.get(PRICE_TIME_COLUMN), row.get(PRICE_VALUE_COLUMN)
        if None in row or time_text is None or price_text is None:
            raise DataFileError(path, "wrong number of fields", line)
        try:
            moment = datetime.fromisoformat(time_text.strip())
        except ValueError:
            raise DataFileError(
                path, f"unparseable time {time_text!r} (expected ISO 8601)", line
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            price = float(price_text)
        except ValueError:
            raise DataFileError(
                path, f"column {PRICE_VALUE_COLUMN!r}: {price_text!r} is not a number", line
            ) from None
        if not math.isfinite(price):
            raise DataFileError(
                path, f"column {PRICE_VALUE_COLUMN!r}: non-finite price {price_text!r}", line
            )
        if times:
            delta = to_epoch(moment) - times[-1]
            if delta <= 0:
                problem = (
                    "duplicate time" if delta == 0 else "unsorted: time before the previous row"
                )
                raise DataFileError(path, problem, line)
            if len(times) >= 2 and delta != times[1] - times[0]:
                raise DataFileError(
                    path,
                    f"gap: {delta / 3600:g} h after the previous row where the file's step is "
                    f"{(times[1] - times[0]) / 3600:g} h",
                    line,
                )
        times.append(to_epoch(moment))
        values.append(price / USD_PER_MWH_PER_USD_PER_KWH)
    if len(times) < 2:
        raise DataFileError(path, f"needs at least 2 rows of prices, found {len(times)}")
    return path, times, values, times[1] - times[0]


# --- Settings ------------------------------------------------------------------------------------


def parse_days(names: Sequence[str]) -> frozenset[int]:
    """Weekday names (``mon``..``sun``, full names too) and groups (``weekdays``,
    ``weekends``, ``daily``) to weekday numbers, Monday = 0."""
    days: set[int] = set()
    for name in names:
        key = name.strip().lower()
        if key in _DAY_GROUPS:
            days.update(_DAY_GROUPS[key])
        elif key in _WEEKDAYS:
            days.add(_WEEKDAYS[key])
        else:
            raise ValueError(
                f"unknown day {name!r}; expected mon..sun, monday..sunday, weekdays, "
                "weekends or daily"
            )
    if not days:
        raise ValueError("a window needs at least one day")
    return frozenset(days)


class TouWindowSettings(BaseModel):
    """One time-of-use window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: list[str] = Field(
        default_factory=lambda: ["daily"],
        description="Days the window starts on: mon..sun, weekdays, weekends or daily.",
    )
    start_hour: float = Field(
        ge=0, lt=24, description="Local start time in hours (16.5 = 16:30), a quarter hour."
    )
    end_hour: float = Field(
        gt=0,
        le=24,
        description="Local end time in hours (24 = midnight); at or before the start means "
        "the window runs past midnight.",
    )
    usd_per_kwh: float = Field(description="Price inside the window, USD/kWh.")

    @field_validator("days")
    @classmethod
    def _days_known(cls, value: list[str]) -> list[str]:
        parse_days(value)
        return value

    @field_validator("start_hour", "end_hour")
    @classmethod
    def _quarter_hour(cls, value: float) -> float:
        if (value * 4) != int(value * 4):
            raise ValueError(f"{value} h is not on a quarter hour (e.g. 16, 16.25, 16.5)")
        return value

    def window(self) -> TouWindow:
        return TouWindow(
            days=parse_days(self.days),
            start_minute=round(self.start_hour * 60),
            end_minute=round(self.end_hour * 60),
            usd_per_kwh=self.usd_per_kwh,
        )


class TouSettings(BaseModel):
    """A time-of-use tariff."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(description="IANA time zone of the tariff's hours, e.g. Europe/Berlin.")
    default_usd_per_kwh: float = Field(description="Price outside every window, USD/kWh.")
    windows: list[TouWindowSettings] = Field(
        default_factory=list, description="Windows in priority order (the first match wins)."
    )

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'Europe/Berlin')") from None
        return value

    @model_validator(mode="after")
    def _windows_valid(self) -> TouSettings:
        for index, window in enumerate(self.windows):
            try:
                window.window()
            except PriceError as error:
                raise ValueError(f"windows[{index}]: {error}") from None
        return self


CostKind = Literal["none", "flat", "tou", "series"]


class CostSettings(BaseModel):
    """Electricity price for cost estimates. ``none`` (default) leaves cost out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CostKind = Field(
        default="none",
        description="none, flat (flat_usd_per_kwh), tou (tou) or series (series_files).",
    )
    flat_usd_per_kwh: float | None = Field(
        default=None, description="The price for kind=flat, USD/kWh."
    )
    tou: TouSettings | None = Field(default=None, description="The tariff for kind=tou.")
    series_files: list[Path] = Field(
        default_factory=list,
        description="Price CSVs for kind=series (Datetime (UTC),Datetime (Local),"
        "Price (USD/MWh)), contiguous, e.g. one per year.",
    )

    @model_validator(mode="after")
    def _parameters_match_kind(self) -> CostSettings:
        given = {
            "flat": self.flat_usd_per_kwh is not None,
            "tou": self.tou is not None,
            "series": bool(self.series_files),
        }
        names = {"flat": "flat_usd_per_kwh", "tou": "tou", "series": "series_files"}
        if self.kind != "none" and not given[self.kind]:
            raise ValueError(f"kind={self.kind!r} needs {names[self.kind]}")
        stray = [names[k] for k, present in given.items() if present and k != self.kind]
        if stray:
            raise ValueError(f"{', '.join(stray)} given but kind={self.kind!r}")
        if self.flat_usd_per_kwh is not None and not math.isfinite(self.flat_usd_per_kwh):
            raise ValueError("flat_usd_per_kwh must be finite")
        return self


def build_price_model(settings: CostSettings) -> PriceModel | None:
    """The price model for ``settings`` (``None`` for kind=none); loads series files."""
    if settings.kind == "flat":
        assert settings.flat_usd_per_kwh is not None
        return FlatPrice(settings.flat_usd_per_kwh)
    if settings.kind == "tou":
        assert settings.tou is not None
        return TimeOfUsePrice(
            windows=tuple(w.window() for w in settings.tou.windows),
            timezone=ZoneInfo(settings.tou.timezone),
            default_usd_per_kwh=settings.tou.default_usd_per_kwh,
        )
    if settings.kind == "series":
        return SeriesPrice(load_price_series(settings.series_files))
    return None

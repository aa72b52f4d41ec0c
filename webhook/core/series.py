"""Piecewise-constant time series: carbon intensity, forecasts and prices.

A series holds ``values[i]`` over ``[times[i], times[i+1])`` and its last value over
``[times[-1], end)``. Times are UTC epoch seconds (``int64``); the resolution is whatever the
data has (hourly, half-hourly, 5-minute, or irregular). Integrals over arbitrary windows are
exact for such a step function and vectorised, which is what makes the planner fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class SeriesError(ValueError):
    """A series that cannot be built: unsorted, duplicate or non-finite points."""


def to_epoch(moment: datetime) -> int:
    """UTC epoch seconds of an aware datetime (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: times must be timezone-aware")
    return int(moment.timestamp())


def from_epoch(seconds: float) -> datetime:
    """Aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(float(seconds), tz=UTC)


@dataclass(frozen=True)
class StepSeries:
    """A piecewise-constant series with an exact, vectorised integral."""

    times: IntArray
    values: FloatArray
    end: int
    _cumulative: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        times = np.asarray(self.times, dtype=np.int64)
        values = np.asarray(self.values, dtype=np.float64)
        if times.ndim != 1 or times.shape != values.shape:
            raise SeriesError("times and values must be 1-D arrays of the same length")
        if times.size == 0:
            raise SeriesError("a series needs at least one point")
        steps = np.diff(times)
        if np.any(steps <= 0):
            bad = int(np.argmax(steps <= 0)) + 1
            kind = "duplicate" if steps[bad - 1] == 0 else "out-of-order"
            raise SeriesError(f"{kind} time at point {bad}: {from_epoch(times[bad]).isoformat()}")
        if not np.all(np.isfinite(values)):
            bad = int(np.argmax(~np.isfinite(values)))
            raise SeriesError(
                f"non-finite value at point {bad} ({from_epoch(times[bad]).isoformat()})"
            )
        if self.end <= times[-1]:
            raise SeriesError("the series must end after its last point")
        edges = np.append(times, np.int64(self.end))
        cumulative = np.concatenate(([0.0], np.cumsum(values * np.diff(edges))))
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_cumulative", cumulative)

    @classmethod
    def regular(cls, start: int, step_s: int, values: Sequence[float] | FloatArray) -> StepSeries:
        """A series with a fixed step starting at ``start``."""
        array = np.asarray(values, dtype=np.float64)
        times = start + step_s * np.arange(array.size, dtype=np.int64)
        return cls(times=times, values=array, end=int(start + step_s * array.size))

    @classmethod
    def from_points(
        cls,
        points: Sequence[tuple[datetime, float]],
        *,
        step_s: int | None = None,
    ) -> StepSeries:
        """A series from (aware time, value) points; the last point lasts ``step_s``
        (default: the median spacing, or one hour for a single point)."""
        if not points:
            raise SeriesError("a series needs at least one point")
        times = np.array([to_epoch(t) for t, _ in points], dtype=np.int64)
        values = np.array([v for _, v in points], dtype=np.float64)
        if step_s is None:
            step_s = int(np.median(np.diff(times))) if times.size > 1 else 3600
        return cls(times=times, values=values, end=int(times[-1] + max(step_s, 1)))

    @property
    def start(self) -> int:
        return int(self.times[0])

    @property
    def step_s(self) -> int:
        """The typical (median) spacing of the points."""
        if self.times.size == 1:
            return int(self.end - self.times[0])
        return int(np.median(np.diff(self.times)))

    def __len__(self) -> int:
        return int(self.times.size)

    def cumulative_at(self, at: IntArray | FloatArray) -> FloatArray:
        """Integral of the series from its start to each time in ``at`` (clamped to the span)."""
        at = np.clip(np.asarray(at, dtype=np.float64), self.times[0], self.end)
        index = np.searchsorted(self.times, at, side="right") - 1
        index = np.clip(index, 0, self.times.size - 1)
        return self._cumulative[index] + self.values[index] * (at - self.times[index])

    def integral(self, start: IntArray | FloatArray, end: IntArray | FloatArray) -> FloatArray:
        """Integral over each ``[start, end)`` (value x seconds), clamped to the span."""
        return self.cumulative_at(end) - self.cumulative_at(start)

    def mean(self, start: float, end: float) -> float:
        """Time-weighted mean over ``[start, end)``; the value at ``start`` for an empty window."""
        if end <= start:
            return self.value_at(start)
        total = self.integral(np.array([start]), np.array([end]))[0]
        return float(total / (end - start))

    def value_at(self, at: float) -> float:
        """The value in force at ``at`` (the first/last value outside the span)."""
        index = int(np.searchsorted(self.times, at, side="right")) - 1
        return float(self.values[min(max(index, 0), self.times.size - 1)])

    def covers(self, start: float, end: float) -> bool:
        return bool(self.times[0] <= start and end <= self.end)

    def window(self, start: float, end: float) -> StepSeries:
        """The part of the series overlapping ``[start, end)`` (points keep their times)."""
        first = max(int(np.searchsorted(self.times, start, side="right")) - 1, 0)
        last = int(np.searchsorted(self.times, end, side="left"))
        last = max(last, first + 1)
        stop = int(self.times[last]) if last < self.times.size else self.end
        return StepSeries(self.times[first:last], self.values[first:last], stop)

    def extended_to(self, end: int) -> StepSeries:
        """The same series, its last value held until ``end`` (persistence)."""
        if end <= self.end:
            return self
        return StepSeries(self.times, self.values, int(end))

    def points(self) -> list[tuple[datetime, float]]:
        return [(from_epoch(t), float(v)) for t, v in zip(self.times, self.values, strict=True)]

"""Observed carbon intensity per zone, kept bounded and persisted so it survives restarts.

:class:`IntensityHistory` holds what providers reported as observed (``latest`` and ``history``
answers) per zone: at most ``points_per_zone`` points per zone — points older than a day are
first merged into hourly means, then the oldest dropped — and at most ``max_zones`` zones (the
zone observed least recently goes first). It serialises to one compact JSON document, the
``history.json`` key of a ConfigMap that the leader rewrites now and then; any replica reads it
at start.

:class:`RecordingProvider` wraps the configured provider: every observation it passes on is
recorded, and when the provider cannot answer a ``history`` request the recorded observations
answer it instead, so after a restart during an outage the forecast chain still has a history
to forecast from (``ForecastSource`` asks for history when it first refreshes a zone). The
accounting of finished Jobs reads the observed intensity over their run from here too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson

from webhook.carbon.base import IntensityData, Provider, ProviderError
from webhook.core.forecast import hourly_means
from webhook.core.series import SeriesError, StepSeries

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DATA_KEY = "history.json"
HOUR_S = 3600
RAW_KEEP_S = 24 * HOUR_S
"""Points younger than this (before the newest) are kept at their own resolution."""


class HistoryFormatError(ValueError):
    """A stored history document that cannot be read (what and where)."""


class _Zone:
    __slots__ = ("end", "points")

    def __init__(self) -> None:
        self.points: dict[int, float] = {}
        self.end = 0

    def series(self) -> StepSeries | None:
        if not self.points:
            return None
        times = np.array(sorted(self.points), dtype=np.int64)
        values = np.array([self.points[int(t)] for t in times], dtype=np.float64)
        end = max(self.end, int(times[-1]) + 1)
        return StepSeries(times, values, end)


class IntensityHistory:
    """Bounded observed intensity per zone (thread-safe: providers record from the event loop,
    the controller reads from its thread)."""

    def __init__(self, *, points_per_zone: int = 672, max_zones: int = 32) -> None:
        if points_per_zone < 1 or max_zones < 1:
            raise ValueError("a history keeps at least one point of one zone")
        self._points_per_zone = points_per_zone
        self._max_zones = max_zones
        self._zones: dict[str, _Zone] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._series_memo: dict[str, tuple[int, StepSeries | None]] = {}

    @property
    def version(self) -> int:
        """Increases with every change (a writer persists when it differs from the last)."""
        return self._version

    @property
    def zones(self) -> list[str]:
        with self._lock:
            return sorted(self._zones)

    def record(self, zone: str, series: StepSeries) -> None:
        """Merge observed steps (new values win where a time is already held)."""
        with self._lock:
            state = self._zones.pop(zone, None) or _Zone()
            self._zones[zone] = state  # most recently observed last
            before = (dict(state.points), state.end)
            for t, v in zip(series.times.tolist(), series.values.tolist(), strict=True):
                state.points[int(t)] = float(v)
            state.end = max(state.end, int(series.end))
            self._bound(state)
            while len(self._zones) > self._max_zones:
                del self._zones[next(iter(self._zones))]
            if (state.points, state.end) != before:
                self._version += 1

    def _bound(self, state: _Zone) -> None:
        if len(state.points) <= self._points_per_zone:
            return
        series = state.series()
        assert series is not None
        newest = int(series.times[-1])
        cutoff = (newest - RAW_KEEP_S) // HOUR_S * HOUR_S
        old = {t: v for t, v in state.points.items() if t < cutoff}
        if old:
            hours, means = hourly_means(series, int(series.start) // HOUR_S * HOUR_S, cutoff)
            kept = {t: v for t, v in state.points.items() if t >= cutoff}
            state.points = dict(zip(hours.tolist(), means.tolist(), strict=True)) | kept
        if len(state.points) > self._points_per_zone:
            drop = sorted(state.points)[: len(state.points) - self._points_per_zone]
            for t in drop:
                del state.points[t]

    def series(self, zone: str) -> StepSeries | None:
        """Everything observed for ``zone`` (None: nothing)."""
        with self._lock:
            held = self._series_memo.get(zone)
            if held is not None and held[0] == self._version:
                return held[1]
            state = self._zones.get(zone)
            series = state.series() if state is not None else None
            self._series_memo[zone] = (self._version, series)
            return series

    def window(self, zone: str, start: int, end: int) -> StepSeries | None:
        """What was observed for ``zone`` overlapping ``[start, end)`` (None: nothing)."""
        series = self.series(zone)
        if series is None or series.end <= start or series.start >= end:
            return None
        return series.window(start, end)

    # -- persistence -------------------------------------------------------------------------

    def dump(self) -> str:
        """The whole history as compact JSON (times in epoch seconds)."""
        with self._lock:
            zones = {
                zone: {"end": state.end, "points": sorted(state.points.items())}
                for zone, state in self._zones.items()
            }
        return orjson.dumps({"version": FORMAT_VERSION, "zones": zones}).decode()

    def load(self, text: str, *, source: str = DATA_KEY) -> None:
        """Merge a document written by :meth:`dump` (held values win: they are newer)."""
        zones = parse_document(text, source=source)
        for zone, series in zones.items():
            with self._lock:
                held = self._zones.get(zone)
                newer = dict(held.points) if held is not None else {}
            self.record(zone, series)
            if newer:
                self.record(zone, _series_of(newer, int(series.end)))


def _series_of(points: Mapping[int, float], end: int) -> StepSeries:
    times = np.array(sorted(points), dtype=np.int64)
    values = np.array([points[int(t)] for t in times], dtype=np.float64)
    return StepSeries(times, values, max(end, int(times[-1]) + 1))


def parse_document(text: str, *, source: str = DATA_KEY) -> dict[str, StepSeries]:
    """The zones of a stored history document; a ``HistoryFormatError`` naming the problem."""
    try:
        document: Any = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise HistoryFormatError(f"{source}: not JSON ({e})") from e
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise HistoryFormatError(
            f"{source}: expected an object with version {FORMAT_VERSION} and zones"
        )
    zones = document.get("zones")
    if not isinstance(zones, dict):
        raise HistoryFormatError(f"{source}: 'zones' must be an object of zone -> points")
    result: dict[str, StepSeries] = {}
    for zone, entry in zones.items():
        try:
            pairs = [(int(t), float(v)) for t, v in entry["points"]]
            points = dict(pairs)
            if len(points) != len(pairs):
                raise ValueError("a time is given twice")
            if points:
                result[str(zone)] = _series_of(points, int(entry["end"]))
        except (KeyError, TypeError, ValueError, SeriesError) as e:
            raise HistoryFormatError(
                f"{source}: zone {zone!r}: expected {{'end': epoch, 'points': [[epoch, g/kWh], "
                f"...]}} ({e})"
            ) from e
    return result


class RecordingProvider:
    """A ``Provider`` that records the observations of the wrapped one (of every zone, or of
    the zones ``records`` accepts), and answers ``history`` from the recording when the wrapped
    provider cannot."""

    def __init__(
        self,
        inner: Provider,
        history: IntensityHistory,
        *,
        clock: Callable[[], float] = time.time,
        records: Callable[[str], bool] = lambda zone: True,
    ) -> None:
        self._inner = inner
        self._history = history
        self._clock = clock
        self._records = records

    def _record(self, zone: str, series: StepSeries) -> None:
        if self._records(zone):
            self._history.record(zone, series)

    @property
    def name(self) -> str:
        return self._inner.name

    async def latest(self, zone: str) -> IntensityData:
        data = await self._inner.latest(zone)
        self._record(zone, data.series)
        return data

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        return await self._inner.forecast(zone, horizon_s)

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        try:
            data = await self._inner.history(zone, start, end)
        except ProviderError as error:
            stored = self._history.window(zone, start, end)
            if stored is None:
                raise
            log.warning(
                "zone %s: %s; using %d recorded observations instead", zone, error, len(stored)
            )
            return IntensityData(
                zone, self._inner.name, "history", stored, int(self._clock()), estimated=False
            )
        self._record(zone, data.series)
        return data

    async def aclose(self) -> None:
        await self._inner.aclose()

"""The background refresher: keeps the forecast of every zone in use warm, off the request path.

Admission reads forecasts from memory only (``snapshot``). This task does the I/O: it refreshes
each zone it knows at a fixed interval, and at once when admission meets a zone for the first
time (``want``, a set insert and an event, cheap enough for the request path). Every error is
logged and counted; the loop never dies of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from webhook.core.forecast import ForecastResult, ForecastSnapshots
from webhook.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


INTENSITY_AHEAD_H = (0, 1, 3, 6, 12, 24)
"""Hours ahead at which ``greenlight_intensity_g_per_kwh`` shows each zone's forecast."""


class Refreshable(ForecastSnapshots, Protocol):
    """A forecast source (``ForecastSource``): ``refresh`` does I/O, ``snapshot`` reads memory."""

    async def refresh(self, zone: str) -> object: ...


class Refresher:
    """Refreshes every wanted zone every ``interval_s``; a new zone is refreshed at once."""

    def __init__(
        self,
        source: Refreshable,
        zones: Iterable[str],
        *,
        interval_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._zones: dict[str, None] = dict.fromkeys(zones)
        self._fresh: set[str] = set()
        self._interval_s = interval_s
        self._metrics = metrics
        for zone in self._zones:
            metrics.provider_errors.labels(zone=zone)  # at 0 before its first failure
        self._clock = clock
        self._wake = asyncio.Event()
        self.first_round = asyncio.Event()
        """Set once every zone known at start has been tried (whatever the outcome)."""

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(self._zones)

    def want(self, zone: str) -> None:
        """Keep ``zone`` warm from now on (called from the request path: no I/O)."""
        if zone not in self._zones:
            self._zones[zone] = None
            self._metrics.provider_errors.labels(zone=zone)  # at 0 before its first failure
            self._wake.set()

    async def refresh_once(self, zones: Iterable[str]) -> None:
        for zone in zones:
            try:
                await self._source.refresh(zone)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a background loop must survive any provider failure
                self._metrics.provider_errors.labels(zone=zone).inc()
                log.warning("forecast refresh failed for zone %s: %s", zone, e)
            else:
                # ForecastSource records provider errors instead of raising: a refresh that
                # did not leave a fresh provider forecast counts as one.
                result = self._source.snapshot(zone, self._clock())
                if result.source != "provider":
                    self._metrics.provider_errors.labels(zone=zone).inc()
                    log.warning(
                        "zone %s: using %s forecast: %s", zone, result.source, result.reason
                    )
            now = self._clock()
            snapshot = self._source.snapshot(zone, now)
            if snapshot.age_s is not None:
                self._metrics.forecast_age.labels(zone=zone).set(snapshot.age_s)
            if snapshot.series is not None:
                for ahead_h in INTENSITY_AHEAD_H:
                    at = now + ahead_h * 3600
                    if at < snapshot.series.end:
                        self._metrics.intensity.labels(zone=zone, ahead=f"{ahead_h}h").set(
                            snapshot.series.value_at(at)
                        )
            self._fresh.add(zone)

    async def run(self) -> None:
        """Refresh forever (cancel to stop)."""
        next_full = 0.0
        while True:
            now = time.monotonic()
            if now >= next_full:
                await self.refresh_once(list(self._zones))
                next_full = now + self._interval_s
                self.first_round.set()
            else:
                await self.refresh_once([z for z in list(self._zones) if z not in self._fresh])
            self._wake.clear()
            if any(zone not in self._fresh for zone in self._zones):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=next_full - time.monotonic())


class WarmForecasts:
    """A forecast source whose snapshots are memoised per zone for ``memo_s`` seconds.

    A snapshot picks a forecast and applies its correction (the correction itself, a few
    milliseconds, is memoised by the source per data and hour); on the request path a snapshot
    is computed once per zone per ``memo_s`` and dropped as soon as the zone is refreshed.
    The cost: the data age reported can lag by up to ``memo_s``.

    It also knows which zones have been refreshed at least once (``ready``): until then a
    missing forecast means "not loaded yet", not "provider down".
    """

    def __init__(self, source: Refreshable, *, memo_s: float = 10.0) -> None:
        self._source = source
        self._memo_s = memo_s
        self._memo: dict[str, tuple[float, ForecastResult]] = {}
        self._attempted: set[str] = set()

    async def refresh(self, zone: str) -> object:
        try:
            return await self._source.refresh(zone)
        finally:
            self._memo.pop(zone, None)
            self._attempted.add(zone)

    def ready(self, zone: str) -> bool:
        """True once a refresh of ``zone`` has finished, whatever its outcome."""
        return zone in self._attempted

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        at = time.time() if now is None else now
        held = self._memo.get(zone)
        if held is not None and 0.0 <= at - held[0] < self._memo_s:
            return held[1]
        result = self._source.snapshot(zone, at)
        self._memo[zone] = (at, result)
        return result

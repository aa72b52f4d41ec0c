"""The background refresher: keeps the forecast of every zone in use warm, off the request path.

Admission reads forecasts from memory only (``snapshot``). This task does the I/O: it refreshes
each zone it knows at a fixed interval, and at once when admission meets a zone for the first
time (``want``, a set insert and an event, cheap enough for the request path). Every error is
logged and counted; the loop never dies of one.

A zone never fetched yet can also be fetched on demand (``fetch_now``): admission awaits it,
within a timeout, so the first Job in a new zone is planned instead of run at once. A zone's
refresh is single-flight: concurrent admissions and the background loop share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from webhook.core.forecast import ForecastResult, ForecastSnapshots
from webhook.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

_T = TypeVar("_T")


INTENSITY_AHEAD_H = (0, 1, 3, 6, 12, 24)
"""Hours ahead at which ``greenlight_intensity_g_per_kwh`` shows each zone's forecast."""


class Refreshable(ForecastSnapshots, Protocol):
    """A forecast source (``ForecastSource``): ``refresh`` does I/O, ``snapshot`` reads memory."""

    async def refresh(self, zone: str) -> object: ...


class FetchResult(StrEnum):
    """How an on-demand fetch ended (the ``result`` label of its counter)."""

    OK = "ok"
    """A forecast is held for the zone now."""
    FAILED = "failed"
    """The fetch finished and still no forecast is held (the source's reason says why)."""
    TIMEOUT = "timeout"
    """Still running at the timeout: admission went on without it (it completes behind)."""


@dataclass(frozen=True)
class OnDemandFetch:
    """What one on-demand fetch gave the admissions that waited for it."""

    zone: str
    result: FetchResult
    waited_s: float


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
            self._start_at_zero(zone)
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._on_demand: dict[str, asyncio.Task[OnDemandFetch]] = {}
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
            self._start_at_zero(zone)
            self._wake.set()

    def _start_at_zero(self, zone: str) -> None:
        """A zone's counters at 0 before their first event (zones are few: those in use)."""
        self._metrics.provider_errors.labels(zone=zone)
        for result in FetchResult:
            self._metrics.on_demand_fetches.labels(zone=zone, result=result.value)

    def fetched(self, zone: str) -> bool:
        """True once a refresh of ``zone`` has finished, whatever its outcome."""
        return zone in self._fresh

    async def fetch_now(self, zone: str, timeout_s: float) -> OnDemandFetch | None:
        """Fetch a zone never fetched yet, waiting at most ``timeout_s`` (None: the zone was
        fetched already, or is not to be fetched on demand: ``timeout_s`` 0).

        Concurrent callers for one zone share one fetch, counted and timed once; the fetch is
        never cancelled by a caller's timeout, so it completes for the next Job."""
        if timeout_s <= 0 or zone in self._fresh:
            return None
        self.want(zone)
        task = self._on_demand.get(zone)
        if task is None:
            task = asyncio.ensure_future(self._fetch_on_demand(zone, timeout_s))
            self._on_demand[zone] = task
            task.add_done_callback(lambda done: self._forget(self._on_demand, zone, done))
        return await asyncio.shield(task)

    async def _fetch_on_demand(self, zone: str, timeout_s: float) -> OnDemandFetch:
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(self._shared_refresh(zone)), timeout_s)
        except TimeoutError:
            result = FetchResult.TIMEOUT
        else:
            held = self._source.snapshot(zone, self._clock()).series is not None
            result = FetchResult.OK if held else FetchResult.FAILED
        waited_s = time.monotonic() - started
        self._metrics.on_demand_fetches.labels(zone=zone, result=result.value).inc()
        self._metrics.on_demand_fetch_seconds.observe(waited_s)
        log.info("on-demand forecast fetch zone=%s result=%s waited_s=%.3f", zone, result, waited_s)
        return OnDemandFetch(zone, result, waited_s)

    def _shared_refresh(self, zone: str) -> asyncio.Task[None]:
        """The refresh of ``zone`` in flight, or a new one."""
        task = self._inflight.get(zone)
        if task is None:
            task = asyncio.ensure_future(self._refresh_zone(zone))
            self._inflight[zone] = task
            task.add_done_callback(lambda done: self._forget(self._inflight, zone, done))
        return task

    @staticmethod
    def _forget(tasks: dict[str, asyncio.Task[_T]], zone: str, task: asyncio.Task[_T]) -> None:
        if tasks.get(zone) is task:
            del tasks[zone]
        if not task.cancelled():
            task.exception()  # retrieved, so a failure is never reported as lost

    async def refresh_once(self, zones: Iterable[str]) -> None:
        for zone in zones:
            await asyncio.shield(self._shared_refresh(zone))

    async def _refresh_zone(self, zone: str) -> None:
        """Refresh one zone, recording the outcome (never raises but for cancellation)."""
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
                log.warning("zone %s: using %s forecast: %s", zone, result.source, result.reason)
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
        """Refresh forever (cancel to stop: refreshes in flight are cancelled with it)."""
        try:
            await self._run()
        finally:
            for task in [*self._on_demand.values(), *self._inflight.values()]:
                task.cancel()

    async def _run(self) -> None:
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

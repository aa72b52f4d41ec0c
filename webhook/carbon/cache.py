"""Per-zone caching in front of providers: TTL, stale-while-error, coalesced fetches.

``AsyncTtlCache.get(key, fetch)`` returns a fresh entry without I/O; otherwise it runs ``fetch``
once for all concurrent callers of the same key (an asyncio task shared by them, shielded so a
cancelled caller does not cancel the others). When the fetch fails with a ``ProviderError`` and
an older entry is no older than ``max_staleness_s``, that entry is served, marked stale, with
the error beside it; older than that, the error propagates. ``peek`` reads an entry without
I/O, for the admission path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from webhook.carbon.base import IntensityData, Provider, ProviderError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CacheSettings(BaseModel):
    """How long provider answers are reused, and how stale they may get during an outage."""

    model_config = ConfigDict(frozen=True)

    ttl_s: float = Field(
        900.0, gt=0, description="An answer younger than this is served without asking again."
    )
    max_staleness_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="While the provider fails, answers up to this old are still served "
        "(marked stale); older ones are dropped in favour of the history forecaster.",
    )

    @model_validator(mode="after")
    def _staleness_covers_ttl(self) -> CacheSettings:
        if self.max_staleness_s < self.ttl_s:
            raise ValueError(
                f"max_staleness_s ({self.max_staleness_s:g}) must be at least ttl_s "
                f"({self.ttl_s:g})"
            )
        return self


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A cached value, when it was stored, and whether it is served stale after an error."""

    value: T
    stored_at: float
    stale: bool = False
    error: ProviderError | None = None


class AsyncTtlCache(Generic[T]):
    """A keyed cache with TTL, stale-while-error and coalesced concurrent fetches."""

    def __init__(self, settings: CacheSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._entries: dict[Hashable, Cached[T]] = {}
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}

    def peek(self, key: Hashable) -> Cached[T] | None:
        """The stored entry, however old, without I/O."""
        return self._entries.get(key)

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> Cached[T]:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.stored_at < self._settings.ttl_s:
            return entry
        try:
            value = await self._coalesced(key, fetch)
        except ProviderError as error:
            now = self._clock()
            if entry is not None and now - entry.stored_at <= self._settings.max_staleness_s:
                logger.warning(
                    "serving %.0f s old cached answer for %s: %s",
                    now - entry.stored_at,
                    key,
                    error,
                )
                return Cached(entry.value, entry.stored_at, stale=True, error=error)
            raise
        return self._entries[key] if key in self._entries else Cached(value, self._clock())

    async def _coalesced(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_store(key, fetch))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    async def _fetch_and_store(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        value = await fetch()
        self._entries[key] = Cached(value, self._clock())
        return value

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is never reported as lost


class CachedProvider:
    """A ``Provider`` whose ``latest`` and ``forecast`` go through per-zone caches;
    ``history`` windows differ per call and are fetched directly."""

    def __init__(
        self,
        inner: Provider,
        settings: CacheSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._latest: AsyncTtlCache[IntensityData] = AsyncTtlCache(settings, clock=clock)
        self._forecast: AsyncTtlCache[IntensityData] = AsyncTtlCache(settings, clock=clock)

    @property
    def name(self) -> str:
        return self._inner.name

    async def latest(self, zone: str) -> IntensityData:
        return (await self._latest.get(zone, lambda: self._inner.latest(zone))).value

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        key = (zone, horizon_s)
        return (await self._forecast.get(key, lambda: self._inner.forecast(zone, horizon_s))).value

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        return await self._inner.history(zone, start, end)

    async def aclose(self) -> None:
        await self._inner.aclose()

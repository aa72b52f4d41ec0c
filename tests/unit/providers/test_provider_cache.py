"""Per-zone cache: TTL, stale-while-error up to the staleness limit, coalesced fetches."""

from __future__ import annotations

import asyncio

import pytest
from provider_fakes import FakeClock, ScriptedApi, fixture, reply
from pydantic import SecretStr, ValidationError

from webhook.carbon.base import ProviderError, UnavailableError
from webhook.carbon.cache import AsyncTtlCache, CachedProvider, CacheSettings
from webhook.carbon.electricitymaps import ElectricityMapsProvider, ElectricityMapsSettings
from webhook.carbon.http import HttpSettings

SETTINGS = CacheSettings(ttl_s=60, max_staleness_s=600)


class Fetcher:
    """Answers "v1", "v2", ... or raises while ``failing``; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def __call__(self) -> str:
        self.calls += 1
        if self.failing:
            raise UnavailableError("acme", "down", zone="DE")
        return f"v{self.calls}"


async def test_a_fresh_entry_is_served_without_fetching() -> None:
    clock, fetch = FakeClock(), Fetcher()
    cache: AsyncTtlCache[str] = AsyncTtlCache(SETTINGS, clock=clock)
    assert (await cache.get("DE", fetch)).value == "v1"
    clock.advance(59)
    assert (await cache.get("DE", fetch)).value == "v1"
    assert fetch.calls == 1
    clock.advance(1)
    assert (await cache.get("DE", fetch)).value == "v2"


async def test_a_failed_refresh_serves_the_stale_entry_with_the_error() -> None:
    clock, fetch = FakeClock(), Fetcher()
    cache: AsyncTtlCache[str] = AsyncTtlCache(SETTINGS, clock=clock)
    await cache.get("DE", fetch)
    fetch.failing = True
    clock.advance(600)
    served = await cache.get("DE", fetch)
    assert (served.value, served.stale) == ("v1", True)
    assert isinstance(served.error, UnavailableError)


async def test_beyond_the_staleness_limit_the_error_propagates() -> None:
    clock, fetch = FakeClock(), Fetcher()
    cache: AsyncTtlCache[str] = AsyncTtlCache(SETTINGS, clock=clock)
    await cache.get("DE", fetch)
    fetch.failing = True
    clock.advance(601)
    with pytest.raises(UnavailableError):
        await cache.get("DE", fetch)
    assert cache.peek("DE") is not None  # kept for inspection; never served again as data


async def test_concurrent_requests_for_one_zone_share_one_fetch() -> None:
    release = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "shared"

    cache: AsyncTtlCache[str] = AsyncTtlCache(SETTINGS, clock=FakeClock())
    waiters = [asyncio.ensure_future(cache.get("DE", slow)) for _ in range(5)]
    other = asyncio.ensure_future(cache.get("FR", slow))
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, other)
    assert [r.value for r in results] == ["shared"] * 6
    assert calls == 2  # one per zone


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "done"

    cache: AsyncTtlCache[str] = AsyncTtlCache(SETTINGS, clock=FakeClock())
    first = asyncio.ensure_future(cache.get("DE", slow))
    second = asyncio.ensure_future(cache.get("DE", slow))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert (await second).value == "done"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_shared_failure_reaches_every_waiter() -> None:
    async def failing() -> str:
        await asyncio.sleep(0)
        raise ProviderError("acme", "boom")

    cache: AsyncTtlCache[str] = AsyncTtlCache(SETTINGS, clock=FakeClock())
    results = await asyncio.gather(
        cache.get("DE", failing), cache.get("DE", failing), return_exceptions=True
    )
    assert all(isinstance(r, ProviderError) for r in results)


def test_staleness_limit_below_the_ttl_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_staleness_s"):
        CacheSettings(ttl_s=600, max_staleness_s=60)


async def test_cached_provider_reuses_and_then_serves_stale_latest_values() -> None:
    clock = FakeClock()
    api = ScriptedApi(
        {
            "/latest": [
                reply(fixture("electricitymaps_v3_latest_FR.json")),
                reply({"message": "down"}, 503),
            ]
        }
    )
    inner = ElectricityMapsProvider(
        ElectricityMapsSettings(api_key=SecretStr("k"), base_url="https://em.test/v3"),
        HttpSettings(max_attempts=1),
        transport=api.transport,
        clock=clock,
    )
    cached = CachedProvider(inner, SETTINGS, clock=clock)
    first = await cached.latest("FR")
    assert await cached.latest("FR") is first
    assert len(api.requests) == 1
    clock.advance(SETTINGS.ttl_s)
    assert await cached.latest("FR") is first  # refresh failed: served stale
    assert len(api.requests) == 2
    clock.advance(SETTINGS.max_staleness_s)
    with pytest.raises(UnavailableError):
        await cached.latest("FR")
    await cached.aclose()

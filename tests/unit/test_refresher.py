from __future__ import annotations

import asyncio

import pytest

from webhook.carbon.refresher import Refresher, WarmForecasts
from webhook.core.forecast import ForecastResult
from webhook.core.series import StepSeries
from webhook.telemetry.metrics import Metrics


class RecordingSource:
    """A forecast source that records refreshes; refreshing ``broken`` zones fails."""

    def __init__(
        self, broken: frozenset[str] = frozenset(), stale: frozenset[str] = frozenset()
    ) -> None:
        self.broken = broken
        self.stale = stale
        self.refreshed: list[str] = []
        self.snapshots = 0
        self.changed = asyncio.Event()

    async def refresh(self, zone: str) -> object:
        self.refreshed.append(zone)
        self.changed.set()
        if zone in self.broken:
            raise RuntimeError(f"provider down for {zone}")
        return None

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        self.snapshots += 1
        series = StepSeries.regular(0, 3600, [100.0])
        if zone in self.stale:
            return ForecastResult(zone, "test", "stale-cache", series, 42.0, False, "401")
        return ForecastResult(zone, "test", "provider", series, 42.0, False, None)


async def _until(condition: object, source: RecordingSource) -> None:
    while not condition():  # type: ignore[operator]
        source.changed.clear()
        await source.changed.wait()


async def test_the_first_round_refreshes_every_zone_and_counts_failures() -> None:
    source = RecordingSource(broken=frozenset({"GB"}), stale=frozenset({"FR"}))
    metrics = Metrics()
    refresher = Refresher(source, ["DE", "GB", "FR"], interval_s=3600, metrics=metrics)
    task = asyncio.create_task(refresher.run())
    await asyncio.wait_for(refresher.first_round.wait(), 5)
    task.cancel()
    assert source.refreshed == ["DE", "GB", "FR"]
    errors = {
        zone: metrics.registry.get_sample_value("greenlight_provider_errors_total", {"zone": zone})
        for zone in ("DE", "GB", "FR")
    }
    assert errors == {"DE": 0, "GB": 1, "FR": 1}  # DE exported at 0, never failed
    assert (
        metrics.registry.get_sample_value("greenlight_forecast_age_seconds", {"zone": "DE"}) == 42
    )


async def test_a_zone_met_at_admission_is_refreshed_at_once() -> None:
    source = RecordingSource()
    refresher = Refresher(source, ["DE"], interval_s=3600, metrics=Metrics())
    task = asyncio.create_task(refresher.run())
    await asyncio.wait_for(refresher.first_round.wait(), 5)
    refresher.want("FR")
    refresher.want("DE")
    await asyncio.wait_for(_until(lambda: "FR" in source.refreshed, source), 5)
    task.cancel()
    assert source.refreshed == ["DE", "FR"]
    assert refresher.zones == ("DE", "FR")


async def test_snapshots_are_memoised_until_the_zone_is_refreshed() -> None:
    source = RecordingSource()
    warm = WarmForecasts(source, memo_s=10)
    first = warm.snapshot("DE", 1000.0)
    assert warm.snapshot("DE", 1005.0) is first
    assert source.snapshots == 1
    await warm.refresh("DE")
    warm.snapshot("DE", 1006.0)
    warm.snapshot("DE", 1020.0)
    assert source.snapshots == 3


@pytest.mark.parametrize(
    "later_s", [pytest.param(10.0, id="memo-expired"), pytest.param(-1.0, id="clock-went-back")]
)
def test_an_old_or_future_memo_is_not_used(later_s: float) -> None:
    source = RecordingSource()
    warm = WarmForecasts(source, memo_s=10)
    warm.snapshot("DE", 1000.0)
    warm.snapshot("DE", 1000.0 + later_s)
    assert source.snapshots == 2


class ShapedSource(RecordingSource):
    """A zone whose forecast climbs 10 g/kWh an hour from 100 at t=0, for 10 hours."""

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        series = StepSeries.regular(0, 3600, [100.0 + 10 * h for h in range(10)])
        return ForecastResult(zone, "test", "provider", series, 0.0, False, None)


async def test_intensity_now_and_ahead_is_exported_per_zone() -> None:
    metrics = Metrics()
    refresher = Refresher(
        ShapedSource(), ["DE"], interval_s=3600, metrics=metrics, clock=lambda: 1800.0
    )
    await refresher.refresh_once(["DE"])

    def sample(ahead: str) -> float | None:
        return metrics.registry.get_sample_value(
            "greenlight_intensity_g_per_kwh", {"zone": "DE", "ahead": ahead}
        )

    assert sample("0h") == 100.0
    assert sample("1h") == 110.0
    assert sample("6h") == 160.0
    # Beyond the forecast's end nothing is claimed.
    assert sample("12h") is None

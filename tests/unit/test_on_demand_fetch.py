"""The first Job in a zone not fetched yet waits (within a timeout) for that zone's forecast."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from reviews import body, job, review

from webhook.admission.mutate import Admission, MutationContext
from webhook.admission.review import AdmissionRequest, apply_patch, decode_review
from webhook.carbon.refresher import FetchResult, Refreshable, Refresher, WarmForecasts
from webhook.carbon.registry import build_forecast_source
from webhook.config.settings import Settings
from webhook.core import annotations as keys
from webhook.core.annotations import Inputs
from webhook.core.energy import load_catalog
from webhook.core.forecast import ForecastResult
from webhook.core.series import StepSeries
from webhook.telemetry.metrics import Metrics

HOUR = 3600
GENEROUS_S = 60.0  # a fetch that must finish: far above any busy machine's fetch time


class GatedSource:
    """A provider that answers only when the test opens its gate (or fails then)."""

    def __init__(self, *, fails: bool = False) -> None:
        self.fails = fails
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.refreshes: list[str] = []
        self.fetched: set[str] = set()

    async def refresh(self, zone: str) -> object:
        self.refreshes.append(zone)
        self.started.set()
        try:
            await self.gate.wait()
            if self.fails:
                raise RuntimeError(f"provider down for {zone}")
            self.fetched.add(zone)
            return None
        finally:
            self.finished.set()

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        if zone not in self.fetched:
            reason = "provider down" if self.fails else "no gated forecast fetched yet"
            return ForecastResult(zone, "gated", "none", None, None, True, reason)
        # 400 g/kWh now, 100 g/kWh from +6 h to +10 h: worth waiting for.
        start = int(time.time()) // HOUR * HOUR
        values = [100.0 if 6 <= h < 10 else 400.0 for h in range(48)]
        series = StepSeries.regular(start, HOUR, values)
        return ForecastResult(zone, "gated", "provider", series, 60.0, False, None)


def _admission(source: Refreshable, timeout_s: float) -> tuple[Admission, Refresher, Metrics]:
    settings = Settings()
    metrics = Metrics()
    forecasts = WarmForecasts(source)
    refresher = Refresher(forecasts, ["DE"], interval_s=600, metrics=metrics)
    context = MutationContext(
        settings=settings,
        catalog=load_catalog(settings.energy),
        prices=None,
        forecasts=forecasts,
        namespace_defaults=lambda namespace: Inputs(),
        want_zone=refresher.want,
        fetch_zone=functools.partial(refresher.fetch_now, timeout_s=timeout_s),
    )
    return Admission(context, metrics), refresher, metrics


def _request(zone: str, name: str = "train") -> AdmissionRequest:
    return decode_review(body(review(job(name, annotations={keys.ZONE: zone}))))


def _annotations(request: AdmissionRequest, response: Any) -> dict[str, str]:
    stored = apply_patch(request.object, response.patch)
    annotations: dict[str, str] = stored["metadata"]["annotations"]
    return annotations


def _fetches(metrics: Metrics, zone: str, result: FetchResult) -> float | None:
    return metrics.registry.get_sample_value(
        "greenlight_on_demand_fetches_total", {"zone": zone, "result": result.value}
    )


def _fetch_times(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("greenlight_on_demand_fetch_seconds_count")


async def test_the_first_job_in_a_new_zone_is_planned_on_the_replay_forecast_fetched_for_it() -> (
    None
):
    admission, _, metrics = _admission(build_forecast_source(Settings().providers), GENEROUS_S)
    request = _request("GB")
    before = _annotations(request, admission.mutate(request))
    assert before[keys.REASON_CODE] == "no-forecast"  # what a Job got without waiting
    assert "no replay forecast fetched yet" in before[keys.REASON]

    annotations = _annotations(request, await admission.admit(request))
    assert annotations[keys.REASON_CODE] != "no-forecast", annotations[keys.REASON]
    assert (annotations[keys.PROVIDER], annotations[keys.FORECAST_SOURCE]) == ("replay", "provider")
    assert annotations[keys.PLANNED_ZONE] == "GB"
    assert _fetches(metrics, "GB", FetchResult.OK) == 1
    assert _fetch_times(metrics) == 1


async def test_concurrent_jobs_in_a_new_zone_share_one_fetch() -> None:
    source = GatedSource()
    admission, _, metrics = _admission(source, GENEROUS_S)
    requests = [_request("FR", f"train-{i}") for i in range(3)]
    waiting = [asyncio.ensure_future(admission.admit(r)) for r in requests]
    await source.started.wait()
    source.gate.set()
    responses = await asyncio.gather(*waiting)
    decisions = {
        _annotations(r, a)[keys.DECISION] for r, a in zip(requests, responses, strict=True)
    }
    assert decisions == {"deferred"}
    assert source.refreshes == ["FR"]
    assert _fetches(metrics, "FR", FetchResult.OK) == 1
    assert _fetch_times(metrics) == 1


async def test_a_slow_fetch_runs_the_job_now_saying_so_and_serves_the_next_job() -> None:
    source = GatedSource()  # the gate stays shut past the timeout
    admission, refresher, metrics = _admission(source, timeout_s=0.01)
    request = _request("FR")
    annotations = _annotations(request, await admission.admit(request))
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == ("run-now", "no-forecast")
    assert (
        "no gated forecast fetched yet; on-demand fetch timed out after"
        in (annotations[keys.REASON])
    )
    assert _fetches(metrics, "FR", FetchResult.TIMEOUT) == 1

    source.gate.set()  # the fetch was not cancelled by the timeout: it completes behind
    await source.finished.wait()
    await asyncio.wait_for(_until_fetched(refresher, "FR"), GENEROUS_S)
    later = _request("FR", "train-later")
    assert _annotations(later, await admission.admit(later))[keys.DECISION] == "deferred"
    assert source.refreshes == ["FR"]
    assert _fetch_times(metrics) == 1  # the later Job found the zone fetched: no wait


async def _until_fetched(refresher: Refresher, zone: str) -> None:
    while not refresher.fetched(zone):
        await asyncio.sleep(0)  # a scheduling yield: the refresh task records its outcome


async def test_a_failed_fetch_runs_the_job_now_with_the_providers_reason() -> None:
    source = GatedSource(fails=True)
    source.gate.set()
    admission, _, metrics = _admission(source, GENEROUS_S)
    request = _request("FR")
    annotations = _annotations(request, await admission.admit(request))
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == ("run-now", "no-forecast")
    assert "provider down; on-demand fetch found no data" in annotations[keys.REASON]
    assert _fetches(metrics, "FR", FetchResult.FAILED) == 1
    assert (
        metrics.registry.get_sample_value("greenlight_provider_errors_total", {"zone": "FR"}) == 1
    )


async def test_a_zone_fetched_already_is_never_waited_for_again() -> None:
    source = GatedSource(fails=True)
    source.gate.set()
    admission, refresher, metrics = _admission(source, GENEROUS_S)
    await refresher.refresh_once(["FR"])  # fetched (and failed) by the background loop
    request = _request("FR")
    annotations = _annotations(request, await admission.admit(request))
    assert annotations[keys.REASON] == "no forecast for zone FR: provider down"
    assert source.refreshes == ["FR"]
    assert _fetch_times(metrics) == 0


async def test_a_timeout_of_zero_never_waits() -> None:
    source = GatedSource()
    admission, _, metrics = _admission(source, timeout_s=0)
    request = _request("FR")
    annotations = _annotations(request, await admission.admit(request))
    assert annotations[keys.REASON] == "no forecast for zone FR: no gated forecast fetched yet"
    assert source.refreshes == []
    assert _fetches(metrics, "FR", FetchResult.TIMEOUT) == 0


async def test_concurrent_fetch_waits_and_the_background_loop_share_one_refresh() -> None:
    source = GatedSource()
    _, refresher, _ = _admission(source, GENEROUS_S)
    waiting = asyncio.ensure_future(refresher.fetch_now("FR", GENEROUS_S))
    await source.started.wait()
    background = asyncio.ensure_future(refresher.refresh_once(["FR"]))
    source.gate.set()
    fetched = await waiting
    await background
    assert fetched is not None
    assert fetched.result == FetchResult.OK
    assert source.refreshes == ["FR"]

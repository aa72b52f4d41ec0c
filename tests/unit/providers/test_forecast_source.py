"""The forecast chain: provider -> stale cache -> history forecaster -> none, with reasons."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, fixture, reply
from pydantic import SecretStr

from webhook.carbon.base import IntensityData, ProviderError
from webhook.carbon.cache import Cached, CacheSettings
from webhook.carbon.electricitymaps import ElectricityMapsProvider, ElectricityMapsSettings
from webhook.carbon.http import HttpSettings
from webhook.carbon.source import (
    ForecastSettings,
    ForecastSource,
    choose_forecast,
    merge_observed,
)
from webhook.core.forecast import SourceKind, skilled_history_forecast
from webhook.core.series import StepSeries, from_epoch

HOUR = 3600
CACHE = CacheSettings(ttl_s=900, max_staleness_s=6 * HOUR)
HOUR_NOW = NOW // HOUR * HOUR


def forecast_data(start: int = HOUR_NOW, hours: int = 24) -> IntensityData:
    series = StepSeries.regular(start, HOUR, [300.0 + i for i in range(hours)])
    return IntensityData(
        "DE", "acme", "forecast", series, fetched_at=start, estimated=True, issued_at=start - 600
    )


OBSERVED = StepSeries.regular(HOUR_NOW - 48 * HOUR, HOUR, [250.0] * 49)
HISTORY_MARK = StepSeries.regular(HOUR_NOW, HOUR, [111.0])


def choose(
    *,
    stored_age_s: float | None,
    actuals: StepSeries | None = OBSERVED,
    error: str | None = None,
    forecast: IntensityData | None = None,
) -> Any:
    cached = None
    if stored_age_s is not None:
        cached = Cached(forecast or forecast_data(), stored_at=NOW - stored_age_s)
    return choose_forecast(
        zone="DE",
        provider="acme",
        now=NOW,
        forecast=cached,
        actuals=actuals,
        error=error,
        horizon_s=24 * HOUR,
        cache=CACHE,
        forecaster=lambda history, now, horizon: (HISTORY_MARK, None),
        corrector=lambda series, actuals, now: (
            StepSeries(series.times, series.values + 1, series.end),
            None,
        ),
    )


@pytest.mark.parametrize(
    ("stored_age_s", "actuals", "error", "source", "reason"),
    [
        pytest.param(0, OBSERVED, None, "provider", None, id="fresh"),
        pytest.param(899, None, None, "provider", None, id="fresh-uncorrected"),
        pytest.param(900, OBSERVED, "acme: down", "stale-cache", "acme: down", id="stale"),
        pytest.param(
            900, OBSERVED, None, "stale-cache", "forecast is 900 s old", id="stale-no-error"
        ),
        pytest.param(
            6 * HOUR, OBSERVED, "acme: down", "stale-cache", "acme: down", id="at-staleness-limit"
        ),
        pytest.param(
            6 * HOUR + 1,
            OBSERVED,
            "acme: down",
            "history",
            "beyond the 21600 s staleness limit",
            id="beyond-staleness",
        ),
        pytest.param(
            None,
            OBSERVED,
            "acme: 401 forecast",
            "history",
            "acme: 401 forecast",
            id="never-fetched",
        ),
        pytest.param(
            None,
            OBSERVED,
            None,
            "history",
            "no acme forecast fetched yet",
            id="never-refreshed-with-history",
        ),
        pytest.param(None, None, "acme: down", "none", "no observed history", id="nothing"),
        pytest.param(7 * HOUR, None, "acme: down", "none", "staleness limit", id="expired-only"),
    ],
)
def test_the_chain_picks_the_best_source_and_records_why(
    stored_age_s: float | None,
    actuals: StepSeries | None,
    error: str | None,
    source: SourceKind,
    reason: str | None,
) -> None:
    result = choose(stored_age_s=stored_age_s, actuals=actuals, error=error)
    assert result.source == source
    if reason is None:
        assert result.reason is None
    else:
        assert reason in (result.reason or "")
    assert result.has_data == (source != "none")


def test_provider_forecasts_are_corrected_when_observations_exist() -> None:
    corrected = choose(stored_age_s=0)
    assert corrected.series.values[0] == 301.0
    raw = choose(stored_age_s=0, actuals=None)
    assert raw.series.values[0] == 300.0


def test_history_results_are_estimated_and_aged_by_the_last_observation() -> None:
    result = choose(stored_age_s=None)
    assert result.series is HISTORY_MARK
    assert result.estimated is True
    assert result.age_s == NOW - float(OBSERVED.times[-1])


def test_a_forecast_that_ended_before_now_is_not_used() -> None:
    old = forecast_data(start=HOUR_NOW - 30 * HOUR, hours=24)
    result = choose(stored_age_s=0, forecast=old)
    assert result.source == "history"
    assert "ended before now" in (result.reason or "")


def test_merge_observed_prefers_new_values_and_drops_old_steps() -> None:
    old = StepSeries.regular(0, HOUR, [1.0, 2.0, 3.0])
    new = StepSeries.regular(2 * HOUR, HOUR, [30.0, 40.0])
    merged = merge_observed(old, new, keep_from=HOUR + 10)
    assert merged.times.tolist() == [HOUR, 2 * HOUR, 3 * HOUR]
    assert merged.values.tolist() == [2.0, 30.0, 40.0]
    assert merged.end == 4 * HOUR


# --- ForecastSource over Electricity Maps at the HTTP edge -----------------------------------


def em_point(epoch_s: int, value: float) -> dict[str, Any]:
    stamp = from_epoch(epoch_s).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"zone": "DE", "carbonIntensity": value, "datetime": stamp}


def em_api(forecast: list[Any]) -> ScriptedApi:
    history = {
        "zone": "DE",
        "history": [em_point(HOUR_NOW - h * HOUR, 200 + h) for h in range(24, 0, -1)],
    }
    latest = {**em_point(HOUR_NOW, 210), "isEstimated": False}
    return ScriptedApi(
        {
            "/carbon-intensity/forecast": forecast,
            "/carbon-intensity/history": [reply(history)],
            "/carbon-intensity/past-range": [
                reply(fixture("electricitymaps_401_unauthorized_endpoint_for_zone.json"), 401)
            ],
            "/carbon-intensity/latest": [reply(latest)],
        }
    )


def source(api: ScriptedApi, clock: FakeClock) -> ForecastSource:
    provider = ElectricityMapsProvider(
        ElectricityMapsSettings(api_key=SecretStr("k"), base_url="https://em.test/v3"),
        HttpSettings(max_attempts=1),
        transport=api.transport,
        sleep=RecordingSleep(),
        clock=clock,
    )
    return ForecastSource(provider, cache=CACHE, settings=ForecastSettings(), clock=clock)


def good_forecast() -> Any:
    return reply(
        {"zone": "DE", "forecast": [em_point(HOUR_NOW + h * HOUR, 300 + h) for h in range(25)]}
    )


async def test_a_free_plan_401_on_forecast_falls_back_to_the_history_forecaster() -> None:
    clock = FakeClock()
    body = fixture("electricitymaps_401_unauthorized_endpoint_for_zone.json")
    forecasts = source(em_api([reply(body, 401)]), clock)
    with pytest.raises(
        ProviderError, match="carbon-intensity/forecast for zone DE: not authorized"
    ):
        await forecasts.refresh("DE")
    result = forecasts.snapshot("DE")
    assert result.source == "history"
    assert "carbon-intensity/forecast" in (result.reason or "")
    assert result.series is not None
    assert result.series.covers(HOUR_NOW, NOW + 24 * HOUR)
    assert np.all((result.series.values > 100) & (result.series.values < 400))


async def test_the_history_fallback_is_the_simulators_skill_aware_forecast() -> None:
    clock = FakeClock()
    body = fixture("electricitymaps_401_unauthorized_endpoint_for_zone.json")
    forecasts = source(em_api([reply(body, 401)]), clock)
    with pytest.raises(ProviderError):
        await forecasts.refresh("DE")
    result = forecasts.snapshot("DE")
    observed = forecasts._states["DE"].actuals
    assert result.source == "history"
    assert observed is not None
    assert result.series is not None
    expected = skilled_history_forecast(observed, int(clock()), 24 * HOUR)
    assert np.array_equal(result.series.times, expected.series.times)
    assert np.allclose(result.series.values, expected.series.values)
    assert result.uncertainty == expected.uncertainty
    assert result.uncertainty is not None
    assert result.uncertainty.from_history  # the planner's wider history margin


async def test_an_outage_of_any_length_degrades_stale_then_history_then_never_blocks() -> None:
    clock = FakeClock()
    api = em_api([good_forecast(), reply({"message": "maintenance"}, 503)])
    forecasts = source(api, clock)
    await forecasts.refresh("DE")
    assert forecasts.snapshot("DE").source == "provider"

    clock.advance(CACHE.ttl_s + 1)
    with pytest.raises(ProviderError, match="HTTP 503"):
        await forecasts.refresh("DE")
    stale = forecasts.snapshot("DE")
    assert (stale.source, "HTTP 503" in (stale.reason or "")) == ("stale-cache", True)

    clock.advance(CACHE.max_staleness_s)
    with pytest.raises(ProviderError):
        await forecasts.refresh("DE")
    later = forecasts.snapshot("DE")
    assert later.source == "history"
    assert "HTTP 503" in (later.reason or "")
    assert later.series is not None
    assert later.series.end > clock.now


async def test_a_provider_down_from_the_start_gives_no_data_with_the_reason() -> None:
    clock = FakeClock()
    down = reply({"message": "down"}, 503)
    api = ScriptedApi({"": [down]})
    forecasts = source(api, clock)
    assert forecasts.snapshot("DE").source == "none"
    with pytest.raises(ProviderError):
        await forecasts.refresh("DE")
    result = forecasts.snapshot("DE")
    assert (result.source, result.series) == ("none", None)
    assert "HTTP 503" in (result.reason or "")
    assert forecasts.age_s("DE", clock.now) is None


async def test_a_fresh_forecast_is_not_fetched_again_and_refreshes_coalesce() -> None:
    clock = FakeClock()
    api = em_api([good_forecast()])
    forecasts = source(api, clock)
    await asyncio.gather(forecasts.refresh("DE"), forecasts.refresh("DE"))
    await forecasts.refresh("DE")
    assert len(api.calls("/forecast")) == 1
    assert len(api.calls("/history")) == 1  # seeded once (past-range refused, then 24 h)
    assert len(api.calls("/past-range")) == 1
    assert forecasts.age_s("DE", clock.now + 60) == 60  # fetched now; no issue time given
    assert forecasts.zones == ["DE"]


def test_forecasts_issued_earlier_let_the_correction_measure_the_providers_error() -> None:
    """The provider said 300 for hours that turned out 250: its recent error becomes the
    uncertainty the planner needs a saving to beat; without that record it stays unknown."""
    issued_before = StepSeries.regular(HOUR_NOW - 48 * HOUR, HOUR, [300.0] * 48)
    common: dict[str, Any] = {
        "zone": "DE",
        "provider": "acme",
        "now": NOW,
        "forecast": Cached(forecast_data(), stored_at=NOW),
        "actuals": OBSERVED,
        "error": None,
        "horizon_s": 24 * HOUR,
        "cache": CACHE,
    }
    measured = choose_forecast(**common, issued=issued_before)
    unknown = choose_forecast(**common)
    assert measured.uncertainty is not None
    assert measured.uncertainty.error_pct == pytest.approx(20.0)  # |250 - 300| / 250
    assert not measured.uncertainty.from_history
    assert unknown.uncertainty is None
    # The correction moves the next hour toward what was observed (250), not the raw 301.
    assert measured.series is not None
    assert measured.series.value_at(HOUR_NOW + HOUR) < 301.0


async def test_the_correction_is_computed_once_per_zone_data_and_hour() -> None:
    """Admission requests reuse the correction until the data changes or the hour turns."""
    clock = FakeClock()
    provider = ElectricityMapsProvider(
        ElectricityMapsSettings(api_key=SecretStr("k"), base_url="https://em.test/v3"),
        HttpSettings(max_attempts=1),
        transport=em_api([good_forecast()]).transport,
        sleep=RecordingSleep(),
        clock=clock,
    )
    calls: list[int] = []

    def counting(series: StepSeries, actuals: StepSeries, now: int) -> Any:
        calls.append(now)
        return series, None

    forecasts = ForecastSource(
        provider, cache=CACHE, settings=ForecastSettings(), clock=clock, corrector=counting
    )
    await forecasts.refresh("DE")
    first = forecasts.snapshot("DE")
    assert forecasts.snapshot("DE", clock.now + 5).series is first.series
    assert len(calls) == 1
    next_hour = (int(clock.now) // HOUR + 1) * HOUR
    forecasts.snapshot("DE", next_hour + 1)
    assert len(calls) == 2

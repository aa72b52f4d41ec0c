"""Carbon Aware SDK WebAPI: forecasts/current and bylocations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, fixture, reply

from webhook.carbon.base import (
    BadResponseError,
    ProviderError,
    UnknownZoneError,
    ZoneMismatchError,
)
from webhook.carbon.carbonaware import (
    CarbonAwareProvider,
    CarbonAwareSettings,
    parse_duration_s,
)
from webhook.carbon.http import HttpSettings


def provider(api: ScriptedApi) -> CarbonAwareProvider:
    return CarbonAwareProvider(
        CarbonAwareSettings(base_url="http://sdk.test"),
        HttpSettings(max_attempts=1),
        transport=api.transport,
        sleep=RecordingSleep(),
        clock=FakeClock(),
    )


def emissions(location: str = "eastus", **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "location": location,
            "time": "2023-11-14T21:00:00+00:00",
            "rating": 300.5,
            "duration": "01:00:00",
            **extra,
        },
        {
            "location": location,
            "time": "2023-11-14T22:00:00+00:00",
            "rating": 320.0,
            "duration": "01:00:00",
            **extra,
        },
    ]


async def test_forecast_parses_the_documented_answer() -> None:
    body = fixture("casdk_emissions_forecasts_current_docs.json")
    api = ScriptedApi({"/emissions/forecasts/current": [reply(body)]})
    data = await provider(api).forecast("northeurope", 6 * 3600)
    params = api.requests[0].url.params
    assert params["location"] == "northeurope"
    assert params["dataStartAt"] == "2023-11-14T22:13:20Z"
    assert params["dataEndAt"] == "2023-11-15T04:13:20Z"
    assert data.series.values.tolist() == [532.02293146, 535.7318741001667]
    assert data.series.end - int(data.series.times[-1]) == 600  # duration 10 minutes
    assert data.issued_at == 1658237700  # generatedAt 2022-07-19T13:35Z


async def test_history_and_latest_come_from_bylocations() -> None:
    api = ScriptedApi({"/emissions/bylocations": [reply(emissions())]})
    sdk = provider(api)
    history = await sdk.history("eastus", NOW - 7200, NOW)
    assert history.series.values.tolist() == [300.5, 320.0]
    assert history.series.step_s == 3600
    latest = await sdk.latest("eastus")
    assert latest.series.values.tolist() == [320.0]
    assert api.requests[-1].url.params["toTime"] == "2023-11-14T22:13:20Z"


async def test_the_documented_best_answer_without_duration_is_accepted() -> None:
    body = fixture("casdk_emissions_bylocations_best_docs.json")
    api = ScriptedApi({"/emissions/bylocations": [reply(body)]})
    data = await provider(api).history("eastus", NOW - 7200, NOW)
    assert data.series.values.tolist() == [70]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(
            reply(emissions("westus")), ZoneMismatchError, "'westus'", id="location-mismatch"
        ),
        pytest.param(reply([]), BadResponseError, "empty data", id="empty"),
        pytest.param(reply(emissions(rating=2500)), BadResponseError, "absurd", id="absurd"),
        pytest.param(
            reply(emissions(duration="soon")), BadResponseError, "duration", id="bad-duration"
        ),
        pytest.param(
            reply({"title": "location not found"}, 400),
            UnknownZoneError,
            "location not found",
            id="unknown-location",
        ),
    ],
)
async def test_bad_answers_are_typed_errors(
    answer: httpx.Response, error: type[ProviderError], message: str
) -> None:
    api = ScriptedApi({"/emissions/bylocations": [answer]})
    with pytest.raises(error, match=message):
        await provider(api).history("eastus", NOW - 7200, NOW)


async def test_a_forecast_for_another_location_is_a_zone_mismatch() -> None:
    body = fixture("casdk_emissions_forecasts_current_docs.json")
    api = ScriptedApi({"/emissions/forecasts/current": [reply(body)]})
    with pytest.raises(ZoneMismatchError, match="'northeurope', not the requested 'westeurope'"):
        await provider(api).forecast("westeurope", 3600)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (10, 600),
        (0.5, 30),
        ("00:05:00", 300),
        ("1.02:00:00", 93600),
        ("01:00:00.0000000", 3600),
    ],
)
def test_duration_forms(value: object, seconds: int | None) -> None:
    assert parse_duration_s(value) == seconds

"""UK Carbon Intensity: national and regional answers, fw48h, zones, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, fixture, reply

from webhook.carbon.base import (
    BadResponseError,
    ProviderError,
    UnavailableError,
    UnknownZoneError,
    ZoneMismatchError,
)
from webhook.carbon.http import HttpSettings
from webhook.carbon.ukci import UkCarbonIntensityProvider, UkciSettings, UkZone, parse_zone
from webhook.core.series import from_epoch


def provider(api: ScriptedApi, now: float = NOW) -> UkCarbonIntensityProvider:
    return UkCarbonIntensityProvider(
        UkciSettings(base_url="https://ukci.test"),
        HttpSettings(max_attempts=2),
        transport=api.transport,
        sleep=RecordingSleep(),
        clock=FakeClock(now),
    )


def regional(regionid: int = 3, forecast: float = 266) -> dict[str, Any]:
    body: dict[str, Any] = fixture("ukci_regional_regionid_fw48h_docs_commafixed.json")
    body["data"][0]["regionid"] = regionid
    body["data"][0]["data"][0]["intensity"]["forecast"] = forecast
    return body


async def test_national_latest_prefers_the_measured_value() -> None:
    api = ScriptedApi({"/intensity": [reply(fixture("ukci_intensity_docs.json"))]})
    data = await provider(api).latest("GB")
    assert data.series.values.tolist() == [263]
    assert data.estimated is False
    assert from_epoch(data.series.start).isoformat() == "2018-01-20T12:00:00+00:00"
    assert data.series.end - data.series.start == 1800


async def test_national_forecast_uses_fw48h_from_now_half_hourly() -> None:
    body = fixture("ukci_intensity_fw24h_emoncms_excerpt.json")
    api = ScriptedApi({"/fw48h": [reply(body)]})
    data = await provider(api).forecast("GB", 48 * 3600)
    assert api.requests[0].url.path == "/intensity/2023-11-14T22:13Z/fw48h"
    assert data.series.values.tolist() == [146, 148, 148]
    assert data.series.step_s == 1800
    assert data.estimated is True


async def test_regional_forecast_parses_the_documented_answer() -> None:
    api = ScriptedApi({"/regionid/3": [reply(regional())]})
    data = await provider(api).forecast("regionid:3", 48 * 3600)
    assert api.requests[0].url.path == "/regional/intensity/2023-11-14T22:13Z/fw48h/regionid/3"
    assert data.series.values.tolist() == [266]
    assert data.estimated is True


async def test_regional_answer_as_an_object_is_accepted() -> None:
    body = regional()
    body["data"] = body["data"][0]
    api = ScriptedApi({"/regionid/3": [reply(body)]})
    assert (await provider(api).latest("regionid:3")).series.values.tolist() == [266]


async def test_postcode_zone_uses_the_postcode_endpoints() -> None:
    body = regional()
    body["data"][0]["postcode"] = "RG10"
    api = ScriptedApi({"/postcode/RG10": [reply(body)]})
    await provider(api).latest("postcode:rg10")
    assert api.requests[0].url.path == "/regional/postcode/RG10"


async def test_an_answer_for_another_region_is_a_zone_mismatch() -> None:
    api = ScriptedApi({"/regionid/3": [reply(regional(regionid=4))]})
    with pytest.raises(ZoneMismatchError, match="'regionid:4', not the requested 'regionid:3'"):
        await provider(api).forecast("regionid:3", 3600)


async def test_history_is_fetched_in_spans_of_at_most_14_days() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        start = request.url.path.split("/")[2]
        return reply(
            {
                "data": [
                    {
                        "from": start,
                        "to": start[:-3] + "30Z",
                        "intensity": {"forecast": 200, "actual": 190},
                    }
                ]
            }
        )

    api = ScriptedApi({"": [answer]})
    start = NOW - 20 * 24 * 3600
    data = await provider(api).history("GB", start, NOW)
    assert len(api.requests) == 2
    assert data.series.values.tolist() == [190, 190]
    assert data.estimated is False


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(
            reply(fixture("ukci_error_docs.json"), 400),
            UnknownZoneError,
            "HTTP 400.*string",
            id="documented-400",
        ),
        pytest.param(reply({"data": []}), BadResponseError, "expected one region", id="empty"),
        pytest.param(reply(regional(forecast=-3)), BadResponseError, "absurd", id="negative"),
        pytest.param(reply(None, 500, text="oops"), UnavailableError, "HTTP 500", id="5xx"),
        pytest.param(
            reply({"data": [{"regionid": 3}]}), BadResponseError, "field data", id="malformed"
        ),
    ],
)
async def test_bad_answers_are_typed_errors(
    answer: httpx.Response, error: type[ProviderError], message: str
) -> None:
    api = ScriptedApi({"/regionid/3": [answer]})
    with pytest.raises(error, match=message):
        await provider(api).forecast("regionid:3", 3600)


@pytest.mark.parametrize(
    ("zone", "parsed"),
    [
        ("GB", UkZone("national")),
        ("gb", UkZone("national")),
        ("regionid:3", UkZone("regionid", "3")),
        ("regionid:17", UkZone("regionid", "17")),
        ("postcode:rg10", UkZone("postcode", "RG10")),
    ],
)
def test_zone_forms(zone: str, parsed: UkZone) -> None:
    assert parse_zone(zone) == parsed


@pytest.mark.parametrize("zone", ["DE", "regionid:0", "regionid:18", "postcode:??", "regionid:x"])
def test_unknown_zones_name_the_accepted_forms(zone: str) -> None:
    with pytest.raises(UnknownZoneError, match=r"use GB, regionid:<1-17> or postcode"):
        parse_zone(zone)

"""Electricity Maps v3 against its wire format, and every way an answer can go wrong."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, fixture, reply
from pydantic import SecretStr

from webhook.carbon.base import (
    BadResponseError,
    ProviderConfigError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
    ZoneMismatchError,
)
from webhook.carbon.electricitymaps import (
    ElectricityMapsProvider,
    ElectricityMapsSettings,
    forecast_horizon_hours,
)
from webhook.carbon.http import HttpSettings
from webhook.core.series import from_epoch

KEY = "em-secret-key-0123456789"
HOUR = 3600


def iso(epoch_s: int) -> str:
    return from_epoch(epoch_s).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def point(epoch_s: int, value: float | None, zone: str = "DE", **extra: Any) -> dict[str, Any]:
    return {"zone": zone, "carbonIntensity": value, "datetime": iso(epoch_s), **extra}


def forecast_body(values: list[float | None], zone: str = "DE") -> dict[str, Any]:
    start = NOW // HOUR * HOUR
    return {
        "zone": zone,
        "forecast": [
            {"carbonIntensity": v, "datetime": iso(start + i * HOUR)} for i, v in enumerate(values)
        ],
        "updatedAt": iso(NOW - 600),
    }


def provider(api: ScriptedApi, **settings: Any) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(
        ElectricityMapsSettings(api_key=SecretStr(KEY), base_url="https://em.test/v3", **settings),
        HttpSettings(max_attempts=2),
        transport=api.transport,
        sleep=RecordingSleep(),
        clock=FakeClock(),
    )


async def test_latest_parses_the_documented_answer() -> None:
    api = ScriptedApi(
        {"/v3/carbon-intensity/latest": [reply(fixture("electricitymaps_v3_latest_FR.json"))]}
    )
    data = await provider(api).latest("FR")
    assert data.series.points()[0][1] == 103
    assert from_epoch(data.series.start).isoformat() == "2023-01-23T17:00:00+00:00"
    assert data.series.end - data.series.start == HOUR
    assert data.estimated is True
    assert data.kind == "latest"
    assert data.provider == "electricitymaps"


async def test_requests_carry_the_key_header_the_zone_and_no_caller_ip_fallback() -> None:
    api = ScriptedApi({"/latest": [reply(fixture("electricitymaps_v3_latest_FR.json"))]})
    await provider(api).latest("FR")
    request = api.requests[0]
    assert request.headers["auth-token"] == KEY
    assert dict(request.url.params) == {
        "zone": "FR",
        "emissionFactorType": "lifecycle",
        "disableCallerLookup": "true",
        "shouldUseFallbackCallerLookup": "false",
    }


async def test_direct_emission_factors_and_measured_only_are_selectable() -> None:
    api = ScriptedApi({"/latest": [reply(fixture("electricitymaps_v3_latest_FR.json"))]})
    await provider(api, emission_factor_type="direct", disable_estimations=True).latest("FR")
    params = api.requests[0].url.params
    assert params["emissionFactorType"] == "direct"
    assert params["disableEstimations"] == "true"


async def test_forecast_parses_the_documented_shape() -> None:
    body = fixture("electricitymaps_v3_forecast_casdk_testdata_shape.json")
    api = ScriptedApi({"/carbon-intensity/forecast": [reply(body)]})
    data = await provider(api).forecast("NL", 24 * HOUR)
    assert data.series.values.tolist() == [999]
    assert data.kind == "forecast"
    assert data.issued_at == 4070908800  # 2099-01-01
    assert api.requests[0].url.params["horizonHours"] == "24"


@pytest.mark.parametrize(
    ("horizon_s", "hours"),
    [(1, 6), (6 * HOUR, 6), (6 * HOUR + 1, 24), (30 * HOUR, 48), (72 * HOUR, 72), (200 * HOUR, 72)],
)
def test_forecast_horizon_rounds_up_to_an_accepted_value(horizon_s: int, hours: int) -> None:
    assert forecast_horizon_hours(horizon_s) == hours


async def test_recent_history_uses_the_free_history_endpoint() -> None:
    body = {"zone": "DE", "history": [point(NOW - 2 * HOUR, 300), point(NOW - HOUR, 310)]}
    api = ScriptedApi({"/carbon-intensity/history": [reply(body)]})
    data = await provider(api).history("DE", NOW - 3 * HOUR, NOW)
    assert data.series.values.tolist() == [300, 310]
    assert data.kind == "history"


async def test_history_fixture_is_parsed() -> None:
    body = fixture("electricitymaps_v3_history_IN-KA_gridintensitygo_fixture.json")
    api = ScriptedApi({"/carbon-intensity/history": [reply(body)]})
    clock_now = 1577836800 + HOUR  # 2020-01-01T01:00Z, the fixture's hour is recent
    em = ElectricityMapsProvider(
        ElectricityMapsSettings(api_key=SecretStr(KEY), base_url="https://em.test/v3"),
        HttpSettings(),
        transport=api.transport,
        clock=FakeClock(clock_now),
    )
    data = await em.history("IN-KA", clock_now - 2 * HOUR, clock_now)
    assert data.series.values.tolist() == [312]
    assert data.estimated is True


async def test_older_history_uses_past_range_in_chunks_of_ten_days() -> None:
    start = NOW - 15 * 24 * HOUR

    def answer(request: httpx.Request) -> httpx.Response:
        first = int(datetime.fromisoformat(request.url.params["start"]).timestamp())
        return reply({"zone": "DE", "data": [point(first, 200), point(first + HOUR, 210)]})

    api = ScriptedApi({"/carbon-intensity/past-range": [answer]})
    data = await provider(api).history("DE", start, NOW)
    spans = [(r.url.params["start"], r.url.params["end"]) for r in api.requests]
    assert spans == [
        (iso(start)[:19] + "Z", iso(start + 240 * HOUR)[:19] + "Z"),
        (iso(start + 240 * HOUR)[:19] + "Z", iso(NOW)[:19] + "Z"),
    ]
    assert len(data.series) == 4


async def test_401_for_an_endpoint_outside_the_plan_names_the_endpoint() -> None:
    body = fixture("electricitymaps_401_unauthorized_endpoint_for_zone.json")
    api = ScriptedApi({"/carbon-intensity/past-range": [reply(body, 401)]})
    with pytest.raises(UnauthorizedError) as caught:
        await provider(api).history("DK-DK2", NOW - 20 * 24 * HOUR, NOW - 19 * 24 * HOUR)
    error = caught.value
    assert error.endpoint == "carbon-intensity/past-range"
    assert "carbon-intensity/past-range for zone DK-DK2" in str(error)
    assert "You do not have access to this specific endpoint" in str(error)
    assert len(api.requests) == 1


FAILURES = [
    pytest.param(
        httpx.ReadTimeout("read timed out"), ProviderTimeoutError, "timeout", id="timeout"
    ),
    pytest.param(
        httpx.ConnectError("[Errno 111] Connection refused"),
        UnavailableError,
        "Connection refused",
        id="connection-refused",
    ),
    pytest.param(reply({"message": "internal"}, 500), UnavailableError, "HTTP 500", id="5xx"),
    pytest.param(
        reply({"message": "Too many"}, 429, {"Retry-After": "1"}),
        RateLimitedError,
        "Retry-After 1 s",
        id="429-retry-after",
    ),
    pytest.param(
        reply({"message": "Too many"}, 429),
        RateLimitedError,
        "Retry-After absent",
        id="429-no-retry-after",
    ),
    pytest.param(
        reply({"message": "Invalid auth-token"}, 401),
        UnauthorizedError,
        "Invalid auth-token",
        id="401",
    ),
    pytest.param(
        reply(None, 200, text='{"zone": "DE", "forecast": ['),
        BadResponseError,
        "malformed JSON",
        id="malformed-json",
    ),
    pytest.param(reply({"zone": "DE"}), BadResponseError, "field forecast", id="missing-field"),
    pytest.param(reply(forecast_body([])), BadResponseError, "empty data", id="empty-data"),
    pytest.param(
        reply(forecast_body([300, -5])), BadResponseError, "absurd intensity -5", id="negative"
    ),
    pytest.param(
        reply(forecast_body([300, 2500])),
        BadResponseError,
        "absurd intensity 2500",
        id="above-2000",
    ),
    pytest.param(reply(forecast_body([300, None])), BadResponseError, "missing", id="null-value"),
    pytest.param(
        reply(forecast_body([300], zone="FR")), ZoneMismatchError, "'FR'", id="zone-mismatch"
    ),
]


@pytest.mark.parametrize(("answer", "error", "message"), FAILURES)
async def test_every_failure_is_a_typed_error_with_a_clear_message(
    answer: Exception | httpx.Response, error: type[ProviderError], message: str
) -> None:
    api = ScriptedApi({"/carbon-intensity/forecast": [answer]})
    with pytest.raises(error, match=message) as caught:
        await provider(api).forecast("DE", 24 * HOUR)
    assert "electricitymaps: carbon-intensity/forecast for zone DE" in str(caught.value)


async def test_out_of_order_and_duplicate_points_are_sorted_and_deduplicated() -> None:
    start = NOW // HOUR * HOUR
    body = {
        "zone": "DE",
        "forecast": [
            {"carbonIntensity": 320, "datetime": iso(start + 2 * HOUR)},
            {"carbonIntensity": 300, "datetime": iso(start)},
            {"carbonIntensity": 310, "datetime": iso(start + HOUR)},
            {"carbonIntensity": 300, "datetime": iso(start)},
        ],
    }
    api = ScriptedApi({"/forecast": [reply(body)]})
    data = await provider(api).forecast("DE", 24 * HOUR)
    assert data.series.values.tolist() == [300, 310, 320]


async def test_a_conflicting_duplicate_rejects_the_answer() -> None:
    start = NOW // HOUR * HOUR
    body = {
        "zone": "DE",
        "forecast": [
            {"carbonIntensity": 300, "datetime": iso(start)},
            {"carbonIntensity": 350, "datetime": iso(start)},
        ],
    }
    api = ScriptedApi({"/forecast": [reply(body)]})
    with pytest.raises(BadResponseError, match="conflicting values"):
        await provider(api).forecast("DE", 24 * HOUR)


async def test_a_history_point_of_another_zone_is_a_zone_mismatch() -> None:
    body = {"zone": "DE", "history": [point(NOW - HOUR, 300, zone="PL")]}
    api = ScriptedApi({"/history": [reply(body)]})
    with pytest.raises(ZoneMismatchError, match="'PL'"):
        await provider(api).history("DE", NOW - 2 * HOUR, NOW)


def test_a_missing_key_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ProviderConfigError, match="GREENLIGHT_ELECTRICITYMAPS_API_KEY"):
        ElectricityMapsProvider(ElectricityMapsSettings(), HttpSettings())


async def test_the_key_never_appears_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = ScriptedApi(
        {"/forecast": [reply({"message": "boom"}, 503)], "/latest": [reply({"message": "no"}, 401)]}
    )
    em = provider(api)
    errors: list[str] = []
    for call in (em.forecast("DE", HOUR), em.latest("DE")):
        with pytest.raises(ProviderError) as caught:
            await call
        errors.append(repr(caught.value) + str(caught.value))
    settings_text = repr(ElectricityMapsSettings(api_key=SecretStr(KEY)))
    assert caplog.records, "the retry should have been logged"
    for text in [*errors, caplog.text, settings_text]:
        assert KEY not in text

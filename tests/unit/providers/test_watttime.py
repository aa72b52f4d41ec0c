"""WattTime v3: login and token renewal, MOER conversion, plan refusals, region lookup."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, fixture, reply
from pydantic import SecretStr

from webhook.carbon.base import (
    BadResponseError,
    ProviderConfigError,
    ProviderError,
    RateLimitedError,
    UnauthorizedError,
    UnknownZoneError,
    ZoneMismatchError,
)
from webhook.carbon.http import HttpSettings
from webhook.carbon.watttime import (
    LBS_PER_MWH_TO_G_PER_KWH,
    WattTimeProvider,
    WattTimeSettings,
)

PASSWORD = "wt-password-secret-987"
LOGIN = reply(fixture("watttime_login.json"))


def provider(api: ScriptedApi, clock: FakeClock | None = None, **settings: Any) -> WattTimeProvider:
    return WattTimeProvider(
        WattTimeSettings(
            username="alice",
            password=SecretStr(PASSWORD),
            base_url="https://wt.test/v3",
            **settings,
        ),
        HttpSettings(max_attempts=2),
        transport=api.transport,
        sleep=RecordingSleep(),
        clock=clock or FakeClock(),
    )


def signal(
    values: list[float], region: str = "CAISO_NORTH", units: str = "lbs_co2_per_mwh"
) -> dict[str, Any]:
    body: dict[str, Any] = fixture("watttime_v3_forecast_migration_guide.json")
    body["data"] = [
        {"point_time": f"2022-07-15T00:{5 * i:02d}:00+00:00", "value": v}
        for i, v in enumerate(values)
    ]
    body["meta"]["region"] = region
    body["meta"]["units"] = units
    return body


async def test_forecast_logs_in_with_basic_auth_and_converts_moer_to_g_per_kwh() -> None:
    api = ScriptedApi(
        {
            "/login": [LOGIN],
            "/v3/forecast": [reply(fixture("watttime_v3_forecast_migration_guide.json"))],
        }
    )
    data = await provider(api).forecast("CAISO_NORTH", 24 * 3600)
    login, request = api.requests
    assert str(login.url) == "https://wt.test/login"
    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert login.headers["Authorization"] == expected
    assert request.headers["Authorization"] == "Bearer mytoken"
    assert dict(request.url.params) == {
        "region": "CAISO_NORTH",
        "signal_type": "co2_moer",
        "horizon_hours": "24",
    }
    assert data.series.values.tolist() == pytest.approx(
        [1048.4131919701972 * 0.453592, 1051.0880801214637 * 0.453592]
    )
    assert data.series.end - data.series.start == 600  # 5-minute steps
    assert data.issued_at is not None
    assert LBS_PER_MWH_TO_G_PER_KWH == 0.453592


async def test_historical_fixture_and_latest_is_its_last_point() -> None:
    body = fixture("watttime_v3_historical_migration_guide.json")
    api = ScriptedApi({"/login": [LOGIN], "/v3/historical": [reply(body)]})
    wt = provider(api)
    history = await wt.history("CAISO_NORTH", NOW - 3600, NOW)
    assert history.series.values.tolist() == pytest.approx([870 * 0.453592, 860 * 0.453592])
    latest = await wt.latest("CAISO_NORTH")
    assert latest.series.values.tolist() == pytest.approx([860 * 0.453592])
    assert latest.kind == "latest"


async def test_the_token_is_reused_then_renewed_before_its_30_minute_expiry() -> None:
    clock = FakeClock()
    api = ScriptedApi({"/login": [LOGIN], "/forecast": [reply(signal([900.0]))]})
    wt = provider(api, clock)
    await wt.forecast("CAISO_NORTH", 3600)
    clock.advance(20 * 60)
    await wt.forecast("CAISO_NORTH", 3600)
    assert len(api.calls("/login")) == 1
    clock.advance(9 * 60)  # 29 minutes: inside the 2-minute refresh margin
    await wt.forecast("CAISO_NORTH", 3600)
    assert len(api.calls("/login")) == 2


async def test_a_401_renews_the_token_once_and_retries() -> None:
    api = ScriptedApi(
        {
            "/login": [reply({"token": "first"}), reply({"token": "second"})],
            "/forecast": [reply({"error": "token expired"}, 401), reply(signal([900.0]))],
        }
    )
    data = await provider(api).forecast("CAISO_NORTH", 3600)
    assert data.series.values.tolist() == pytest.approx([900 * 0.453592])
    tokens = [r.headers["Authorization"] for r in api.calls("/forecast")]
    assert tokens == ["Bearer first", "Bearer second"]


async def test_a_second_401_is_an_unauthorized_error() -> None:
    api = ScriptedApi({"/login": [LOGIN], "/forecast": [reply({"error": "nope"}, 401)]})
    with pytest.raises(UnauthorizedError, match="forecast for zone CAISO_NORTH"):
        await provider(api).forecast("CAISO_NORTH", 3600)
    assert len(api.calls("/login")) == 2
    assert len(api.calls("/forecast")) == 2


async def test_rejected_credentials_fail_the_login() -> None:
    api = ScriptedApi({"/login": [reply({"error": "bad"}, 401)]})
    with pytest.raises(UnauthorizedError, match="login: username/password rejected"):
        await provider(api).forecast("CAISO_NORTH", 3600)


async def test_a_region_outside_the_plan_is_unauthorized_with_watttimes_explanation() -> None:
    body = fixture("watttime_error_invalid_scope_aiowatttime_fixture.json")
    api = ScriptedApi({"/login": [LOGIN], "/forecast": [reply(body, 403)]})
    with pytest.raises(UnauthorizedError, match="Invalid scope") as caught:
        await provider(api).forecast("PJM_DC", 3600)
    assert caught.value.endpoint == "forecast"
    assert len(api.calls("/login")) == 1  # a new token does not change a plan


async def test_region_from_location() -> None:
    body = fixture("watttime_v3_region_from_loc_aiowatttime_fixture.json")
    api = ScriptedApi({"/login": [LOGIN], "/v3/region-from-loc": [reply(body)]})
    assert await provider(api).region_from_location(39.7, -105.0) == "PSCO"
    assert api.requests[-1].url.params["latitude"] == "39.7"


async def test_a_location_without_coverage_is_an_unknown_zone() -> None:
    body = fixture("watttime_error_coordinates_not_found_aiowatttime_fixture.json")
    api = ScriptedApi({"/login": [LOGIN], "/region-from-loc": [reply(body, 400)]})
    with pytest.raises(UnknownZoneError, match="No coverage available"):
        await provider(api).region_from_location(0, 0)


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(
            reply(signal([96.0], units="percentile")),
            BadResponseError,
            "units 'percentile'",
            id="percentile-units",
        ),
        pytest.param(
            reply(signal([900.0], region="PJM_DC")),
            ZoneMismatchError,
            "'PJM_DC'",
            id="region-mismatch",
        ),
        pytest.param(reply(signal([5000.0])), BadResponseError, "absurd intensity", id="absurd"),
        pytest.param(reply(signal([])), BadResponseError, "empty data", id="empty"),
        pytest.param(
            reply({"data": "nope", "meta": {}}), BadResponseError, "field data", id="malformed"
        ),
        pytest.param(reply({}, 429, {"Retry-After": "2"}), RateLimitedError, "HTTP 429", id="429"),
    ],
)
async def test_bad_answers_are_typed_errors(
    answer: httpx.Response, error: type[ProviderError], message: str
) -> None:
    api = ScriptedApi({"/login": [LOGIN], "/forecast": [answer]})
    with pytest.raises(error, match=message):
        await provider(api).forecast("CAISO_NORTH", 3600)


async def test_the_signal_index_percentile_is_refused_as_not_an_intensity() -> None:
    body = fixture("watttime_v3_signal_index_aiowatttime_fixture.json")
    api = ScriptedApi({"/login": [LOGIN], "/forecast": [reply(body)]})
    with pytest.raises(BadResponseError, match="units 'percentile' cannot be converted"):
        await provider(api).forecast("PSCO", 3600)


def test_login_url_defaults_beside_the_versioned_base_url() -> None:
    assert WattTimeSettings().resolved_login_url() == "https://api.watttime.org/login"
    custom = WattTimeSettings(base_url="http://mirror/wt/v3", login_url=None)
    assert custom.resolved_login_url() == "http://mirror/wt/login"


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(ProviderConfigError, match="GREENLIGHT_WATTTIME_PASSWORD"):
        WattTimeProvider(WattTimeSettings(username="alice"), HttpSettings())


async def test_the_password_and_token_never_appear_in_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = ScriptedApi({"/login": [LOGIN], "/forecast": [reply({"error": "down"}, 503)]})
    with pytest.raises(ProviderError) as caught:
        await provider(api).forecast("CAISO_NORTH", 3600)
    assert caplog.records
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert PASSWORD not in text
        assert "mytoken" not in text

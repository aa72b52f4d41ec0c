"""Every network provider against every failure the issue lists: each gives good data or a
typed error with a clear message, never anything else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, reply
from pydantic import SecretStr

from webhook.carbon.base import (
    BadResponseError,
    Provider,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
    ZoneMismatchError,
)
from webhook.carbon.carbonaware import CarbonAwareProvider, CarbonAwareSettings
from webhook.carbon.electricitymaps import ElectricityMapsProvider, ElectricityMapsSettings
from webhook.carbon.http import HttpSettings
from webhook.carbon.ukci import UkCarbonIntensityProvider, UkciSettings
from webhook.carbon.watttime import LBS_PER_MWH_TO_G_PER_KWH, WattTimeProvider, WattTimeSettings
from webhook.core.series import from_epoch

HOUR = 3600
T0 = NOW // HOUR * HOUR
HTTP = HttpSettings(max_attempts=2)
Points = list[tuple[int, float]]


def iso(epoch_s: int) -> str:
    return from_epoch(epoch_s).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Wire:
    """How one provider's forecast endpoint is reached and what its answers look like."""

    name: str
    zone: str
    other_zone: str
    path: str
    body: Callable[[Points, str], Any]
    build: Callable[[ScriptedApi, RecordingSleep], Provider]
    extra: dict[str, list[Any]]


def em_body(points: Points, zone: str) -> Any:
    return {
        "zone": zone,
        "forecast": [{"datetime": iso(t), "carbonIntensity": v} for t, v in points],
    }


def wt_body(points: Points, zone: str) -> Any:
    return {
        "data": [{"point_time": iso(t), "value": v / LBS_PER_MWH_TO_G_PER_KWH} for t, v in points],
        "meta": {"region": zone, "units": "lbs_co2_per_mwh", "data_point_period_seconds": 3600},
    }


def ukci_body(points: Points, zone: str) -> Any:
    region = int(zone.split(":")[1])
    periods = [
        {"from": iso(t)[:-4] + "Z", "to": iso(t + 1800)[:-4] + "Z", "intensity": {"forecast": v}}
        for t, v in points
    ]
    return {"data": [{"regionid": region, "shortname": "x", "data": periods}]}


def casdk_body(points: Points, zone: str) -> Any:
    data = [{"location": "X", "timestamp": iso(t), "duration": 60, "value": v} for t, v in points]
    return [{"location": zone, "generatedAt": iso(T0), "forecastData": data}]


WIRES = [
    Wire(
        "electricitymaps",
        "DE",
        "FR",
        "/carbon-intensity/forecast",
        em_body,
        lambda api, sleep: ElectricityMapsProvider(
            ElectricityMapsSettings(api_key=SecretStr("k"), base_url="https://em.test/v3"),
            HTTP,
            transport=api.transport,
            sleep=sleep,
            clock=FakeClock(),
        ),
        {},
    ),
    Wire(
        "watttime",
        "CAISO_NORTH",
        "PJM_DC",
        "/v3/forecast",
        wt_body,
        lambda api, sleep: WattTimeProvider(
            WattTimeSettings(username="u", password=SecretStr("p"), base_url="https://wt.test/v3"),
            HTTP,
            transport=api.transport,
            sleep=sleep,
            clock=FakeClock(),
        ),
        {"/login": [reply({"token": "t"})]},
    ),
    Wire(
        "ukci",
        "regionid:3",
        "regionid:4",
        "/regionid/3",
        ukci_body,
        lambda api, sleep: UkCarbonIntensityProvider(
            UkciSettings(base_url="https://ukci.test"),
            HTTP,
            transport=api.transport,
            sleep=sleep,
            clock=FakeClock(),
        ),
        {},
    ),
    Wire(
        "carbonaware",
        "eastus",
        "westus",
        "/emissions/forecasts/current",
        casdk_body,
        lambda api, sleep: CarbonAwareProvider(
            CarbonAwareSettings(base_url="http://sdk.test"),
            HTTP,
            transport=api.transport,
            sleep=sleep,
            clock=FakeClock(),
        ),
        {},
    ),
]
WIRE_IDS = [wire.name for wire in WIRES]

GOOD: Points = [(T0, 300.0), (T0 + HOUR, 310.0), (T0 + 2 * HOUR, 320.0)]


async def forecast(
    wire: Wire, *answers: Any, sleep: RecordingSleep | None = None
) -> tuple[Any, ScriptedApi, RecordingSleep]:
    api = ScriptedApi({**wire.extra, wire.path: list(answers)})
    sleep = sleep or RecordingSleep()
    provider = wire.build(api, sleep)
    try:
        return await provider.forecast(wire.zone, 3 * HOUR), api, sleep
    finally:
        await provider.aclose()


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize(
    "points",
    [
        pytest.param(GOOD, id="in-order"),
        pytest.param([GOOD[2], GOOD[0], GOOD[1]], id="out-of-order"),
        pytest.param([GOOD[0], GOOD[1], GOOD[1], GOOD[2]], id="exact-duplicate"),
    ],
)
async def test_good_answers_become_sorted_series_in_g_per_kwh(wire: Wire, points: Points) -> None:
    data, _, _ = await forecast(wire, reply(wire.body(points, wire.zone)))
    assert data.series.values.tolist() == pytest.approx([300.0, 310.0, 320.0])
    assert data.series.times.tolist() == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert data.provider == wire.name
    assert data.kind == "forecast"


def bad_body(kind: str) -> Callable[[Wire], Any]:
    def build(wire: Wire) -> Any:
        if kind == "empty":
            return wire.body([], wire.zone)
        if kind == "negative":
            return wire.body([(T0, -10.0)], wire.zone)
        if kind == "above-2000":
            return wire.body([(T0, 2400.0)], wire.zone)
        if kind == "conflicting-duplicate":
            return wire.body([(T0, 300.0), (T0, 350.0)], wire.zone)
        return wire.body(GOOD, wire.other_zone)

    return build


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(bad_body("empty"), BadResponseError, "empty data|expected one", id="empty"),
        pytest.param(bad_body("negative"), BadResponseError, "absurd intensity -10", id="negative"),
        pytest.param(
            bad_body("above-2000"), BadResponseError, "absurd intensity 2400", id="above-2000"
        ),
        pytest.param(
            bad_body("conflicting-duplicate"),
            BadResponseError,
            "conflicting values",
            id="conflicting-duplicate",
        ),
        pytest.param(
            bad_body("zone-mismatch"), ZoneMismatchError, "not the requested", id="zone-mismatch"
        ),
    ],
)
async def test_unusable_answers_are_bad_responses(
    wire: Wire, answer: Callable[[Wire], Any], error: type[ProviderError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        await forecast(wire, reply(answer(wire)))
    assert str(caught.value).startswith(f"{wire.name}: ")
    assert f"for zone {wire.zone}" in str(caught.value)


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize(
    ("answer", "error", "message", "delays"),
    [
        pytest.param(
            httpx.ReadTimeout("timed out"), ProviderTimeoutError, "read timeout", 1, id="timeout"
        ),
        pytest.param(
            httpx.ConnectError("[Errno 111] Connection refused"),
            UnavailableError,
            "Connection refused",
            1,
            id="connection-refused",
        ),
        pytest.param(reply({"message": "oops"}, 503), UnavailableError, "HTTP 503", 1, id="5xx"),
        pytest.param(
            reply({"message": "slow"}, 429, {"Retry-After": "3"}),
            RateLimitedError,
            "Retry-After 3 s",
            1,
            id="429-retry-after",
        ),
        pytest.param(
            reply({"message": "slow"}, 429),
            RateLimitedError,
            "Retry-After absent",
            1,
            id="429-no-retry-after",
        ),
        pytest.param(
            reply({"message": "who are you"}, 401), UnauthorizedError, "HTTP 401", 0, id="401"
        ),
        pytest.param(
            reply(None, 200, text="<html>oops</html>"),
            BadResponseError,
            "malformed JSON",
            0,
            id="malformed-json",
        ),
    ],
)
async def test_transport_and_http_failures_are_typed_errors(
    wire: Wire, answer: Any, error: type[ProviderError], message: str, delays: int
) -> None:
    sleep = RecordingSleep()
    with pytest.raises(error, match=message) as caught:
        await forecast(wire, answer, sleep=sleep)
    assert str(caught.value).startswith(f"{wire.name}: ")
    assert len(sleep.delays) == delays  # transient failures retried (2 attempts), others not


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
async def test_429_retry_after_is_waited_then_the_answer_is_used(wire: Wire) -> None:
    data, api, sleep = await forecast(
        wire, reply({}, 429, {"Retry-After": "3"}), reply(wire.body(GOOD, wire.zone))
    )
    assert sleep.delays == [3.0]
    assert len(api.calls(wire.path)) == 2
    assert len(data.series) == 3

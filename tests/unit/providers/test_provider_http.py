"""The resilient client: timeouts, connection errors, 5xx, 429 Retry-After, 4xx, bad JSON."""

from __future__ import annotations

from email.utils import format_datetime

import httpx
import pytest
from provider_fakes import NOW, FakeClock, RecordingSleep, ScriptedApi, reply

from webhook.carbon.base import (
    BadResponseError,
    ProviderTimeoutError,
    RateLimitedError,
    RejectedError,
    UnauthorizedError,
    UnavailableError,
)
from webhook.carbon.http import HttpSettings, ResilientClient, backoff_s, parse_retry_after
from webhook.core.series import from_epoch

OK = reply({"ok": True})


def client(api: ScriptedApi, sleep: RecordingSleep, **settings: float) -> ResilientClient:
    return ResilientClient(
        provider="acme",
        base_url="http://api.test/v3",
        settings=HttpSettings.model_validate(settings),
        transport=api.transport,
        sleep=sleep,
        clock=FakeClock(),
        rng=lambda: 0.5,
    )


async def get(api: ScriptedApi, sleep: RecordingSleep, **settings: float) -> object:
    http = client(api, sleep, **settings)
    try:
        return await http.get_json("thing", endpoint="thing", zone="DE", params={"flag": True})
    finally:
        await http.aclose()


async def test_path_is_joined_under_the_versioned_base_url_and_booleans_are_lowercase() -> None:
    api = ScriptedApi({"/v3/thing": [OK]})
    assert await get(api, RecordingSleep()) == {"ok": True}
    assert str(api.requests[0].url) == "http://api.test/v3/thing?flag=true"


@pytest.mark.parametrize(
    ("failure", "error", "message"),
    [
        pytest.param(
            httpx.ReadTimeout("slow"), ProviderTimeoutError, "read timeout", id="read-timeout"
        ),
        pytest.param(
            httpx.ConnectTimeout("slow"),
            ProviderTimeoutError,
            "connect timeout",
            id="connect-timeout",
        ),
        pytest.param(
            httpx.ConnectError("[Errno 111] Connection refused"),
            UnavailableError,
            "Connection refused",
            id="connection-refused",
        ),
        pytest.param(
            reply({"message": "down"}, 503), UnavailableError, r"HTTP 503\): down", id="5xx"
        ),
        pytest.param(
            reply({"message": "slow down"}, 429),
            RateLimitedError,
            "Retry-After absent",
            id="429-without-retry-after",
        ),
    ],
)
async def test_transient_failures_are_retried_then_raised_as_typed_errors(
    failure: Exception | httpx.Response, error: type[Exception], message: str
) -> None:
    api = ScriptedApi({"/thing": [failure]})
    sleep = RecordingSleep()
    with pytest.raises(error, match=message) as caught:
        await get(api, sleep, max_attempts=3)
    assert len(api.requests) == 3
    assert sleep.delays == [
        backoff_s(1, HttpSettings(), lambda: 0.5),
        backoff_s(2, HttpSettings(), lambda: 0.5),
    ]
    assert str(caught.value).startswith("acme: thing for zone DE: ")


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
        pytest.param(httpx.ConnectError("refused"), id="connection-refused"),
        pytest.param(reply(None, 502, text="bad gateway"), id="5xx"),
    ],
)
async def test_a_transient_failure_then_success_returns_the_answer(
    failure: Exception | httpx.Response,
) -> None:
    api = ScriptedApi({"/thing": [failure, OK]})
    assert await get(api, RecordingSleep()) == {"ok": True}
    assert len(api.requests) == 2


async def test_429_waits_exactly_the_retry_after_seconds() -> None:
    api = ScriptedApi({"/thing": [reply({}, 429, {"Retry-After": "7"}), OK]})
    sleep = RecordingSleep()
    assert await get(api, sleep) == {"ok": True}
    assert sleep.delays == [7.0]


async def test_429_with_an_http_date_waits_until_that_date() -> None:
    when = format_datetime(from_epoch(NOW + 12), usegmt=True)
    api = ScriptedApi({"/thing": [reply({}, 429, {"Retry-After": when}), OK]})
    sleep = RecordingSleep()
    assert await get(api, sleep) == {"ok": True}
    assert sleep.delays == [12.0]


async def test_429_with_a_retry_after_beyond_the_cap_fails_at_once() -> None:
    api = ScriptedApi({"/thing": [reply({"message": "quota"}, 429, {"Retry-After": "3600"})]})
    sleep = RecordingSleep()
    with pytest.raises(RateLimitedError, match="3600 s") as caught:
        await get(api, sleep, max_retry_after_s=60)
    assert caught.value.retry_after_s == 3600
    assert sleep.delays == []
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        pytest.param(
            reply({"message": "bad key"}, 401), UnauthorizedError, "HTTP 401.*bad key", id="401"
        ),
        pytest.param(
            reply({"error": {"code": "400", "message": "bad zone"}}, 400),
            RejectedError,
            "HTTP 400.*bad zone",
            id="400",
        ),
        pytest.param(
            reply(None, 200, text="{not json"),
            BadResponseError,
            "malformed JSON",
            id="malformed-json",
        ),
    ],
)
async def test_permanent_failures_are_not_retried(
    answer: httpx.Response, error: type[Exception], message: str
) -> None:
    api = ScriptedApi({"/thing": [answer]})
    sleep = RecordingSleep()
    with pytest.raises(error, match=message):
        await get(api, sleep)
    assert len(api.requests) == 1
    assert sleep.delays == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("  ", None, id="blank"),
        pytest.param("5", 5.0, id="seconds"),
        pytest.param(format_datetime(from_epoch(NOW + 30), usegmt=True), 30.0, id="http-date"),
        pytest.param(format_datetime(from_epoch(NOW - 30), usegmt=True), 0.0, id="date-past"),
        pytest.param("soon", None, id="garbage"),
    ],
)
def test_retry_after_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_backoff_doubles_with_jitter_within_half_to_full_and_is_capped(draw: float) -> None:
    settings = HttpSettings(backoff_initial_s=1.0, backoff_max_s=4.0)
    delays = [backoff_s(attempt, settings, lambda: draw) for attempt in (1, 2, 3, 4)]
    for delay, ceiling in zip(delays, (1.0, 2.0, 4.0, 4.0), strict=True):
        assert ceiling / 2 <= delay <= ceiling

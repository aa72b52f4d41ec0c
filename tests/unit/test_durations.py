"""Go/Kubernetes-style durations: parsing, refusing with a clear message, formatting back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("24h", 86_400, id="hours"),
        pytest.param("90m", 5_400, id="minutes"),
        pytest.param("1h30m", 5_400, id="hours-minutes"),
        pytest.param("45s", 45, id="seconds"),
        pytest.param("1.5h", 5_400, id="fractional-hours"),
        pytest.param(".5h", 1_800, id="leading-dot"),
        pytest.param("1h0.5m", 3_630, id="fractional-component"),
        pytest.param("2h45m30s", 9_930, id="three-components"),
        pytest.param("30m1h", 5_400, id="any-order-like-go"),
        pytest.param("+2h", 7_200, id="plus-sign"),
        pytest.param("0", 0, id="bare-zero"),
        pytest.param("0s", 0, id="zero-seconds"),
        pytest.param("1500ms", 2, id="milliseconds-round-up"),
        pytest.param("1µs", 1, id="micro-sign-rounds-up"),
        pytest.param(" 2h ", 7_200, id="surrounding-space"),
    ],
)
def test_go_durations_parse_to_whole_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param("1d", "days are not a unit", id="days"),
        pytest.param("3600", "a unit is required, e.g. '3600s'", id="no-unit"),
        pytest.param("", "", id="empty"),
        pytest.param("h", "", id="unit-only"),
        pytest.param("1H", "", id="upper-case-unit"),
        pytest.param("1 h", "", id="inner-space"),
        pytest.param("1.2.3h", "", id="two-dots"),
        pytest.param("1hh", "", id="doubled-unit"),
        pytest.param("1w", "", id="weeks"),
        pytest.param("P1D", "", id="iso-8601"),
    ],
)
def test_malformed_durations_name_the_value_and_the_accepted_form(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "'1h30m'" in message
    assert hint in message


def test_negative_durations_are_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration("-1h")
    assert parse_duration("-1h30m", allow_negative=True) == -5_400


@pytest.mark.parametrize("text", ["0", "0s", "0h0m"], ids=["bare", "seconds", "components"])
def test_zero_is_refused_where_the_caller_says_so(text: str) -> None:
    with pytest.raises(ValueError, match="must be longer than zero"):
        parse_duration(text, allow_zero=False)


def test_a_non_string_is_refused_with_the_accepted_form() -> None:
    with pytest.raises(ValueError, match="expected a string"):
        parse_duration(3600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(5_400, "1h30m", id="hours-minutes"),
        pytest.param(3_605, "1h5s", id="zero-minutes-left-out"),
        pytest.param(86_400, "24h", id="day-as-hours"),
        pytest.param(45, "45s", id="seconds"),
        pytest.param(0, "0s", id="zero"),
        pytest.param(-90, "-1m30s", id="negative"),
        pytest.param(1.5, "1.5s", id="fraction"),
    ],
)
def test_seconds_format_as_the_shortest_go_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_seconds_cannot_be_formatted(value: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        format_duration(value)


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_formatting_round_trips_through_parsing(seconds: int) -> None:
    assert parse_duration(format_duration(seconds), allow_negative=True) == seconds

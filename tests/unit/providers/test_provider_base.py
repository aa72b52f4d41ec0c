"""Validation shared by every provider: sorting, duplicates, absurd values, zone checks."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel

from webhook.carbon.base import (
    BadResponseError,
    IntensityData,
    ZoneMismatchError,
    build_series,
    check_zone,
    parse_answer,
)
from webhook.core.series import StepSeries


def series_of(points: list[tuple[int, float | None]], step_s: int = 3600) -> StepSeries:
    return build_series(points, step_s=step_s, provider="p", endpoint="e", zone="Z")


def test_out_of_order_points_are_sorted() -> None:
    series = series_of([(7200, 3.0), (0, 1.0), (3600, 2.0)])
    assert series.times.tolist() == [0, 3600, 7200]
    assert series.values.tolist() == [1.0, 2.0, 3.0]
    assert series.end == 10800


def test_exact_duplicates_are_dropped() -> None:
    series = series_of([(0, 1.0), (3600, 2.0), (3600, 2.0)])
    assert series.times.tolist() == [0, 3600]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        pytest.param([], "empty data", id="empty"),
        pytest.param([(0, 1.0), (0, 2.0)], "conflicting values", id="conflicting-duplicate"),
        pytest.param([(0, -1.0)], "absurd intensity -1", id="negative"),
        pytest.param([(0, 2000.5)], "absurd intensity 2000.5", id="above-2000"),
        pytest.param([(0, math.nan)], "non-finite", id="nan"),
        pytest.param([(0, None)], "missing", id="null"),
    ],
)
def test_unusable_points_reject_the_answer(
    points: list[tuple[int, float | None]], message: str
) -> None:
    with pytest.raises(BadResponseError, match=message) as caught:
        series_of(points)
    assert "p: e for zone Z" in str(caught.value)


@pytest.mark.parametrize(("value"), [0.0, 2000.0], ids=["zero", "2000"])
def test_bounds_are_accepted(value: float) -> None:
    assert series_of([(0, value)]).values.tolist() == [value]


def test_zone_check_is_case_insensitive_and_names_both_zones() -> None:
    check_zone("p", "e", "de", "DE")
    check_zone("p", "e", "DE", None)
    with pytest.raises(ZoneMismatchError, match="'FR', not the requested 'DE'"):
        check_zone("p", "e", "DE", "FR")


class _Wire(BaseModel):
    value: float


def test_parse_answer_names_the_offending_field() -> None:
    with pytest.raises(BadResponseError, match="field value"):
        parse_answer(_Wire, {"value": "lots"}, provider="p", endpoint="e", zone="Z")


def test_data_age_uses_last_observation_or_forecast_issue_time() -> None:
    series = StepSeries.regular(1000, 3600, [1.0, 2.0])
    latest = IntensityData("Z", "p", "history", series, fetched_at=9000, estimated=False)
    assert latest.data_time == 4600
    assert latest.age_s(5000) == 400
    forecast = IntensityData(
        "Z", "p", "forecast", series, fetched_at=9000, estimated=True, issued_at=8000
    )
    assert forecast.age_s(8500) == 500

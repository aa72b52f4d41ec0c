"""StepSeries: exact integrals of piecewise-constant data, and refusal of bad series."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from webhook.core.series import SeriesError, StepSeries, to_epoch

H = 3600


def hourly(values: list[float], start: int = 0) -> StepSeries:
    return StepSeries.regular(start, H, values)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(0, H, 100 * H, id="one whole step"),
        pytest.param(0, 2 * H, 300 * H, id="two whole steps"),
        pytest.param(H / 2, H + H / 2, 150 * H, id="straddling a boundary counts each part"),
        pytest.param(0.25 * H, 0.5 * H, 25 * H, id="inside one step"),
        pytest.param(2 * H, 2 * H, 0.0, id="empty window"),
    ],
)
def test_integral_is_exact_for_partial_steps(start: float, end: float, expected: float) -> None:
    series = hourly([100, 200, 300])
    assert series.integral(np.array([start]), np.array([end]))[0] == pytest.approx(expected)


def test_integral_is_vectorised() -> None:
    series = hourly([100, 200, 300])
    starts = np.array([0.0, H, 1.5 * H])
    assert series.integral(starts, starts + H).tolist() == pytest.approx(
        [100 * H, 200 * H, 250 * H]
    )


def test_irregular_resolution_integrates_each_step_by_its_length() -> None:
    series = StepSeries(np.array([0, 1800, 3600]), np.array([100.0, 300.0, 50.0]), 4 * H)
    assert series.mean(0, H) == pytest.approx(200.0)
    assert series.mean(0, 4 * H) == pytest.approx((100 * 0.5 + 300 * 0.5 + 50 * 3) / 4)


def test_mean_of_an_empty_window_is_the_value_in_force() -> None:
    assert hourly([100, 200]).mean(H + 10, H + 10) == 200


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [
        pytest.param([0, H, H], [1, 2, 3], "duplicate", id="duplicate"),
        pytest.param([0, 2 * H, H], [1, 2, 3], "out-of-order", id="unsorted"),
        pytest.param([0, H], [1, float("nan")], "non-finite", id="nan"),
        pytest.param([], [], "at least one point", id="empty"),
    ],
)
def test_bad_series_are_refused_with_the_problem(
    times: list[int], values: list[float], message: str
) -> None:
    with pytest.raises(SeriesError, match=message):
        StepSeries(np.array(times, dtype=np.int64), np.array(values, dtype=float), 10 * H)


def test_from_points_takes_aware_times_and_the_median_step() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    series = StepSeries.from_points(
        [(start + timedelta(minutes=30 * i), 10.0 * i) for i in range(4)]
    )
    assert series.step_s == 1800
    assert series.end == to_epoch(start) + 4 * 1800


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_epoch(datetime(2024, 1, 1))


def test_window_keeps_the_steps_overlapping_the_range() -> None:
    series = hourly([1, 2, 3, 4, 5])
    part = series.window(1.5 * H, 3.5 * H)
    assert part.times.tolist() == [H, 2 * H, 3 * H]
    assert part.end == 4 * H


def test_extended_to_holds_the_last_value() -> None:
    series = hourly([1, 2]).extended_to(5 * H)
    assert series.mean(2 * H, 5 * H) == 2

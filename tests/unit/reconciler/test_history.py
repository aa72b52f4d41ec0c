from __future__ import annotations

import numpy as np
import pytest
from builders import T0

from webhook.carbon.base import UnknownZoneError
from webhook.carbon.replay import ReplayProvider, ReplaySettings
from webhook.core.series import StepSeries, to_epoch
from webhook.reconciler.history import (
    HistoryFormatError,
    IntensityHistory,
    RecordingProvider,
    parse_document,
)

HOUR = 3600
START = to_epoch(T0)


def steps(start: int, step_s: int, values: list[float]) -> StepSeries:
    return StepSeries.regular(start, step_s, np.array(values))


def test_new_observations_win_and_the_series_reads_back() -> None:
    history = IntensityHistory()
    history.record("DE", steps(START, HOUR, [300.0, 310.0]))
    history.record("DE", steps(START + HOUR, HOUR, [320.0, 330.0]))
    series = history.series("DE")
    assert series is not None
    assert series.values.tolist() == [300.0, 320.0, 330.0]
    assert series.end == START + 3 * HOUR
    assert history.series("FR") is None


@pytest.mark.parametrize(
    ("bound", "first_hour_mean"),
    [
        pytest.param(130, 1.5, id="older-day-merged-into-hourly-means"),
        pytest.param(60, None, id="then-the-oldest-dropped"),
    ],
)
def test_each_zone_is_bounded_old_points_merged_into_hourly_means_first(
    bound: int, first_hour_mean: float | None
) -> None:
    history = IntensityHistory(points_per_zone=bound)
    # Two days of 15-minute data: 192 points, 0, 1, 2, 3 in each hour.
    history.record("DE", steps(START, 900, [float(i % 4) for i in range(192)]))
    series = history.series("DE")
    assert series is not None
    assert len(series) <= bound
    assert series.times[-1] == START + 191 * 900  # the newest day keeps its resolution
    assert series.values[-4:].tolist() == [0.0, 1.0, 2.0, 3.0]
    if first_hour_mean is None:
        assert series.start > START
    else:
        assert series.start == START
        assert series.mean(START, START + HOUR) == pytest.approx(first_hour_mean)
        assert series.times[1] - series.times[0] == HOUR


def test_the_least_recently_observed_zone_goes_first() -> None:
    history = IntensityHistory(max_zones=2)
    for zone in ("A", "B", "A", "C"):
        history.record(zone, steps(START, HOUR, [1.0]))
    assert history.zones == ["A", "C"]


def test_the_version_changes_only_with_new_data() -> None:
    history = IntensityHistory()
    history.record("DE", steps(START, HOUR, [300.0]))
    version = history.version
    history.record("DE", steps(START, HOUR, [300.0]))
    assert history.version == version
    history.record("DE", steps(START, HOUR, [301.0]))
    assert history.version > version


def test_a_dumped_history_loads_back_and_held_values_win() -> None:
    stored = IntensityHistory()
    stored.record("DE", steps(START, HOUR, [300.0, 310.0]))
    stored.record("GB", steps(START, 1800, [200.0]))
    fresh = IntensityHistory()
    fresh.record("DE", steps(START + HOUR, HOUR, [999.0]))
    fresh.load(stored.dump())
    de = fresh.series("DE")
    gb = fresh.series("GB")
    assert de is not None
    assert gb is not None
    assert de.values.tolist() == [300.0, 999.0]
    assert gb.end == START + 1800


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("{", "not JSON", id="not-json"),
        pytest.param('{"version": 2, "zones": {}}', "version 1", id="wrong-version"),
        pytest.param('{"version": 1, "zones": []}', "'zones' must be", id="zones-not-object"),
        pytest.param(
            '{"version": 1, "zones": {"DE": {"points": [[1, 2]]}}}',
            "zone 'DE'",
            id="zone-without-end",
        ),
        pytest.param(
            '{"version": 1, "zones": {"DE": {"end": 9, "points": [[5, 1], [5, 2]]}}}',
            "zone 'DE'",
            id="zone-duplicate-time",
        ),
    ],
)
def test_a_bad_stored_history_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(HistoryFormatError, match=problem) as refused:
        parse_document(text, source="configmap h")
    assert "configmap h" in str(refused.value)


async def test_observations_are_recorded_and_answer_for_a_provider_that_is_down() -> None:
    history = IntensityHistory()
    clock = lambda: float(START)  # noqa: E731
    working = RecordingProvider(
        ReplayProvider.from_settings(ReplaySettings(), clock=clock), history, clock=clock
    )
    await working.history("DE", START - 6 * HOUR, START)
    latest = await working.latest("DE")
    recorded = history.series("DE")
    assert recorded is not None
    assert recorded.covers(START - 6 * HOUR, latest.series.end)

    down = RecordingProvider(ReplayProvider({}, clock=clock), history, clock=clock)
    answer = await down.history("DE", START - 3 * HOUR, START)
    assert answer.kind == "history"
    assert answer.series.covers(START - 3 * HOUR, START)
    with pytest.raises(UnknownZoneError):
        await down.latest("DE")
    with pytest.raises(UnknownZoneError):
        await down.history("GB", START - 3 * HOUR, START)  # nothing recorded for GB


async def test_only_the_zones_it_is_told_to_record_enter_the_history() -> None:
    history = IntensityHistory()
    clock = lambda: float(START)  # noqa: E731
    wanted = {"DE"}
    provider = RecordingProvider(
        ReplayProvider.from_settings(ReplaySettings(), clock=clock),
        history,
        clock=clock,
        records=wanted.__contains__,
    )
    for zone in ("DE", "GB"):
        await provider.latest(zone)
        await provider.history(zone, START - 6 * HOUR, START)
    assert history.series("DE") is not None
    assert history.series("GB") is None  # fetched for someone else, not recorded
    wanted.add("GB")
    await provider.latest("GB")
    assert history.series("GB") is not None

"""Replay: hour-of-week time shift, the embedded data, DACF forecasts, bad files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from provider_fakes import FakeClock

from webhook.carbon.base import ProviderConfigError, ProviderError, UnknownZoneError
from webhook.carbon.replay import (
    EMBEDDED_DIR,
    WEEK_S,
    ReplayProvider,
    ReplaySettings,
    ReplayTrack,
    first_monday_at_or_after,
)
from webhook.core.datafiles import load_carbon_file
from webhook.core.series import StepSeries, from_epoch, to_epoch

HOUR = 3600
EM_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)
# A Wednesday, so the loop starts at the following Monday.
FILE_START = to_epoch(datetime(2023, 3, 1, tzinfo=UTC))


def em_file(path: Path, hours: int, zone: str = "XX", start: int = FILE_START) -> Path:
    """An export whose LCA value is the hour index (so replayed values reveal their source)."""
    lines = [EM_HEADER]
    for i in range(hours):
        when = from_epoch(start + i * HOUR).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{when},Nowhere,Nowhere,{zone},{i / 2},{i},0,0,test,false,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dacf_file(path: Path, hours: int, start: int = FILE_START) -> Path:
    lines = [",UTC time,carbon_intensity,carbon_from_src_forecasts"]
    for i in range(hours):
        when = from_epoch(start + i * HOUR).strftime("%Y-%m-%d %H:%M:%S+00:00")
        lines.append(f"{i},{when},{i},{i + 1000}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def track(tmp_path: Path, hours: int = 3 * 7 * 24) -> ReplayTrack:
    return ReplayTrack.from_file("XX", load_carbon_file(em_file(tmp_path / "xx.csv", hours)))


def test_the_loop_starts_at_the_first_monday_and_spans_whole_weeks(tmp_path: Path) -> None:
    replay = track(tmp_path, hours=3 * 7 * 24)  # Wed + 3 weeks: two whole weeks from Monday
    assert from_epoch(replay.origin) == datetime(2023, 3, 6, tzinfo=UTC)
    assert from_epoch(replay.origin).weekday() == 0
    assert replay.loop_s == 2 * WEEK_S


@given(moment=st.integers(min_value=0, max_value=4_000_000_000))
def test_first_monday_at_or_after(moment: int) -> None:
    monday = first_monday_at_or_after(moment)
    assert from_epoch(monday).weekday() == 0
    assert from_epoch(monday).time().isoformat() == "00:00:00"
    assert 0 <= monday - moment < WEEK_S


@given(wall=st.integers(min_value=1_600_000_000, max_value=2_500_000_000))
def test_now_replays_the_same_hour_of_week_inside_the_data(wall: int) -> None:
    data_start = to_epoch(datetime(2023, 3, 6, tzinfo=UTC))
    replay = ReplayTrack("XX", _series(data_start, 2 * 7 * 24), None, data_start, 2 * WEEK_S, "x")
    data_time = replay.data_time(wall)
    assert (data_time - wall) % WEEK_S == 0
    assert replay.origin <= data_time < replay.origin + replay.loop_s


def _series(start: int, hours: int) -> StepSeries:
    return StepSeries.regular(start, HOUR, np.arange(hours, dtype=float))


async def test_latest_is_the_recorded_step_of_the_same_weekday_and_hour(tmp_path: Path) -> None:
    path = em_file(tmp_path / "xx.csv", 3 * 7 * 24)
    # Tuesday 2024-05-14 14:20 UTC -> the file's Tuesday 2023-03-07 14:00, hour index 6*24+14.
    clock = FakeClock(to_epoch(datetime(2024, 5, 14, 14, 20, tzinfo=UTC)))
    replay = ReplayProvider.from_settings(
        ReplaySettings(files={"XX": path}, embedded=False), clock=clock
    )
    latest = await replay.latest("XX")
    assert latest.series.values.tolist() == [6 * 24 + 14]
    assert from_epoch(latest.series.start) == datetime(2024, 5, 14, 14, tzinfo=UTC)
    assert latest.series.end - latest.series.start == HOUR


async def test_a_window_across_the_loop_end_continues_from_the_loop_start(tmp_path: Path) -> None:
    path = em_file(tmp_path / "xx.csv", 3 * 7 * 24)
    replay_track = track(tmp_path)
    loop_end_wall = replay_track.origin + 10 * replay_track.loop_s  # a wall time at the seam
    clock = FakeClock(loop_end_wall - 2 * HOUR)
    replay = ReplayProvider.from_settings(
        ReplaySettings(files={"XX": path}, embedded=False, forecast_error_pct=0), clock=clock
    )
    forecast = await replay.forecast("XX", 4 * HOUR)
    first = (replay_track.origin - FILE_START) // HOUR
    last = first + 2 * 7 * 24 - 1
    assert forecast.series.values.tolist() == [last - 1, last, first, first + 1]
    assert np.all(np.diff(forecast.series.times) == HOUR)
    assert forecast.series.end == clock.now + 4 * HOUR


async def test_dacf_forecast_is_the_recorded_day_ahead_forecast(tmp_path: Path) -> None:
    path = dacf_file(tmp_path / "de.csv", 2 * 7 * 24)
    clock = FakeClock(to_epoch(datetime(2024, 5, 14, 14, 0, tzinfo=UTC)))
    replay = ReplayProvider.from_settings(
        ReplaySettings(files={"DE-DACF": path}, embedded=False), clock=clock
    )
    actual = (await replay.latest("DE-DACF")).series.values[0]
    forecast = await replay.forecast("DE-DACF", 2 * HOUR)
    assert forecast.series.values.tolist() == [actual + 1000, actual + 1001]
    assert forecast.estimated is True


async def test_history_is_recorded_values_up_to_the_current_step(tmp_path: Path) -> None:
    path = em_file(tmp_path / "xx.csv", 3 * 7 * 24)
    clock = FakeClock(to_epoch(datetime(2024, 5, 14, 14, 20, tzinfo=UTC)))
    replay = ReplayProvider.from_settings(
        ReplaySettings(files={"XX": path}, embedded=False), clock=clock
    )
    history = await replay.history("XX", int(clock.now) - 3 * HOUR, int(clock.now) + 5 * HOUR)
    assert history.series.values.tolist() == [6 * 24 + 11, 6 * 24 + 12, 6 * 24 + 13, 6 * 24 + 14]
    with pytest.raises(ProviderError, match="lies in the future"):
        await replay.history("XX", int(clock.now) + 2 * HOUR, int(clock.now) + 5 * HOUR)


def test_the_embedded_data_serves_eight_zones_with_whole_weeks() -> None:
    replay = ReplayProvider.from_settings(ReplaySettings())
    assert replay.zones == [
        "DE",
        "ES",
        "GB",
        "NO",
        "SG",
        "US-CAL-CISO",
        "US-MIDA-PJM",
        "US-TEX-ERCO",
    ]
    for zone in replay.zones:
        assert replay.track(zone).loop_s == 8 * WEEK_S
    assert (EMBEDDED_DIR.parent / "ATTRIBUTION.md").read_text().count("Electricity Maps") >= 1


async def test_embedded_direct_column_is_selectable() -> None:
    clock = FakeClock()
    lca = await ReplayProvider.from_settings(ReplaySettings(), clock=clock).latest("DE")
    direct = await ReplayProvider.from_settings(
        ReplaySettings(column="direct"), clock=clock
    ).latest("DE")
    assert direct.series.values[0] < lca.series.values[0]


async def test_an_unknown_zone_lists_the_available_ones() -> None:
    replay = ReplayProvider.from_settings(ReplaySettings())
    with pytest.raises(UnknownZoneError, match="no replay data for zone 'FR'; available: DE, ES"):
        await replay.latest("FR")


def test_a_file_shorter_than_a_week_from_monday_is_a_configuration_error(tmp_path: Path) -> None:
    path = em_file(tmp_path / "short.csv", 8 * 24)
    with pytest.raises(ProviderConfigError, match="at least one whole week"):
        ReplayProvider.from_settings(ReplaySettings(files={"XX": path}, embedded=False))


def test_a_broken_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text("nothing,useful\n1,2\n", encoding="utf-8")
    with pytest.raises(ProviderConfigError, match=r"broken\.csv.*unknown format"):
        ReplayProvider.from_settings(ReplaySettings(files={"XX": path}, embedded=False))


async def test_an_export_is_forecast_with_an_error_that_grows_with_the_lead(tmp_path: Path) -> None:
    """Electricity Maps exports have no forecast: the replay's is the recorded future with a
    realistic error — none for the current step, growing with the lead, the same on every
    fetch within one step, estimated."""
    path = em_file(tmp_path / "xx.csv", 3 * 7 * 24)
    clock = FakeClock(track(tmp_path).origin + 30 * HOUR + 600)
    settings = ReplaySettings(files={"XX": path}, embedded=False, forecast_error_pct=10)
    replay = ReplayProvider.from_settings(settings, clock=clock)
    exact = ReplayProvider.from_settings(
        settings.model_copy(update={"forecast_error_pct": 0}), clock=clock
    )
    noisy = await replay.forecast("XX", 24 * HOUR)
    again = await replay.forecast("XX", 24 * HOUR)
    truth = (await exact.forecast("XX", 24 * HOUR)).series.values
    relative = noisy.series.values / truth - 1
    assert relative[0] == 0.0
    assert np.any(np.abs(relative[1:]) > 0.001)
    assert np.all(np.abs(relative) < 0.6)
    assert noisy.series.values.tolist() == again.series.values.tolist()
    assert noisy.estimated


def vintages_file(path: Path, issues: dict[int, list[float]], step: int = HOUR // 2) -> Path:
    """Forecast vintages: issue time -> values from that time on, one per ``step``."""
    lines = ["issued_at,target_time,value"]
    for issued, values in issues.items():
        for index, value in enumerate(values):
            target = from_epoch(issued + index * step).strftime("%Y-%m-%dT%H:%MZ")
            lines.append(f"{from_epoch(issued).strftime('%Y-%m-%dT%H:%MZ')},{target},{value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_vintages_serve_the_forecast_current_at_the_replayed_instant(
    tmp_path: Path,
) -> None:
    origin = track(tmp_path).origin
    first, second = origin + 30 * HOUR, origin + 31 * HOUR
    path = vintages_file(
        tmp_path / "v.csv", {first: [500, 501, 502, 503, 504, 505], second: [700, 701, 702]}
    )
    loop_shift = 2 * WEEK_S  # the file loops every two weeks: replay the second loop
    clock = FakeClock(origin + loop_shift + 30 * HOUR + 40 * 60)
    replay = ReplayProvider.from_settings(
        ReplaySettings(
            files={"XX": em_file(tmp_path / "xx.csv", 3 * 7 * 24)},
            vintages={"XX": path},
            embedded=False,
        ),
        clock=clock,
    )
    forecast = await replay.forecast("XX", 1 * HOUR)
    # From the half hour in force (06:30), as the first vintage issued it, in wall time.
    assert forecast.series.values.tolist() == [501, 502, 503]
    assert int(forecast.series.times[0]) == origin + loop_shift + 30 * HOUR + 1800
    assert forecast.issued_at == first + loop_shift
    assert forecast.estimated is True

    clock.advance(30 * 60)  # 07:10: the second vintage has been issued
    forecast = await replay.forecast("XX", 1 * HOUR)
    assert forecast.series.values.tolist() == [700, 701, 702]
    assert forecast.issued_at == second + loop_shift

    clock.advance(2 * HOUR)  # past the newest vintage's end
    with pytest.raises(ProviderError, match=r"v.csv: no forecast vintage covers .*ended before"):
        await replay.forecast("XX", HOUR)
    clock.now = origin + loop_shift + 29 * HOUR
    with pytest.raises(ProviderError, match=r"none issued by then"):
        await replay.forecast("XX", HOUR)
    # Actuals still come from the data file.
    assert (await replay.latest("XX")).series.values.tolist() == [29 + 5 * 24]


def test_vintages_for_a_zone_without_data_are_a_config_error(tmp_path: Path) -> None:
    path = vintages_file(tmp_path / "v.csv", {FILE_START: [1, 2]})
    with pytest.raises(ProviderConfigError, match=r"forecast vintages for \['YY'\] but no data"):
        ReplayProvider.from_settings(ReplaySettings(vintages={"YY": path}, embedded=False))


def test_a_damaged_vintages_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("issued_at,target_time,value\n2023-03-06T00:00Z,2023-03-06T00:00Z,x\n")
    with pytest.raises(ProviderConfigError, match=r"v.csv:2: column 'value': 'x' is not"):
        ReplayProvider.from_settings(
            ReplaySettings(
                files={"XX": em_file(tmp_path / "xx.csv", 3 * 7 * 24)},
                vintages={"XX": path},
                embedded=False,
            )
        )

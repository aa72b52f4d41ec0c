"""Price models (flat, time-of-use, hourly series), run costs, price files and settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import ValidationError

from webhook.core.cost import (
    CostSettings,
    FlatPrice,
    PriceError,
    SeriesPrice,
    TimeOfUsePrice,
    TouWindow,
    build_price_model,
    load_price_series,
    parse_days,
)
from webhook.core.datafiles import DataFileError
from webhook.core.series import StepSeries, to_epoch

LA = ZoneInfo("America/Los_Angeles")
SHARED_PRICES = Path(__file__).resolve().parents[3] / "shared" / "data" / "prices"
PRICE_HEADER = "Datetime (UTC),Datetime (Local),Price (USD/MWh)\n"

PEAK, NIGHT, DEFAULT = 0.50, 0.10, 0.20


def tariff(zone: str = "America/Los_Angeles", **extra: Any) -> TimeOfUsePrice:
    """Weekday peak 16-21, every night 22-6, 0.20 otherwise."""
    model = build_price_model(
        CostSettings(
            kind="tou",
            tou={
                "timezone": zone,
                "default_usd_per_kwh": DEFAULT,
                "windows": [
                    {"days": ["weekdays"], "start_hour": 16, "end_hour": 21, "usd_per_kwh": PEAK},
                    {"days": ["daily"], "start_hour": 22, "end_hour": 6, "usd_per_kwh": NIGHT},
                    *extra.get("windows", []),
                ],
            },
        )
    )
    assert isinstance(model, TimeOfUsePrice)
    return model


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LA)


def seconds_at(series: StepSeries, price: float) -> float:
    """Seconds the series spends at ``price``."""
    edges = np.append(series.times, series.end)
    return float(np.sum(np.diff(edges)[series.values == price]))


# --- Flat ------------------------------------------------------------------------------------


def test_a_flat_price_costs_energy_times_price() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert FlatPrice(0.12).cost_usd(2.5, start, 5400) == pytest.approx(0.30)


def test_a_zero_length_run_costs_energy_times_the_price_then() -> None:
    assert FlatPrice(0.12).cost_usd(1.0, 1_700_000_000, 0) == pytest.approx(0.12)


# --- Time of use -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "price"),
    [
        pytest.param(local(2024, 6, 3, 17, 0), PEAK, id="monday-peak"),
        pytest.param(local(2024, 6, 3, 15, 59), DEFAULT, id="before-peak"),
        pytest.param(local(2024, 6, 3, 21, 0), DEFAULT, id="peak-end-exclusive"),
        pytest.param(local(2024, 6, 8, 17, 0), DEFAULT, id="saturday-no-peak"),
        pytest.param(local(2024, 6, 8, 23, 0), NIGHT, id="saturday-night"),
        pytest.param(local(2024, 6, 10, 2, 0), NIGHT, id="monday-morning-from-sunday-window"),
        pytest.param(local(2024, 6, 10, 5, 59), NIGHT, id="night-until-six"),
        pytest.param(local(2024, 6, 10, 6, 0), DEFAULT, id="morning"),
    ],
)
def test_time_of_use_prices_follow_local_weekdays_and_hours(moment: datetime, price: float) -> None:
    start = to_epoch(moment)
    assert tariff().series(start, start + 60).value_at(start) == price


@pytest.mark.parametrize(
    ("day", "night_hours"),
    [
        pytest.param(datetime(2024, 6, 15), 8, id="ordinary-night"),
        pytest.param(datetime(2024, 3, 9), 7, id="spring-forward-night"),
        pytest.param(datetime(2024, 11, 2), 9, id="fall-back-night"),
    ],
)
def test_time_of_use_windows_are_dst_correct(day: datetime, night_hours: int) -> None:
    # From noon to noon the next day: the 22:00-06:00 window lasts 8 h of wall time, which is
    # 7 real hours on the night clocks spring forward and 9 on the night they fall back.
    noon = day.replace(hour=12, tzinfo=LA)
    next_noon = (day + timedelta(days=1)).replace(hour=12, tzinfo=LA)
    series = tariff().series(noon, next_noon)
    assert seconds_at(series, NIGHT) == night_hours * 3600


def test_a_run_over_the_fall_back_hour_pays_for_its_real_duration() -> None:
    start = local(2024, 11, 3, 0, 0)  # 00:00 PDT; 06:00 PST is 7 real hours later
    energy_kwh = 7.0
    assert tariff().cost_usd(energy_kwh, start, 7 * 3600) == pytest.approx(energy_kwh * NIGHT)


@pytest.mark.parametrize(
    ("zone", "utc_start"),
    [
        pytest.param("Asia/Kolkata", datetime(2024, 6, 3, 3, 30, tzinfo=UTC), id="half-hour-zone"),
        pytest.param("Asia/Kathmandu", datetime(2024, 6, 3, 3, 15, tzinfo=UTC), id="45-min-zone"),
        pytest.param("Europe/Berlin", datetime(2024, 6, 3, 7, 0, tzinfo=UTC), id="summer-time"),
    ],
)
def test_windows_start_at_local_time_in_odd_offset_zones(zone: str, utc_start: datetime) -> None:
    model = tariff(
        zone, windows=[{"days": ["mon"], "start_hour": 9, "end_hour": 9.5, "usd_per_kwh": 0.7}]
    )
    start = to_epoch(utc_start)
    series = model.series(start - 3600, start + 3600)
    assert series.value_at(start - 1) == DEFAULT
    assert series.value_at(start) == 0.7
    assert series.value_at(start + 1800) == DEFAULT


def test_the_first_matching_window_wins() -> None:
    model = TimeOfUsePrice(
        windows=(
            TouWindow(frozenset({0}), 17 * 60, 18 * 60, 1.0),
            TouWindow(frozenset(range(7)), 0, 1440, 0.3),
        ),
        timezone=ZoneInfo("UTC"),
        default_usd_per_kwh=0.2,
    )
    monday = to_epoch(datetime(2024, 6, 3, tzinfo=UTC))
    series = model.series(monday, monday + 86400)
    assert series.value_at(monday + 17 * 3600) == 1.0
    assert series.value_at(monday + 16 * 3600) == 0.3


def test_time_of_use_cost_integrates_over_window_edges() -> None:
    # Monday 15:30-16:30 local: half an hour at 0.20, half at 0.50.
    start = local(2024, 6, 3, 15, 30)
    assert tariff().cost_usd(2.0, start, 3600) == pytest.approx(2.0 * (DEFAULT + PEAK) / 2)


# --- Price series ----------------------------------------------------------------------------


def write_prices(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(PRICE_HEADER + "".join(f"{t},,{p}\n" for t, p in rows))
    return path


def hours(start: str, *prices: str) -> list[tuple[str, str]]:
    first = datetime.fromisoformat(start)
    return [((first + timedelta(hours=i)).isoformat(), p) for i, p in enumerate(prices)]


def test_series_prices_convert_mwh_to_kwh_and_allow_negative_prices(tmp_path: Path) -> None:
    path = write_prices(tmp_path / "p.csv", hours("2023-01-01T00:00:00+00:00", "100", "-20", "50"))
    model = SeriesPrice(load_price_series([path]))
    start = datetime(2023, 1, 1, tzinfo=UTC)
    assert model.series(start, to_epoch(start) + 3600).value_at(to_epoch(start)) == 0.1
    # 1.5 h: one hour at 0.10 and half an hour at -0.02 USD/kWh; 3 kWh spread evenly.
    assert model.cost_usd(3.0, start, 5400) == pytest.approx(3.0 * (0.1 * 1 + -0.02 * 0.5) / 1.5)


def test_a_window_outside_the_series_is_an_error(tmp_path: Path) -> None:
    path = write_prices(tmp_path / "p.csv", hours("2023-01-01T00:00:00+00:00", "100", "90"))
    model = SeriesPrice(load_price_series([path]))
    with pytest.raises(PriceError, match="outside it"):
        model.cost_usd(1.0, datetime(2023, 1, 1, 1, tzinfo=UTC), 7200)


def test_contiguous_files_join_in_time_order(tmp_path: Path) -> None:
    late = write_prices(tmp_path / "b.csv", hours("2023-01-01T02:00:00+00:00", "30", "40"))
    early = write_prices(tmp_path / "a.csv", hours("2023-01-01T00:00:00+00:00", "10", "20"))
    series = load_price_series([late, early])
    assert series.values.tolist() == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert series.end - series.start == 4 * 3600


def test_files_with_a_hole_between_them_are_refused(tmp_path: Path) -> None:
    first = write_prices(tmp_path / "a.csv", hours("2023-01-01T00:00:00+00:00", "10", "20"))
    second = write_prices(tmp_path / "b.csv", hours("2023-01-01T05:00:00+00:00", "30", "40"))
    with pytest.raises(DataFileError, match="files must be contiguous") as caught:
        load_price_series([first, second])
    assert caught.value.path == second


T0 = "2023-01-01 00:00:00+00:00"
T1 = "2023-01-01 01:00:00+00:00"
T2 = "2023-01-01 02:00:00+00:00"
T4 = "2023-01-01 04:00:00+00:00"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        pytest.param("time,price\nx,1\n", 1, "missing column", id="missing-columns"),
        pytest.param(PRICE_HEADER + f"{T0},,10\nyesterday,,20\n", 3, "unparseable time",
                     id="bad-time"),
        pytest.param(PRICE_HEADER + f"{T0},,10\n{T1},,cheap\n", 3, "'cheap' is not a number",
                     id="bad-price"),
        pytest.param(PRICE_HEADER + f"{T0},,10\n{T1},,nan\n", 3, "non-finite", id="nan-price"),
        pytest.param(PRICE_HEADER + f"{T0},,10\n{T0},,20\n", 3, "duplicate time", id="duplicate"),
        pytest.param(PRICE_HEADER + f"{T1},,10\n{T0},,20\n", 3, "unsorted", id="unsorted"),
        pytest.param(PRICE_HEADER + f"{T0},,10\n{T1},,20\n{T4},,30\n", 4, "gap: 3 h", id="gap"),
        pytest.param(PRICE_HEADER + f"{T0},,10\n{T1}\n", 3, "wrong number of fields",
                     id="short-row"),
        pytest.param(PRICE_HEADER + f"{T0},,10\n", None, "at least 2 rows", id="one-row"),
    ],
)  # fmt: skip
def test_a_bad_price_file_names_the_file_line_and_problem(
    tmp_path: Path, text: str, line: int | None, problem: str
) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(text)
    with pytest.raises(DataFileError, match=problem) as caught:
        load_price_series([path])
    assert (caught.value.path, caught.value.line) == (path, line)


def test_a_missing_price_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        load_price_series([tmp_path / "absent.csv"])


def test_the_shared_caiso_prices_load_as_two_contiguous_years() -> None:
    files = [SHARED_PRICES / f"US-CAL-CISO_electricity_prices_{y}.csv" for y in (2022, 2023)]
    if not all(f.exists() for f in files):
        pytest.skip("shared price data not present")
    series = load_price_series(files)
    assert len(series) == 2 * 8760
    first_2023 = to_epoch(datetime(2023, 1, 1, tzinfo=UTC))
    assert series.value_at(first_2023) == pytest.approx(114.9452 / 1000)


# --- Settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "days"),
    [
        pytest.param(["weekdays"], {0, 1, 2, 3, 4}, id="weekdays"),
        pytest.param(["weekends"], {5, 6}, id="weekends"),
        pytest.param(["Mon", "friday"], {0, 4}, id="short-and-full-names"),
        pytest.param(["daily"], set(range(7)), id="daily"),
    ],
)
def test_day_names_parse(names: list[str], days: set[int]) -> None:
    assert parse_days(names) == days


WINDOW = {"days": ["weekdays"], "start_hour": 16, "end_hour": 21, "usd_per_kwh": 0.5}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"kind": "flat"}, "kind='flat' needs flat_usd_per_kwh", id="flat-no-price"),
        pytest.param({"kind": "series"}, "needs series_files", id="series-no-files"),
        pytest.param({"kind": "tou"}, "needs tou", id="tou-no-tariff"),
        pytest.param({"kind": "none", "flat_usd_per_kwh": 0.1}, "given but kind='none'",
                     id="stray-price"),
        pytest.param({"kind": "flat", "flat_usd_per_kwh": float("inf")}, "must be finite",
                     id="infinite-price"),
        pytest.param({"kind": "tou",
                      "tou": {"timezone": "Mars/Olympus", "default_usd_per_kwh": 0.2}},
                     "unknown IANA time zone 'Mars/Olympus'", id="bad-zone"),
        pytest.param({"kind": "tou", "tou": {"timezone": "UTC", "default_usd_per_kwh": 0.2,
                                             "windows": [{**WINDOW, "start_hour": 16.1}]}},
                     "not on a quarter hour", id="off-quarter-hour"),
        pytest.param({"kind": "tou", "tou": {"timezone": "UTC", "default_usd_per_kwh": 0.2,
                                             "windows": [{**WINDOW, "days": ["funday"]}]}},
                     "unknown day 'funday'", id="bad-day"),
        pytest.param({"kind": "tou", "tou": {"timezone": "UTC", "default_usd_per_kwh": 0.2,
                                             "windows": [{**WINDOW, "end_hour": 16}]}},
                     r"windows\[0\]: window start and end are equal", id="empty-window"),
        pytest.param({"kind": "gas"}, "kind", id="unknown-kind"),
    ],
)  # fmt: skip
def test_bad_cost_settings_are_refused_with_the_problem(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        CostSettings(**settings)


def test_cost_settings_build_the_matching_model(tmp_path: Path) -> None:
    path = write_prices(tmp_path / "p.csv", hours("2023-01-01T00:00:00+00:00", "10", "20"))
    assert build_price_model(CostSettings()) is None
    assert isinstance(build_price_model(CostSettings(kind="flat", flat_usd_per_kwh=0.1)), FlatPrice)
    assert isinstance(
        build_price_model(CostSettings(kind="series", series_files=[path])), SeriesPrice
    )

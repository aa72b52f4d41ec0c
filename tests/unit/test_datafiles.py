"""Data files: both formats load, and every kind of damage is named with file and line."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from webhook.core.datafiles import DataFileError, load_carbon_file, load_vintage_file
from webhook.core.series import from_epoch

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "carbon"
EM_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)


def em_row(time: str, lca: str = "300", zone: str = "DE", estimated: str = "false") -> str:
    return f"{time},Germany,Germany,{zone},250,{lca},50,40,src,{estimated},"


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_electricity_maps_export_loads_lca_by_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            EM_HEADER,
            em_row("2022-01-01 00:00:00", "300"),
            em_row("2022-01-01 01:00:00", "200", estimated="true"),
        ],
    )
    data = load_carbon_file(path)
    assert data.format == "electricitymaps"
    assert data.zone == "DE"
    assert data.actual.values.tolist() == [300, 200]
    assert data.actual.end - data.actual.start == 7200
    assert data.estimated_share == 0.5
    assert load_carbon_file(path, column="direct").actual.values.tolist() == [250, 250]


def test_dacf_loads_actuals_and_forecast(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            ",UTC time,carbon_intensity,carbon_from_src_forecasts",
            "0,2021-07-01 00:00:00+00:00,100,110",
            "1,2021-07-01 01:00:00+00:00,120,115",
        ],
    )
    data = load_carbon_file(path)
    assert data.format == "dacf"
    assert data.zone is None
    assert data.forecast is not None
    assert data.forecast.values.tolist() == [110, 115]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param(
            [em_row("2022-01-01 00:00:00"), em_row("2022-01-01 00:00:00")],
            r"data.csv:3: duplicate time",
            id="duplicate",
        ),
        pytest.param(
            [em_row("2022-01-01 01:00:00"), em_row("2022-01-01 00:00:00")],
            r"data.csv:3: unsorted",
            id="unsorted",
        ),
        pytest.param(
            [
                em_row("2022-01-01 00:00:00"),
                em_row("2022-01-01 01:00:00"),
                em_row("2022-01-01 04:00:00"),
            ],
            r"data.csv:4: gap: 3 h",
            id="gap",
        ),
        pytest.param(
            [em_row("2022-01-01 00:00:00", "nan"), em_row("2022-01-01 01:00:00")],
            r"data.csv:2: column .*non-finite",
            id="nan",
        ),
        pytest.param(
            [em_row("2022-01-01 00:00:00", "abc"), em_row("2022-01-01 01:00:00")],
            r"data.csv:2: column .*'abc' is not a number",
            id="not a number",
        ),
        pytest.param(
            [em_row("yesterday"), em_row("2022-01-01 01:00:00")],
            r"data.csv:2: unparseable time 'yesterday'",
            id="bad time",
        ),
        pytest.param(
            [em_row("2022-01-01 00:00:00"), em_row("2022-01-01 01:00:00", zone="FR")],
            r"several zones",
            id="two zones",
        ),
        pytest.param([em_row("2022-01-01 00:00:00")], r"at least 2 rows", id="one row"),
    ],
)
def test_damaged_files_name_the_line_and_problem(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    with pytest.raises(DataFileError, match=message):
        load_carbon_file(write(tmp_path, [EM_HEADER, *rows]))


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, ["Datetime (UTC),Zone Id", "2022-01-01 00:00:00,DE"])
    with pytest.raises(DataFileError, match=r"missing column.*LCA"):
        load_carbon_file(path)


def test_unknown_format_lists_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"unknown format: expected a 'Datetime \(UTC\)'"):
        load_carbon_file(write(tmp_path, ["time,value", "1,2"]))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope.csv: no such file"):
        load_carbon_file(tmp_path / "nope.csv")


@pytest.mark.skipif(not SHARED.exists(), reason="shared data not present")
def test_the_shared_year_files_load_whole() -> None:
    data = load_carbon_file(SHARED / "electricitymaps" / "US-CAL-CISO_2022_hourly.csv")
    assert len(data.actual) == 8760
    assert data.zone == "US-CAL-CISO"


# --- Forecast vintages --------------------------------------------------------------------

VINTAGE_HEADER = "issued_at,target_time,value"
UKCI_VINTAGES = Path(__file__).resolve().parents[1] / "data" / "carbon" / "ukci_gb_vintages.csv"


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_the_ukci_vintages_converted_from_the_wire_examples_load() -> None:
    vintages = load_vintage_file(UKCI_VINTAGES)
    assert [from_epoch(at).isoformat() for at in vintages.issued] == [
        "2018-01-20T12:00:00+00:00",
        "2020-05-24T20:30:00+00:00",
    ]
    first, second = vintages.vintages
    # The one-row vintage takes the file's half-hour step from the other.
    assert first.values.tolist() == [266.0]
    assert first.end - int(first.times[0]) == 1800
    assert second.values.tolist() == [146.0, 148.0, 148.0]
    assert second.end == epoch("2020-05-24T22:00")


def test_the_converter_writes_what_is_committed() -> None:
    examples = SHARED.parent / "api-examples"
    if not examples.exists():
        pytest.skip("shared data not present")
    root = Path(__file__).resolve().parents[2]
    converted = subprocess.run(
        [
            sys.executable,
            str(root / "bench" / "ukci_vintages.py"),
            str(examples / "ukci_intensity_docs.json"),
            str(examples / "ukci_intensity_fw24h_emoncms_excerpt.json"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    text = converted.stdout
    assert text == UKCI_VINTAGES.read_text(encoding="utf-8")


def vintage_file(tmp_path: Path, rows: list[str]) -> Path:
    return write(tmp_path, [VINTAGE_HEADER, *rows])


def test_current_is_the_newest_issued_by_then_and_received_lets_the_newest_win(
    tmp_path: Path,
) -> None:
    path = vintage_file(
        tmp_path,
        [
            "2026-01-05T00:00Z,2026-01-05T00:00Z,100",
            "2026-01-05T00:00Z,2026-01-05T01:00Z,110",
            "2026-01-05T00:00Z,2026-01-05T02:00Z,120",
            "2026-01-05T01:00Z,2026-01-05T01:00Z,200",
            "2026-01-05T01:00Z,2026-01-05T02:00Z,210",
            "2026-01-05T01:00Z,2026-01-05T03:00Z,220",
        ],
    )
    vintages = load_vintage_file(path)
    assert vintages.current(epoch("2026-01-04T23:59")) is None
    issued, vintage = vintages.current(epoch("2026-01-05T00:59")) or (0, None)
    assert issued == epoch("2026-01-05T00:00")
    assert vintage is not None
    assert vintage.values.tolist() == [100, 110, 120]
    # Before the second issue only the first is known; after it, the second wins its targets.
    early = vintages.received(epoch("2026-01-05T00:30"), epoch("2026-01-05T00:00"), 2**40)
    assert early is not None
    assert early.values.tolist() == [100, 110, 120]
    late = vintages.received(epoch("2026-01-05T01:00"), epoch("2026-01-05T00:00"), 2**40)
    assert late is not None
    assert late.values.tolist() == [100, 200, 210, 220]
    assert late.end == epoch("2026-01-05T04:00")
    assert vintages.received(epoch("2026-01-05T01:00"), epoch("2026-01-06T00:00"), 2**40) is None


def test_received_keeps_the_unbroken_stretch_that_reaches_furthest(tmp_path: Path) -> None:
    path = vintage_file(
        tmp_path,
        [
            "2026-01-05T00:00Z,2026-01-05T00:00Z,100",
            "2026-01-05T00:00Z,2026-01-05T01:00Z,110",
            "2026-01-05T05:00Z,2026-01-05T05:00Z,300",
            "2026-01-05T05:00Z,2026-01-05T06:00Z,310",
        ],
    )
    got = load_vintage_file(path).received(epoch("2026-01-05T05:00"), 0, 2**40)
    assert got is not None
    assert (got.times - epoch("2026-01-05T05:00")).tolist() == [0, 3600]
    assert got.values.tolist() == [300, 310]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param(
            ["2026-01-05T01:00Z,2026-01-05T01:00Z,1", "2026-01-05T00:00Z,2026-01-05T01:00Z,1"],
            r"data.csv:3: unsorted: issued_at earlier",
            id="issues unsorted",
        ),
        pytest.param(
            ["2026-01-05T00:00Z,2026-01-05T01:00Z,1", "2026-01-05T00:00Z,2026-01-05T01:00Z,2"],
            r"data.csv:3: duplicate target_time within the vintage issued at 2026-01-05T00:00Z",
            id="duplicate target",
        ),
        pytest.param(
            ["2026-01-05T00:00Z,2026-01-05T02:00Z,1", "2026-01-05T00:00Z,2026-01-05T01:00Z,2"],
            r"data.csv:3: unsorted target_time",
            id="targets unsorted",
        ),
        pytest.param(
            [
                "2026-01-05T00:00Z,2026-01-05T00:00Z,1",
                "2026-01-05T00:00Z,2026-01-05T01:00Z,1",
                "2026-01-05T00:00Z,2026-01-05T02:00Z,1",
                "2026-01-05T00:00Z,2026-01-05T05:00Z,1",
            ],
            r"data.csv:5: gap: 3 h between targets where the vintage's step is 1 h",
            id="gap",
        ),
        pytest.param(
            ["2026-01-05T00:00Z,2026-01-05T00:00Z,-4", "2026-01-05T00:00Z,2026-01-05T01:00Z,1"],
            r"data.csv:2: column 'value': negative intensity -4",
            id="negative",
        ),
        pytest.param(
            ["2026-01-05T00:00Z,2026-01-05T00:00Z,inf", "2026-01-05T00:00Z,2026-01-05T01:00Z,1"],
            r"data.csv:2: column 'value': non-finite",
            id="infinite",
        ),
        pytest.param(
            ["2026-01-05T05:00Z,2026-01-05T00:00Z,1", "2026-01-05T05:00Z,2026-01-05T01:00Z,1"],
            r"data.csv:2: target_time more than one step before issued_at",
            id="forecast of the past",
        ),
        pytest.param(
            ["soon,2026-01-05T00:00Z,1"],
            r"data.csv:2: unparseable time 'soon'",
            id="bad time",
        ),
        pytest.param(
            ["2026-01-05T00:00Z,2026-01-05T00:00Z,1", "2026-01-05T01:00Z,2026-01-05T01:00Z,1"],
            r"every vintage has a single row",
            id="no step",
        ),
        pytest.param([], r"no forecast rows", id="empty"),
        pytest.param(
            ["2026-01-05T00:00Z,2026-01-05T00:00Z"], r"wrong number of fields", id="short"
        ),
    ],
)
def test_damaged_vintage_files_name_the_line_and_problem(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    with pytest.raises(DataFileError, match=message):
        load_vintage_file(vintage_file(tmp_path, rows))


def test_a_vintage_file_without_its_columns_says_which(tmp_path: Path) -> None:
    path = write(tmp_path, ["issued,target_time,value", "2026-01-05T00:00Z,2026-01-05T00:00Z,1"])
    with pytest.raises(DataFileError, match=r"missing column\(s\) \['issued_at'\].*issued_at,"):
        load_vintage_file(path)

"""Data files: both formats load, and every kind of damage is named with file and line."""

from pathlib import Path

import pytest

from webhook.core.datafiles import DataFileError, load_carbon_file

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

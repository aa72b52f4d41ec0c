"""The replay simulator: traces, policies and metrics on small hand-checked series."""

import json
import subprocess
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from webhook.cli.main import main
from webhook.core.datafiles import load_vintage_file
from webhook.core.planner import PlannerSettings
from webhook.core.series import StepSeries
from webhook.sim import policies
from webhook.sim.metrics import emissions_g, evaluate, reduction_pct
from webhook.sim.policies import ForecastOracle
from webhook.sim.traces import (
    Job,
    TraceError,
    build_trace,
    csv_trace,
    local_to_epoch,
    whole_local_days,
)

H = 3600
T0 = int(datetime(2022, 6, 1, tzinfo=UTC).timestamp())
LA = ZoneInfo("America/Los_Angeles")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "carbon"


def hourly(*values: float) -> StepSeries:
    return StepSeries.regular(T0, H, list(values))


def job(
    arrival_h: float, duration_h: float = 1.0, max_delay_h: float = 3.0, kwh: float = 1.0
) -> Job:
    return Job(T0 + round(arrival_h * H), round(duration_h * H), round(max_delay_h * H), kwh)


class TestMetrics:
    def test_emissions_integrate_partial_hours(self) -> None:
        actual = hourly(100, 300)
        jobs = [job(0.5)]
        assert emissions_g(jobs, np.array([T0 + H // 2]), actual)[0] == pytest.approx(200.0)

    def test_hand_checked_policy_metrics(self) -> None:
        actual = hourly(400, 300, 100, 400, 400, 400, 400)
        jobs = [job(0), job(1, kwh=2.0)]
        immediate = policies.immediate(jobs, actual)
        immediate_g = emissions_g(jobs, immediate, actual)
        assert immediate_g.tolist() == [400.0, 600.0]
        oracle = policies.oracle(jobs, actual)
        assert (oracle - T0).tolist() == [2 * H, 2 * H]
        metrics = evaluate(
            jobs,
            starts=oracle,
            actual=actual,
            immediate_g=immediate_g,
            oracle_reduction_pct=70.0,
            zone=ZoneInfo("UTC"),
        )
        # (400 + 600) -> (100 + 200): 70 % less.
        assert metrics.reduction_pct == pytest.approx(70.0)
        assert metrics.oracle_capture_pct == pytest.approx(100.0)
        assert metrics.worse_jobs_pct == 0
        assert metrics.worse_jobs_mean_extra_pct == 0
        assert metrics.worse_jobs_mean_extra_g == 0
        assert metrics.mean_delay_h == pytest.approx(1.5)
        assert metrics.max_delay_h == pytest.approx(2.0)
        assert metrics.deadline_misses == 0
        assert metrics.max_releases_per_5min == 2

    def test_worse_jobs_and_deadline_misses_are_counted(self) -> None:
        actual = hourly(100, 300, 300, 300, 300, 300, 300)
        jobs = [job(0), job(0)]
        immediate_g = emissions_g(jobs, policies.immediate(jobs, actual), actual)
        late = np.array([T0 + H, T0 + 5 * H])  # the second starts after its 3 h max delay
        metrics = evaluate(
            jobs,
            starts=late,
            actual=actual,
            immediate_g=immediate_g,
            oracle_reduction_pct=None,
            zone=ZoneInfo("UTC"),
        )
        assert metrics.worse_jobs_pct == 100
        # Both ran at 300 instead of 100 g/kWh: 200 % more each.
        assert metrics.worse_jobs_mean_extra_pct == pytest.approx(200.0)
        assert metrics.worse_jobs_mean_extra_g == pytest.approx(200.0)  # g, at 1 kWh each
        assert metrics.deadline_misses == 1
        assert metrics.reduction_pct == pytest.approx(-200.0)
        assert metrics.oracle_capture_pct is None

    def test_reduction_of_nothing_is_zero(self) -> None:
        assert reduction_pct(np.zeros(2), np.zeros(2)) == 0.0


class TestPolicies:
    def test_threshold_starts_at_the_first_five_minute_check_at_or_below(self) -> None:
        actual = hourly(300, 250, 199, 300, 300, 300)
        starts = policies.threshold([job(0.1)], actual, 200.0)
        # Checks run every 5 min from the arrival (0.1 h = 6 min): the first in hour 2 is at 2h01.
        assert starts[0] == T0 + 2 * H + 60

    def test_threshold_waits_the_max_delay_when_never_below(self) -> None:
        actual = hourly(*[300.0] * 8)
        assert policies.threshold([job(0)], actual, 200.0)[0] == T0 + 3 * H

    def test_greenlight_with_a_perfect_forecast_equals_the_oracle(self) -> None:
        rng = np.random.default_rng(1)
        actual = StepSeries.regular(T0, H, rng.uniform(50, 500, size=24 * 20))
        jobs = [job(h + 0.3, duration_h=0.95, max_delay_h=24) for h in range(0, 24 * 18, 7)]
        exact = PlannerSettings(min_saving_pct=0.0)
        knowledge = ForecastOracle("oracle", actual, None)
        starts, _ = policies.greenlight(jobs, knowledge, exact)
        assert np.array_equal(starts, policies.oracle(jobs, actual))

    def test_greenlight_never_misses_a_deadline_on_noisy_forecasts(self) -> None:
        rng = np.random.default_rng(2)
        actual = StepSeries.regular(T0, H, rng.uniform(50, 500, size=24 * 40))
        jobs = [job(h + 0.5, max_delay_h=24) for h in range(24 * 20, 24 * 38, 5)]
        knowledge = ForecastOracle("noisy", actual, None, noise_sigma=0.3)
        starts, _ = policies.greenlight(jobs, knowledge, PlannerSettings())
        arrivals = np.array([j.arrival for j in jobs])
        assert np.all(starts >= arrivals)
        assert np.all(starts <= arrivals + 24 * H)

    def test_dacf_source_needs_a_forecast_column(self) -> None:
        with pytest.raises(ValueError, match="forecast column"):
            ForecastOracle("dacf", hourly(1, 2), None)


def vintages_csv(tmp_path: Path, issues: dict[int, dict[int, float]], hours: int) -> Path:
    """Hourly vintages: issue hour -> {target hour: value}, 300 elsewhere, ``hours`` long."""
    lines = ["issued_at,target_time,value"]
    for issued_h, dips in issues.items():
        issued = datetime.fromtimestamp(T0 + issued_h * H, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
        for target_h in range(issued_h, issued_h + hours):
            target = datetime.fromtimestamp(T0 + target_h * H, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
            lines.append(f"{issued},{target},{dips.get(target_h, 300.0)}")
    path = tmp_path / "vintages.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class TestVintages:
    """Re-planning on forecast vintages: each hour sees the newest issue, as the product would."""

    actual = hourly(*([300.0] * 10 + [100.0] + [300.0] * 20))

    def start_h(self, tmp_path: Path, issues: dict[int, dict[int, float]]) -> float:
        vintages = load_vintage_file(vintages_csv(tmp_path, issues, hours=24))
        knowledge = ForecastOracle("vintages", self.actual, None, vintages=vintages)
        start, _ = policies.greenlight_start(job(0, max_delay_h=12), knowledge, PlannerSettings())
        return (start - T0) / H

    def test_a_later_vintage_moves_the_planned_release(self, tmp_path: Path) -> None:
        # Issued at arrival: hour 5 looks clean. Issued two hours later: it is hour 10.
        assert self.start_h(tmp_path, {0: {5: 100.0}}) == 5
        assert self.start_h(tmp_path, {0: {5: 100.0}, 2: {10: 100.0}}) == 10

    def test_a_vintage_issued_after_the_release_changes_nothing(self, tmp_path: Path) -> None:
        assert self.start_h(tmp_path, {0: {5: 100.0}, 6: {10: 100.0}}) == 5

    def test_before_any_vintage_the_own_forecaster_decides(self, tmp_path: Path) -> None:
        # Nothing issued until hour 3: at arrival the history forecaster sees no dip ahead.
        assert self.start_h(tmp_path, {3: {10: 100.0}}) == 0

    def test_the_source_needs_a_file(self) -> None:
        with pytest.raises(ValueError, match="forecast-vintages file"):
            ForecastOracle("vintages", self.actual, None)


class TestTraces:
    def test_seed_trace_uses_local_wall_times_across_dst(self) -> None:
        # 2022-03-13 is the US spring-forward day: 03:55 local is UTC-7 after, UTC-8 before.
        before = local_to_epoch(date(2022, 3, 12), time(3, 55), LA)
        after = local_to_epoch(date(2022, 3, 13), time(3, 55), LA)
        assert datetime.fromtimestamp(before, tz=UTC).hour == 11
        assert datetime.fromtimestamp(after, tz=UTC).hour == 10

    def test_nonexistent_wall_time_moves_forward(self) -> None:
        moment = local_to_epoch(date(2022, 3, 13), time(2, 30), LA)
        assert datetime.fromtimestamp(moment, tz=LA).hour == 3

    def test_first_whole_local_day(self) -> None:
        start = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp())  # 2021-12-31 16:00 in LA
        days = whole_local_days(start, start + 3 * 86400, LA)
        assert days[0] == date(2022, 1, 1)

    def test_seed_trace_only_keeps_jobs_whose_window_fits(self) -> None:
        start = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp())
        jobs = build_trace(
            "seed", data_start=start, data_end=start + 10 * 86400, zone=LA, max_delay_s=86400
        )
        assert all(j.arrival + j.max_delay_s + j.duration_s <= start + 10 * 86400 for j in jobs)
        assert len(jobs) % 4 == 0 or len(jobs) > 20
        assert {j.duration_s for j in jobs} == {57 * 60}

    def test_poisson_trace_is_seeded_and_clipped(self) -> None:
        kwargs = {"data_start": T0, "data_end": T0 + 60 * 86400, "zone": LA, "max_delay_s": 86400}
        a = build_trace("poisson", seed=3, **kwargs)  # type: ignore[arg-type]
        b = build_trace("poisson", seed=3, **kwargs)  # type: ignore[arg-type]
        assert a == b
        assert all(900 <= j.duration_s <= 12 * H for j in a)
        assert 150 < len(a) < 300

    def test_csv_trace(self, tmp_path: Path) -> None:
        path = tmp_path / "trace.csv"
        path.write_text(
            "arrival,duration,max_delay,energy_kwh\n2022-06-01T10:00:00Z,90m,24h,1.5\n",
            encoding="utf-8",
        )
        assert csv_trace(path) == [Job(T0 + 10 * H, 5400, 86400, 1.5)]

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            pytest.param("2022-06-01T10:00:00Z,90m,24h", "expected 4 fields", id="short"),
            pytest.param("yesterday,90m,24h,1", "not RFC 3339", id="bad arrival"),
            pytest.param("2022-06-01T10:00:00,90m,24h,1", "no UTC offset", id="naive"),
            pytest.param("2022-06-01T10:00:00Z,soon,24h,1", "duration 'soon'", id="bad duration"),
            pytest.param("2022-06-01T10:00:00Z,90m,24h,lots", "energy_kwh 'lots'", id="bad energy"),
            pytest.param("2022-06-01T10:00:00Z,0,24h,1", "duration must be > 0", id="zero"),
        ],
    )
    def test_bad_csv_trace_names_line_and_problem(
        self, tmp_path: Path, line: str, message: str
    ) -> None:
        path = tmp_path / "trace.csv"
        path.write_text(f"arrival,duration,max_delay,energy_kwh\n{line}\n", encoding="utf-8")
        with pytest.raises(TraceError, match=rf"trace.csv:2: .*{message}"):
            csv_trace(path)


def em_file(tmp_path: Path, values: list[float]) -> Path:
    lines = [
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
        "Data Source,Data Estimated,Data Estimation Method"
    ]
    for index, value in enumerate(values):
        moment = datetime.fromtimestamp(T0 + index * H, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{moment},USA,CAISO,US-CAL-CISO,{value},{value},0,0,x,false,")
    path = tmp_path / "US-CAL-CISO_test.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class TestCommand:
    def test_json_output_has_the_documented_shape(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        values = [300 + 150 * np.cos(2 * np.pi * h / 24) for h in range(24 * 30)]
        path = em_file(tmp_path, values)
        assert (
            main(["simulate", "--carbon", str(path), "--json", "--plot", str(tmp_path / "p.png")])
            == 0
        )
        document = json.loads(capsys.readouterr().out)
        assert document["zone"] == "US-CAL-CISO"
        assert document["trace"] == "seed"
        assert document["jobs"] > 0
        for name in ("immediate", "threshold", "greenlight", "oracle"):
            metrics = document["policies"][name]
            for key in (
                "reduction_pct",
                "oracle_capture_pct",
                "worse_jobs_pct",
                "worse_jobs_mean_extra_pct",
                "worse_jobs_mean_extra_g",
                "mean_delay_h",
                "p95_delay_h",
                "max_delay_h",
                "deadline_misses",
            ):
                assert key in metrics
            assert metrics["deadline_misses"] == 0
        assert document["policies"]["oracle"]["oracle_capture_pct"] == pytest.approx(100.0)
        assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")

    def test_vintages_are_the_default_forecast_when_given(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        values = [300 + 150 * np.cos(2 * np.pi * h / 24) for h in range(24 * 10)]
        path = em_file(tmp_path, values)
        vintages = vintages_csv(tmp_path, {h: {} for h in range(0, 24 * 10, 6)}, hours=30)
        code = main(["simulate", "--carbon", str(path), "--vintages", str(vintages), "--json"])
        assert code == 0
        document = json.loads(capsys.readouterr().out)
        assert document["forecast"] == "vintages"
        assert document["vintages"] == str(vintages)
        assert document["policies"]["greenlight"]["deadline_misses"] == 0

    def test_a_damaged_vintages_file_gets_one_clear_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = em_file(tmp_path, [300.0] * (24 * 5))
        bad = tmp_path / "v.csv"
        bad.write_text("issued_at,target_time\n", encoding="utf-8")
        assert main(["simulate", "--carbon", str(path), "--vintages", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "v.csv:1: missing column(s) ['value']" in err
        assert "Traceback" not in err

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            pytest.param(["--max-delay", "soon"], "--max-delay", id="bad max delay"),
            pytest.param(["--policies", "immediate,magic"], "unknown policies", id="bad policy"),
            pytest.param(["--forecast", "dacf"], "forecast column", id="dacf without forecast"),
            pytest.param(["--forecast", "vintages"], "--vintages", id="vintages without file"),
            pytest.param(["--tz", "Mars/Olympus"], "unknown time zone", id="bad tz"),
            pytest.param(["--min-savings", "150"], "--min-savings", id="bad min savings"),
        ],
    )
    def test_bad_arguments_get_one_clear_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
    ) -> None:
        path = em_file(tmp_path, [300.0] * (24 * 5))
        code = main(["simulate", "--carbon", str(path), *args])
        assert code == 2
        err = capsys.readouterr().err
        assert message in err
        assert "Traceback" not in err

    def test_bad_data_file_names_file_and_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = em_file(tmp_path, [300.0] * 48)
        text = path.read_text(encoding="utf-8").splitlines()
        text[5] = text[4]  # a duplicate time
        path.write_text("\n".join(text) + "\n", encoding="utf-8")
        assert main(["simulate", "--carbon", str(path)]) == 2
        assert f"{path}:6: duplicate time" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.exists(), reason="shared data not present")
def test_reproduces_the_guides_oracle_and_threshold_numbers_for_ciso_2022() -> None:
    """The benchmark guide's reference: oracle 34.4 %, threshold 16.0 % (within 0.3)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "simulate",
            "--carbon",
            str(SHARED / "electricitymaps" / "US-CAL-CISO_2022_hourly.csv"),
            "--tz",
            "America/Los_Angeles",
            "--policies",
            "immediate,threshold,oracle",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    document = json.loads(completed.stdout)
    assert document["policies"]["oracle"]["reduction_pct"] == pytest.approx(34.4, abs=0.3)
    assert document["policies"]["threshold"]["reduction_pct"] == pytest.approx(16.0, abs=0.3)

"""The window planner: duration-aware, deadline-bound, thresholded, deterministic."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core.planner import (
    EXACT,
    ForecastUncertainty,
    PlannerSettings,
    PlanRequest,
    latest_start,
    plan,
    replan,
)
from webhook.core.series import StepSeries, to_epoch

H = 3600
T0 = datetime(2024, 3, 1, tzinfo=UTC)
EXACT_SETTINGS = PlannerSettings(min_saving_pct=0.0, uncertainty_z=0.0)


def hourly(*values: float, start: datetime = T0) -> StepSeries:
    return StepSeries.regular(to_epoch(start), H, list(values))


def request(
    duration_h: float = 1.0,
    max_delay_h: float = 24.0,
    energy_kwh: float = 1.0,
    arrival: datetime = T0,
) -> PlanRequest:
    duration_s = round(duration_h * H)
    return PlanRequest(
        arrival,
        duration_s,
        energy_kwh,
        latest_start(arrival, duration_s, round(max_delay_h * H), None),
    )


def test_picks_the_cleanest_window_and_reports_the_numbers() -> None:
    result = plan(
        request(energy_kwh=2.0), hourly(400, 300, 100, 300, 400), EXACT_SETTINGS, uncertainty=EXACT
    )
    assert result.deferred
    assert result.start == T0 + timedelta(hours=2)
    assert result.reason == "window"
    assert result.intensity_now_g_per_kwh == 400
    assert result.intensity_planned_g_per_kwh == 100
    assert result.emissions_now_g == 800
    assert result.emissions_planned_g == 200
    assert result.savings_g == 600
    assert result.savings_pct == 75
    assert result.delay_s == 2 * H


def test_integrates_over_the_whole_run_not_its_first_hour() -> None:
    # A 2 h job: hour 1 alone is the cleanest, but hours 3-4 together are cleaner than 1-2.
    forecast = hourly(500, 50, 500, 150, 150, 500)
    result = plan(request(duration_h=2), forecast, EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == T0 + timedelta(hours=3)
    assert result.intensity_planned_g_per_kwh == 150


def test_partial_hours_count_by_their_fraction() -> None:
    # A 30 min job may start half-way through an hour: the best is the last 30 min before the
    # dip ends? No: any 30 min wholly inside the dip; the earliest such start wins.
    result = plan(request(duration_h=0.5), hourly(400, 100, 400), EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == T0 + timedelta(hours=1)
    assert result.intensity_planned_g_per_kwh == 100


def test_ties_go_to_the_earliest_start() -> None:
    result = plan(request(), hourly(300, 100, 300, 100, 300), EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == T0 + timedelta(hours=1)


def test_never_starts_after_the_latest_start() -> None:
    result = plan(
        request(max_delay_h=2), hourly(400, 300, 350, 50, 50), EXACT_SETTINGS, uncertainty=EXACT
    )
    assert result.start == T0 + timedelta(hours=1)
    assert result.start <= result.latest_start


def test_deadline_shorter_than_the_job_runs_now() -> None:
    deadline = T0 + timedelta(minutes=30)
    req = PlanRequest(T0, H, 1.0, latest_start(T0, H, 24 * H, deadline))
    result = plan(req, hourly(400, 100, 100), EXACT_SETTINGS)
    assert not result.deferred
    assert result.reason == "no-room-before-deadline"


def test_latest_start_takes_the_earlier_of_max_delay_and_deadline() -> None:
    assert latest_start(T0, H, 24 * H, T0 + timedelta(hours=5)) == T0 + timedelta(hours=4)
    assert latest_start(T0, H, 2 * H, T0 + timedelta(hours=5)) == T0 + timedelta(hours=2)
    assert latest_start(T0, H, None, T0 - timedelta(hours=5)) == T0
    with pytest.raises(ValueError, match="max delay or a deadline"):
        latest_start(T0, H, None, None)


def test_flat_forecast_runs_now() -> None:
    result = plan(request(), hourly(*[250.0] * 30), EXACT_SETTINGS, uncertainty=EXACT)
    assert not result.deferred
    assert result.reason == "best-now"
    assert result.savings_g == 0


@pytest.mark.parametrize(
    ("values", "expected_hours"),
    [
        pytest.param((10, 0, 10), 1, id="zero intensity"),
        pytest.param((10, -5, 10), 1, id="negative intensity"),
        pytest.param((0, -5, 0), 1, id="zero now, negative later"),
    ],
)
def test_zero_and_negative_intensity(values: tuple[float, ...], expected_hours: int) -> None:
    result = plan(request(), hourly(*values), EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == T0 + timedelta(hours=expected_hours)
    assert np.isfinite(result.savings_pct)


def test_saving_below_the_minimum_runs_now() -> None:
    result = plan(
        request(), hourly(100, 97, 100), PlannerSettings(min_saving_pct=5, uncertainty_z=0)
    )
    assert not result.deferred
    assert result.reason == "saving-below-threshold"
    assert result.start == T0


def test_absolute_minimum_saving() -> None:
    settings_g = PlannerSettings(min_saving_pct=0, uncertainty_z=0, min_saving_g=100)
    result = plan(request(energy_kwh=1.0), hourly(300, 250, 300), settings_g, uncertainty=EXACT)
    assert result.reason == "saving-below-threshold"


def test_saving_within_the_forecast_uncertainty_runs_now() -> None:
    uncertain = ForecastUncertainty(error_pct=20.0, decay_per_hour=0.0)
    result = plan(
        request(), hourly(100, 90, 100), PlannerSettings(min_saving_pct=0), uncertainty=uncertain
    )
    assert result.reason == "saving-within-uncertainty"
    confident = plan(
        request(), hourly(100, 50, 100), PlannerSettings(min_saving_pct=0), uncertainty=uncertain
    )
    assert confident.deferred


def test_a_history_forecast_needs_the_wider_history_margin_at_admission_only() -> None:
    settings = PlannerSettings(min_saving_pct=0, uncertainty_z=0.5, history_uncertainty_z=0.9)
    provider = ForecastUncertainty(error_pct=20.0)
    history = ForecastUncertainty(error_pct=20.0, from_history=True)
    forecast = hourly(100, 85, 100)  # a 15 % saving: above 0.5 x 20 %, within 0.9 x 20 %
    assert plan(request(), forecast, settings, uncertainty=provider).deferred
    held_back = plan(request(), forecast, settings, uncertainty=history)
    assert held_back.reason == "saving-within-uncertainty"
    assert "18.0%" in held_back.detail
    # Once deferred, a waiting Job follows the best estimate whatever its forecast's source.
    waiting = replan(
        T0 + timedelta(hours=1),
        request(),
        now=T0,
        forecast=forecast,
        settings=settings,
        uncertainty=history,
    )
    assert waiting.action == "keep"


def test_uncertainty_shrinks_toward_the_next_hours() -> None:
    uncertainty = ForecastUncertainty(error_pct=10.0, decay_per_hour=0.9)
    assert uncertainty.at_lead(0) == 0
    assert uncertainty.at_lead(H) < uncertainty.at_lead(6 * H) < 10.0
    assert uncertainty.at_lead(1000 * H) == pytest.approx(10.0)


def test_forecast_shorter_than_the_window_only_considers_covered_windows() -> None:
    # max delay 24 h, but the forecast covers 3 h: the 1 h job can start at most at hour 2.
    result = plan(request(), hourly(300, 200, 100), EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == T0 + timedelta(hours=2)
    assert result.forecast_end == T0 + timedelta(hours=3)


def test_forecast_ending_before_a_run_could_end_runs_now() -> None:
    result = plan(request(duration_h=5), hourly(300, 200, 100), EXACT_SETTINGS)
    assert not result.deferred
    assert result.reason == "forecast-too-short"


def test_forecast_starting_after_the_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="forecast starts"):
        plan(request(), hourly(300, 100, start=T0 + timedelta(hours=1)), EXACT_SETTINGS)


def test_dst_transition_changes_nothing_in_utc() -> None:
    # 2024-03-31 is the EU spring-forward night: plans are made in UTC, so hours are hours.
    arrival = datetime(2024, 3, 31, 0, 30, tzinfo=UTC)
    forecast = hourly(400, 400, 100, 400, start=datetime(2024, 3, 31, 0, tzinfo=UTC))
    result = plan(request(arrival=arrival), forecast, EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == datetime(2024, 3, 31, 2, tzinfo=UTC)


def test_any_resolution_five_minutes() -> None:
    values = [300.0] * 36 + [100.0] * 12 + [300.0] * 36  # a one-hour dip at 3 h
    forecast = StepSeries.regular(to_epoch(T0), 300, values)
    result = plan(request(), forecast, EXACT_SETTINGS, uncertainty=EXACT)
    assert result.start == T0 + timedelta(hours=3)


def test_cost_weight_moves_the_choice_toward_cheap_power() -> None:
    carbon = hourly(300, 200, 210, 300)
    prices = hourly(0.30, 0.50, 0.05, 0.30)
    carbon_only = plan(request(), carbon, EXACT_SETTINGS, prices=prices, uncertainty=EXACT)
    assert carbon_only.start == T0 + timedelta(hours=1)
    assert carbon_only.cost_planned_usd == pytest.approx(0.50)
    weighted = plan(
        request(),
        carbon,
        PlannerSettings(min_saving_pct=0, uncertainty_z=0, cost_weight=0.5),
        prices=prices,
        uncertainty=EXACT,
    )
    assert weighted.start == T0 + timedelta(hours=2)
    assert weighted.cost_now_usd == pytest.approx(0.30)


def test_plan_request_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="duration must be positive"):
        PlanRequest(T0, 0, 1.0, T0)
    with pytest.raises(ValueError, match="energy"):
        PlanRequest(T0, H, float("nan"), T0)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-50, max_value=2000), min_size=2, max_size=60),
    duration_min=st.integers(min_value=1, max_value=600),
    delay_min=st.integers(min_value=0, max_value=48 * 60),
    offset_s=st.integers(min_value=0, max_value=3599),
)
def test_plan_is_optimal_and_inside_its_bounds(
    values: list[float], duration_min: int, delay_min: int, offset_s: int
) -> None:
    forecast = hourly(*values)
    arrival = T0 + timedelta(seconds=offset_s)
    req = request(duration_h=duration_min / 60, max_delay_h=delay_min / 60, arrival=arrival)
    result = plan(req, forecast, EXACT_SETTINGS, uncertainty=EXACT)
    assert arrival <= result.start <= max(req.latest_start, arrival)
    # Brute force over a one-minute grid of feasible, covered starts: never better than ours.
    start_s, end_s = to_epoch(arrival), to_epoch(req.latest_start)
    last = min(end_s, forecast.end - duration_min * 60)
    if last >= start_s:
        grid = np.arange(start_s, last + 1, 60, dtype=np.float64)
        means = forecast.integral(grid, grid + duration_min * 60) / (duration_min * 60)
        assert result.intensity_planned_g_per_kwh <= means.min() + 1e-6


def test_same_inputs_same_plan() -> None:
    forecast = hourly(400, 300, 100, 300)
    assert plan(request(), forecast, EXACT_SETTINGS) == plan(request(), forecast, EXACT_SETTINGS)


class TestReplan:
    def test_keeps_the_release_when_nothing_better_appears(self) -> None:
        forecast = hourly(400, 400, 100, 400, 400)
        decision = replan(
            T0 + timedelta(hours=2),
            request(),
            now=T0 + timedelta(hours=1),
            forecast=forecast,
            settings=EXACT_SETTINGS,
            uncertainty=EXACT,
        )
        assert decision.action == "keep"
        assert decision.start == T0 + timedelta(hours=2)

    def test_moves_earlier_when_fresher_data_shows_a_better_window(self) -> None:
        forecast = hourly(400, 400, 50, 100, 400)
        decision = replan(
            T0 + timedelta(hours=3),
            request(),
            now=T0 + timedelta(hours=1),
            forecast=forecast,
            settings=EXACT_SETTINGS,
            uncertainty=EXACT,
        )
        assert decision.action == "move"
        assert decision.start == T0 + timedelta(hours=2)

    def test_small_improvements_do_not_churn(self) -> None:
        forecast = hourly(400, 400, 100, 99.5, 400)
        decision = replan(
            T0 + timedelta(hours=2),
            request(),
            now=T0 + timedelta(hours=1),
            forecast=forecast.window(to_epoch(T0) + H, to_epoch(T0) + 5 * H),
            settings=PlannerSettings(min_saving_pct=0, uncertainty_z=0, replan_hysteresis_pct=1.0),
            uncertainty=EXACT,
        )
        assert decision.action == "keep"

    def test_releases_now_when_now_is_best(self) -> None:
        forecast = hourly(400, 100, 300, 300)
        decision = replan(
            T0 + timedelta(hours=3),
            request(),
            now=T0 + timedelta(hours=1),
            forecast=forecast,
            settings=EXACT_SETTINGS,
            uncertainty=EXACT,
        )
        assert decision.action == "release-now"
        assert decision.start == T0 + timedelta(hours=1)

    def test_never_moves_past_the_latest_start(self) -> None:
        forecast = hourly(400, 400, 400, 400, 10, 10)
        req = request(max_delay_h=3)
        decision = replan(
            T0 + timedelta(hours=2),
            req,
            now=T0 + timedelta(hours=1),
            forecast=forecast,
            settings=EXACT_SETTINGS,
            uncertainty=EXACT,
        )
        assert decision.start <= req.latest_start

"""The reconcile decision: one guard clause per situation, each with a stable outcome."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from builders import T0, at, deferred_job, finished
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.config.reconciler import ReconcilerSettings
from webhook.core import annotations as keys
from webhook.core.forecast import ForecastResult, ForecastUncertainty, SourceKind
from webhook.core.series import StepSeries, to_epoch
from webhook.reconciler.decide import (
    Account,
    Forget,
    Knowledge,
    Move,
    Outlook,
    RecordManual,
    Release,
    ReleaseReason,
    Track,
    TrackedJob,
    Wait,
    decide,
    next_replan_check,
    patch_for,
    release_target,
    spread_offset_s,
    track,
)

HOUR = 3600
NO_SPREAD = ReconcilerSettings(release_spread_s=0)


def hourly(values_from_t0_minus_1h: list[float]) -> StepSeries:
    return StepSeries.regular(to_epoch(T0) - HOUR, HOUR, np.array(values_from_t0_minus_1h))


def with_clean_hours(first: int, last: int, *, dirty: float = 400.0) -> StepSeries:
    """48 hours from T0-1h: ``dirty`` except 50 g/kWh over hours [first, last) after T0."""
    return hourly([50.0 if first <= h - 1 < last else dirty for h in range(48)])


FLAT = hourly([300.0] * 48)
TEN_PCT_CLEANER = hourly([360.0 if 7 <= h < 11 else 400.0 for h in range(48)])
"""400 g/kWh except 360 over hours [6, 10) after T0: the plan's window saves 10 %."""


def forecast(series: StepSeries | None, *, age_s: float = 60.0) -> ForecastResult:
    source: SourceKind = "provider" if series is not None else "none"
    reason = None if series is not None else "electricitymaps: unavailable"
    return ForecastResult("DE", "test", source, series, age_s, False, reason)


def knowledge(
    now: datetime,
    result: ForecastResult | None = None,
    *,
    settings: ReconcilerSettings = NO_SPREAD,
    observed: StepSeries | None = None,
) -> Knowledge:
    return Knowledge(
        now=now,
        settings=settings,
        forecast=lambda zone: result,
        observed=lambda zone: observed,
    )


def tracked(**kwargs: Any) -> TrackedJob:
    job = track(deferred_job(**kwargs))
    assert job is not None
    return job


WAITING = {"release_at": at(6 * HOUR), "release_by": at(20 * HOUR)}


CHECK_DUE = "replan-check-due"


@pytest.mark.parametrize(
    ("job", "now", "result", "expected"),
    [
        pytest.param(
            tracked(**WAITING),
            at(600),
            None,
            Wait(at(1800), "waiting"),
            id="waits-until-its-first-replan-check",
        ),
        pytest.param(
            tracked(**WAITING, extra={keys.REPLAN_COUNT: "6"}),
            at(HOUR),
            forecast(FLAT),
            Wait(at(6 * HOUR), "waiting"),
            id="replan-limit-reached-waits-for-its-time",
        ),
        pytest.param(
            tracked(**WAITING),
            at(6 * HOUR),
            None,
            Release(ReleaseReason.WINDOW, "", at(6 * HOUR)),
            id="due-with-no-forecast-loaded-yet-released-on-its-plan",
        ),
        pytest.param(
            tracked(**WAITING),
            at(6 * HOUR + 2),
            forecast(with_clean_hours(6, 9)),
            Release(ReleaseReason.WINDOW, "", at(6 * HOUR)),
            id="due-and-confirmed-released-for-its-window",
        ),
        pytest.param(
            tracked(**WAITING, extra={keys.REPLAN_COUNT: "1"}),
            at(6 * HOUR),
            forecast(FLAT),
            Release(ReleaseReason.REPLANNED, "", at(6 * HOUR)),
            id="due-at-a-time-a-replan-chose",
        ),
        pytest.param(
            tracked(**WAITING),
            at(6 * HOUR),
            forecast(None),
            Release(ReleaseReason.PROVIDER_OUTAGE, "", at(6 * HOUR)),
            id="due-with-every-provider-down",
        ),
        pytest.param(
            tracked(**WAITING),
            at(6 * HOUR),
            forecast(FLAT, age_s=7 * HOUR),
            Release(ReleaseReason.PROVIDER_OUTAGE, "", at(6 * HOUR)),
            id="due-with-a-forecast-too-old-to-trust",
        ),
        pytest.param(
            tracked(**WAITING),
            at(6 * HOUR),
            forecast(with_clean_hours(8, 12)),
            Move(at(8 * HOUR), at(6 * HOUR), ""),
            id="due-but-a-clearly-cleaner-window-follows-moves-later",
        ),
        pytest.param(
            tracked(**WAITING),
            at(21 * HOUR),
            forecast(None),
            Release(ReleaseReason.DEADLINE, "", at(6 * HOUR)),
            id="window-missed-and-deadline-passed",
        ),
        pytest.param(
            tracked(release_at=at(6 * HOUR), release_by=at(6 * HOUR)),
            at(6 * HOUR + 1),
            forecast(FLAT),
            Release(ReleaseReason.WINDOW, "", at(6 * HOUR)),
            id="planned-at-its-latest-start-is-still-its-window",
        ),
        pytest.param(
            tracked(**WAITING),
            at(HOUR),
            forecast(FLAT),
            Release(ReleaseReason.REPLANNED, ""),
            id="waiting-no-longer-saves-released-now-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(**WAITING),
            at(HOUR),
            forecast(with_clean_hours(2, 4)),
            Move(at(2 * HOUR), at(6 * HOUR), ""),
            id="a-cleaner-earlier-window-moves-it-earlier-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(**WAITING),
            at(HOUR),
            forecast(with_clean_hours(6, 10)),
            Wait(at(HOUR + 1800), "kept", True),
            id="replan-confirms-the-plan-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(**WAITING),
            at(HOUR),
            forecast(None),
            Wait(at(HOUR + 1800), "kept", True),
            id="no-forecast-while-waiting-keeps-the-plan-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(**WAITING),
            at(HOUR),
            forecast(TEN_PCT_CLEANER),
            Wait(at(HOUR + 1800), "kept", True),
            id="a-10pct-window-is-kept-under-the-global-1pct-minimum-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(**WAITING, extra={keys.PLANNED_MIN_SAVINGS_PCT: "40.0"}),
            at(HOUR),
            forecast(TEN_PCT_CLEANER),
            Release(ReleaseReason.REPLANNED, ""),
            id="planned-with-a-40pct-minimum-a-10pct-window-is-released-now-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(
                **WAITING,
                extra={keys.PLANNED_MIN_SAVINGS_PCT: "40.0", keys.MIN_SAVINGS: "5"},
            ),
            at(HOUR),
            forecast(TEN_PCT_CLEANER),
            Wait(at(HOUR + 1800), "kept", True),
            id="the-jobs-own-edited-minimum-wins-over-the-planned-one-" + CHECK_DUE,
        ),
        pytest.param(
            tracked(**WAITING, suspend=False),
            at(HOUR),
            None,
            RecordManual(""),
            id="user-released-it-early",
        ),
        pytest.param(
            tracked(**WAITING, extra={keys.SKIP: "true"}),
            at(HOUR),
            None,
            Release(ReleaseReason.SKIP, ""),
            id="user-added-skip",
        ),
        pytest.param(
            tracked(**WAITING, extra={keys.RELEASE_BY: "soon"}),
            at(HOUR),
            None,
            Release(ReleaseReason.INVALID_PLAN, ""),
            id="unreadable-plan-released-at-once",
        ),
        pytest.param(
            tracked(**WAITING, deleting=True),
            at(HOUR),
            None,
            Forget(""),
            id="being-deleted",
        ),
        pytest.param(
            tracked(**WAITING, suspend=False, extra={keys.RELEASED_AT: "2025-06-02T18:00:00Z"}),
            at(7 * HOUR),
            None,
            Track(""),
            id="released-and-running",
        ),
        pytest.param(
            tracked(
                **WAITING,
                suspend=False,
                extra={keys.RELEASED_AT: "2025-06-02T18:00:00Z", keys.ACTUAL_EMISSIONS_G: "1"},
            ),
            at(7 * HOUR),
            None,
            Forget(""),
            id="released-and-accounted",
        ),
    ],
)
def test_decide(
    job: TrackedJob,
    now: datetime,
    result: ForecastResult | None,
    expected: Any,
    request: pytest.FixtureRequest,
) -> None:
    # Cases marked so have the re-plan check this process scheduled due now.
    checked = now if CHECK_DUE in request.node.name else None
    action = decide(job, knowledge(now, result), checked)
    assert type(action) is type(expected), action
    assert action.why
    for attribute in ("until", "reason", "target", "start", "previous", "replan_checked"):
        if hasattr(expected, attribute):
            assert getattr(action, attribute) == getattr(expected, attribute), attribute


def test_a_finished_job_is_accounted_from_the_observed_intensity_over_its_real_run() -> None:
    job = tracked(
        **WAITING,
        suspend=False,
        extra={keys.RELEASED_AT: "2025-06-02T18:00:00Z"},
        status=finished(at(6 * HOUR), at(6 * HOUR + 1800)),
    )
    observed = with_clean_hours(6, 9)
    action = decide(job, knowledge(at(7 * HOUR), observed=observed))
    assert isinstance(action, Account)
    result = action.accounting
    # 2 kWh planned over 1 h; the run took 30 min at 50 g/kWh; at admission it was 400.
    assert result.run_s == 1800
    assert result.energy_kwh == pytest.approx(1.0)
    assert result.emissions_g == pytest.approx(50.0)
    assert result.emissions_at_admission_g == pytest.approx(400.0)
    assert result.savings_g == pytest.approx(350.0)
    assert result.basis == "observed"


def test_the_release_patch_resumes_and_records_in_one_write_guarded_by_its_version() -> None:
    job = tracked(**WAITING, resource_version="4711")
    patch = patch_for(job, Release(ReleaseReason.WINDOW, "due", at(6 * HOUR)), at(6 * HOUR))
    assert patch == {
        "metadata": {
            "resourceVersion": "4711",
            "annotations": {
                keys.RELEASED_AT: "2025-06-02T18:00:00Z",
                keys.RELEASE_REASON: "window",
            },
        },
        "spec": {"suspend": False},
    }


def test_recording_a_manual_release_does_not_touch_the_spec() -> None:
    job = tracked(**WAITING, suspend=False, resource_version="9")
    patch = patch_for(job, RecordManual("user"), at(HOUR))
    assert patch is not None
    assert "spec" not in patch
    assert patch["metadata"]["resourceVersion"] == "9"
    assert patch["metadata"]["annotations"][keys.RELEASE_REASON] == "manual"


def test_a_move_records_the_new_time_and_counts_the_replans() -> None:
    job = tracked(**WAITING, extra={keys.REPLAN_COUNT: "2"})
    patch = patch_for(job, Move(at(2 * HOUR), at(6 * HOUR), "earlier"), at(HOUR))
    assert patch is not None
    assert patch["metadata"]["annotations"] == {
        keys.RELEASE_AT: "2025-06-02T14:00:00Z",
        keys.REPLANNED_AT: "2025-06-02T13:00:00Z",
        keys.REPLAN_COUNT: "3",
        keys.REPLAN_CHECKED_AT: "2025-06-02T13:00:00Z",
        keys.REPLAN_CHECKS: "1",
    }


def test_a_kept_replan_records_when_it_ran_and_how_many_ran_and_nothing_else() -> None:
    job = tracked(**WAITING, extra={keys.REPLAN_COUNT: "2", keys.REPLAN_CHECKS: "4"})
    assert job.replan_checks == 4
    patch = patch_for(job, Wait(at(2 * HOUR), "kept", True, at(2 * HOUR)), at(HOUR))
    assert patch is not None
    assert patch["metadata"]["annotations"] == {
        keys.REPLAN_CHECKED_AT: "2025-06-02T13:00:00Z",
        keys.REPLAN_CHECKS: "5",
    }
    assert patch["metadata"]["resourceVersion"] == job.resource_version
    assert "spec" not in patch


def test_waiting_and_tracking_write_nothing() -> None:
    job = tracked(**WAITING)
    assert patch_for(job, Wait(at(HOUR), "w"), at(0)) is None
    assert patch_for(job, Track("t"), at(0)) is None


def test_only_jobs_greenlight_deferred_are_tracked() -> None:
    skipped = deferred_job(extra={keys.DECISION: "skipped"})
    assert track(skipped) is None
    assert track({"metadata": "bad"}) is None


def test_releases_spread_over_the_spread_after_the_planned_time_never_past_release_by() -> None:
    offsets = [spread_offset_s(f"uid-{i}", 60.0) for i in range(2000)]
    assert all(0.0 <= o < 60.0 for o in offsets)
    assert min(offsets) < 3.0  # spread over the whole minute
    assert max(offsets) > 57.0
    assert spread_offset_s("uid-1", 60.0) == spread_offset_s("uid-1", 60.0)  # per Job, fixed
    assert spread_offset_s("uid-1", 0.0) == 0.0
    job = tracked(release_at=at(HOUR), release_by=at(HOUR + 10))
    assert job.deferral is not None
    target = release_target("uid-x", job.deferral, 600.0)
    assert at(HOUR) <= target <= at(HOUR + 10)


def test_replan_checks_overdue_at_first_sight_are_spread_over_the_interval() -> None:
    job = tracked(**WAITING)
    assert job.deferral is not None
    settings = ReconcilerSettings(replan_interval_s=1800)
    late = knowledge(at(5 * HOUR), settings=settings)
    checks = {
        next_replan_check(tracked(**WAITING, uid=f"u{i}"), job.deferral, late, None)
        for i in range(50)
    }
    assert len(checks) > 40
    assert all(at(5 * HOUR) <= c < at(5 * HOUR + 1800) for c in checks)
    assert next_replan_check(job, job.deferral, late, at(4 * HOUR)) == at(4 * HOUR)  # scheduled
    early = knowledge(at(60), settings=settings)
    assert next_replan_check(job, job.deferral, early, None) == at(1800)


def test_a_due_move_shorter_than_the_minimum_shift_releases_instead() -> None:
    job = tracked(**WAITING)
    settings = ReconcilerSettings(release_spread_s=0, replan_min_shift_s=3 * HOUR)
    result = forecast(with_clean_hours(8, 12))
    action = decide(job, knowledge(at(6 * HOUR), result, settings=settings))
    assert isinstance(action, Release)
    assert action.reason == ReleaseReason.WINDOW


def test_the_check_this_process_scheduled_sets_the_next_replan() -> None:
    job = tracked(**WAITING)
    action = decide(job, knowledge(at(HOUR), forecast(FLAT)), at(HOUR + 60))
    assert isinstance(action, Wait)
    assert action.until == at(HOUR + 60)
    assert action.check_at == at(HOUR + 60)
    assert not action.replan_checked


def test_an_overdue_check_scheduled_at_first_sight_comes_when_its_timer_fires() -> None:
    # The bug this guards: recomputed at every firing, the spread check slid away forever.
    settings = ReconcilerSettings(release_spread_s=0, replan_interval_s=1800)
    job = tracked(**WAITING)
    first = decide(job, knowledge(at(2 * HOUR), forecast(TEN_PCT_CLEANER), settings=settings))
    assert isinstance(first, Wait)
    assert first.check_at is not None
    assert not first.replan_checked
    fired = decide(
        job, knowledge(first.until, forecast(TEN_PCT_CLEANER), settings=settings), first.check_at
    )
    assert isinstance(fired, Wait)
    assert fired.replan_checked
    assert fired.check_at == first.until + timedelta(seconds=1800)


@settings(max_examples=100, deadline=None)
@given(
    uid=st.text(min_size=1, max_size=36),
    interval_s=st.sampled_from([600.0, 1800.0, 3600.0]),
    first_seen_s=st.floats(min_value=0.0, max_value=5 * HOUR),
    lateness_s=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=8),
)
def test_timer_firings_replan_a_waiting_job_at_least_once_per_interval_plus_the_spread(
    uid: str, interval_s: float, first_seen_s: float, lateness_s: list[float]
) -> None:
    """Fire the Job's timer at each ``until`` (a little late, as timers are) until its planned
    time: every re-plan follows the previous one (or first sight) by at most one interval plus
    the spread (one interval too), never sooner than the interval."""
    config = ReconcilerSettings(release_spread_s=0, replan_interval_s=interval_s)
    job = tracked(**WAITING, uid=uid)
    assert job.deferral is not None
    target = job.deferral.release_at
    now = at(first_seen_s)
    ceiling = timedelta(seconds=2 * interval_s + max(lateness_s))
    last_replan = max(now, job.deferral.admitted_at)
    scheduled: datetime | None = None
    replans: list[datetime] = []
    for firing in range(10_000):
        action = decide(job, knowledge(now, forecast(TEN_PCT_CLEANER), settings=config), scheduled)
        if isinstance(action, Release) and action.reason == ReleaseReason.REPLANNED:
            assert now - last_replan <= ceiling, (now, last_replan)  # a re-plan released it
            break
        if not isinstance(action, Wait):
            assert isinstance(action, Release), action
            assert now >= target, action
            break
        if action.replan_checked:
            assert now - last_replan <= ceiling, (now, last_replan)
            if replans:
                assert now - replans[-1] >= timedelta(seconds=interval_s)
            replans.append(now)
            last_replan = now
        assert action.until > now, action
        scheduled = action.check_at
        now = action.until + timedelta(seconds=lateness_s[firing % len(lateness_s)])
    else:
        pytest.fail("the Job was never released")
    waited = (now - max(at(first_seen_s), job.deferral.admitted_at)).total_seconds()
    assert len(replans) >= int(waited // (2 * interval_s + max(lateness_s))) - 1


def test_a_replan_says_what_its_forecast_expects_of_the_release_it_chose_or_kept() -> None:
    """The outlook the Replanned and PlanKept Events report: the re-plan's forecast source,
    its measured error at the release's lead, the release's saving against running now."""
    by_lead = ForecastUncertainty(9.0, by_lead_pct=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0))

    def rounded(outlook: Outlook | None) -> Outlook | None:
        if outlook is None:
            return None
        return Outlook(outlook.source, round(outlook.savings_pct, 6), outlook.error_pct)

    def measured(series: StepSeries) -> ForecastResult:
        return ForecastResult("DE", "test", "history", series, 60.0, False, None, by_lead)

    # Re-planned at 1 h: 400 g/kWh now, 50 over hours [2, 4): moved to 2 h, 1 h ahead.
    moved = decide(
        tracked(**WAITING), knowledge(at(HOUR), measured(with_clean_hours(2, 4))), at(HOUR)
    )
    assert isinstance(moved, Move)
    assert rounded(moved.outlook) == Outlook("history", 87.5, 1.0)
    # Clean over [6, 10): the planned 6 h release is kept, 5 h ahead.
    kept = decide(
        tracked(**WAITING), knowledge(at(HOUR), measured(with_clean_hours(6, 10))), at(HOUR)
    )
    assert isinstance(kept, Wait)
    assert kept.replan_checked
    assert rounded(kept.outlook) == Outlook("history", 87.5, 5.0)
    # A provider forecast without a measured error: the saving, and no error.
    flat_then_clean = decide(
        tracked(**WAITING), knowledge(at(HOUR), forecast(with_clean_hours(6, 10))), at(HOUR)
    )
    assert isinstance(flat_then_clean, Wait)
    assert rounded(flat_then_clean.outlook) == Outlook("provider", 87.5, None)
    # Nothing to re-plan on: no outlook.
    blind = decide(tracked(**WAITING), knowledge(at(HOUR), forecast(None)), at(HOUR))
    assert isinstance(blind, Wait)
    assert blind.outlook is None


def test_the_tracked_job_keeps_the_forecast_its_plan_was_made_on() -> None:
    job = tracked(
        **WAITING,
        extra={
            keys.FORECAST_SOURCE: "history",
            keys.FORECAST_ERROR_PCT: "4.2",
            keys.SAVINGS_PCT_LOW: "70.8",
            keys.SAVINGS_PCT_HIGH: "79.2",
        },
    )
    assert (job.forecast_source, job.forecast_error_pct) == ("history", 4.2)
    assert (job.savings_pct_low, job.savings_pct_high) == (70.8, 79.2)
    older = tracked(**WAITING)
    assert (older.forecast_source, older.forecast_error_pct, older.savings_pct_low) == (
        None,
        None,
        None,
    )

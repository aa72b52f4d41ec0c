from __future__ import annotations

import pytest
from builders import T0, at, deferred_job

from webhook.core.annotations import Decision
from webhook.reconciler import events
from webhook.reconciler.accounting import Accounting
from webhook.reconciler.decide import Move, Outlook, ReleaseReason, TrackedJob, track


def job(name: str = "train", uid: str = "0123456789abcdef") -> TrackedJob:
    tracked = track(deferred_job(name, uid=uid))
    assert tracked is not None
    return tracked


def test_every_event_has_a_name_fixed_by_the_job_and_what_it_records() -> None:
    deferred = events.deferred(job())
    assert deferred is not None
    assert deferred.name == "train.greenlight-deferred-01234567"
    assert events.deferred(job()) == deferred  # recording twice names the same Event
    first = events.replanned(job(), Move(at(7200), at(21600), "cleaner"))
    assert first.name == "train.greenlight-replanned-1-01234567"
    long = events.released(job("x" * 253), ReleaseReason.WINDOW, "due", T0)
    assert len(long.name) == 253
    assert long.name.endswith(".greenlight-released-01234567")


def test_the_released_event_matches_release_all_s_name_so_a_job_gets_one() -> None:
    assert events.released(job(), ReleaseReason.MANUAL, "user", T0).name == (
        "train.greenlight-released-01234567"
    )


def test_messages_say_when_why_and_how_much() -> None:
    deferred = events.deferred(job())
    assert deferred is not None
    assert "Deferred until 2025-06-02T18:00:00Z" in deferred.message
    assert "expected saving 600 g (75.0%)" in deferred.message
    moved = events.replanned(job(), Move(at(7200), at(21600), "cleaner"))
    assert "moved earlier from 2025-06-02T18:00:00Z to 2025-06-02T14:00:00Z" in moved.message
    outage = events.released(job(), ReleaseReason.PROVIDER_OUTAGE, "no forecast", T0)
    assert outage.warning
    assert "reason provider-outage" in outage.message
    assert not events.released(job(), ReleaseReason.WINDOW, "due", T0).warning
    result = Accounting(1800, 1.0, 50.0, 50.0, "planned", 400.0, 400.0, "observed")
    done = events.completed(job(), result)
    assert "actual emissions 50 g CO2eq (1.000 kWh at 50 g/kWh)" in done.message
    assert "the planned intensity was used" in done.message
    assert "saving 350 g" in done.message


def test_the_event_object_involves_the_job() -> None:
    body = events.event_body(
        events.released(job(), ReleaseReason.SKIP, "skip", T0), now=T0, instance="r1"
    )
    assert body["involvedObject"] == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "train",
        "namespace": "ml",
        "uid": "0123456789abcdef",
    }
    assert (body["reason"], body["type"], body["source"]) == (
        "Released",
        "Normal",
        {"component": "greenlight"},
    )
    assert body["metadata"] == {"name": "train.greenlight-released-01234567", "namespace": "ml"}


def test_a_kept_replan_is_an_event_of_its_own_numbered_by_the_replans_recorded() -> None:
    first = events.plan_kept(job(), "no cleaner window")
    assert first is not None
    later = track(deferred_job(uid="0123456789abcdef", extra={"greenlight.dev/replan-checks": "4"}))
    assert later is not None
    fifth = events.plan_kept(later, "no cleaner window")
    assert fifth is not None
    assert first.reason == events.EventReason.PLAN_KEPT
    assert first.name == "train.greenlight-plankept-1-01234567"
    assert fifth.name == "train.greenlight-plankept-5-01234567"
    assert "release kept at" in first.message
    assert "no cleaner window" in first.message


def test_a_run_now_event_carries_the_numbers_of_running_now_where_a_plan_was_made() -> None:
    ran = events.not_deferred(
        job(),
        Decision.RUN_NOW,
        "saving-below-threshold",
        "best window saves 0.4% (2 g), below the minimum 1%",
        intensity_now_g_per_kwh=312.4,
        emissions_now_g=480.2,
    )
    assert ran is not None
    assert (ran.reason, ran.warning) == (events.EventReason.RAN_NOW, False)
    assert ran.message == (
        "Ran at once [saving-below-threshold]: best window saves 0.4% (2 g), below the minimum "
        "1% (intensity now 312 g/kWh, expected emissions 480 g CO2eq)"
    )
    skipped = events.not_deferred(job(), Decision.SKIPPED, "kueue", "Kueue manages this Job")
    assert skipped is not None
    assert skipped.message == "Not deferrable, ran at once [kueue]: Kueue manages this Job"
    assert skipped.name == "train.greenlight-skipped-01234567"
    assert events.not_deferred(job(), Decision.DEFERRED, "window", "x") is None


FORECAST_ANNOTATIONS = {
    "greenlight.dev/forecast-source": "history",
    "greenlight.dev/forecast-error-pct": "4.2",
    "greenlight.dev/savings-pct-low": "70.8",
    "greenlight.dev/savings-pct-high": "79.2",
}


def test_the_deferred_event_says_what_forecast_the_plan_rests_on_and_the_saving_range() -> None:
    recorded = track(deferred_job(uid="0123456789abcdef", extra=FORECAST_ANNOTATIONS))
    assert recorded is not None
    event = events.deferred(recorded)
    assert event is not None
    assert "expected saving 600 g (75.0%, 70.8% to 79.2%) CO2eq" in event.message
    assert event.message.endswith("; forecast history, measured error 4.2% at the planned lead")


@pytest.mark.parametrize(
    ("extra", "tail"),
    [
        pytest.param({}, "expected saving 600 g (75.0%) CO2eq", id="older-job-says-nothing-more"),
        pytest.param(
            {"greenlight.dev/forecast-source": "provider"},
            "expected saving 600 g (75.0%) CO2eq; forecast provider",
            id="error-not-measured-source-only",
        ),
        pytest.param(
            {**FORECAST_ANNOTATIONS, "greenlight.dev/savings-pct-low": "soon"},
            "expected saving 600 g (75.0%) CO2eq; forecast history, measured error 4.2% at the "
            "planned lead",
            id="unreadable-range-left-out",
        ),
    ],
)
def test_the_deferred_event_says_only_what_the_job_records(
    extra: dict[str, str], tail: str
) -> None:
    recorded = track(deferred_job(uid="0123456789abcdef", extra=extra))
    assert recorded is not None
    event = events.deferred(recorded)
    assert event is not None
    assert event.message.endswith(tail)


def test_replan_events_say_what_the_replans_forecast_expects_of_the_release() -> None:
    outlook = Outlook("provider", 12.0, 2.9)
    moved = events.replanned(job(), Move(at(7200), at(21600), "cleaner", 90.0, outlook))
    assert moved.message.endswith(
        ": cleaner; expected saving 12.0% (9.1% to 14.9%) against running now; forecast "
        "provider, measured error 2.9% at the planned lead"
    )
    kept = events.plan_kept(job(), "kept: no better window", Outlook("history", -1.5))
    assert kept is not None
    assert kept.message.endswith(
        ": kept: no better window; expected saving -1.5% against running now; forecast history"
    )
    plain = events.plan_kept(job(), "plan kept, no forecast: electricitymaps: unavailable")
    assert plain is not None
    assert plain.message.endswith("plan kept, no forecast: electricitymaps: unavailable")

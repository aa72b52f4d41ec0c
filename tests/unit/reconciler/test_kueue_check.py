"""The Kueue AdmissionCheck judgement (pure): held until the window, never past the deadline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from builders import T0, at

from webhook.config.settings import Settings
from webhook.core import annotations as keys
from webhook.core.annotations import Decision, Inputs, format_time
from webhook.core.energy import load_catalog
from webhook.core.forecast import ForecastResult
from webhook.core.resources import JobSpecError
from webhook.core.series import StepSeries, to_epoch
from webhook.reconciler.kueue_check import (
    CheckKnowledge,
    CheckState,
    FinishedRun,
    ReadyReason,
    Verdict,
    WorkloadView,
    account_workload,
    annotation_patch,
    check_status,
    judge_workload,
    our_checks,
    read_workload,
    status_apply,
)
from webhook.workloads.kueue import podset_resources

HOUR = 3600
CHECK = "greenlight-carbon"
SETTINGS = Settings()
CATALOG = load_catalog(SETTINGS.energy)
DEFAULTS = Inputs(
    skip=False,
    max_delay_s=12 * HOUR,
    expected_duration_s=HOUR,
    workload=SETTINGS.energy.default_workload.value,
    zone="DE",
    min_savings_pct=SETTINGS.planner.min_saving_pct,
    mode=SETTINGS.webhook.mode,
)


def hourly(values: list[float]) -> StepSeries:
    return StepSeries.regular(to_epoch(T0) - HOUR, HOUR, np.array(values))


# 400 g/kWh, except 50 g/kWh from T0+3h to T0+5h.
CLEAN_AT_3H = hourly([50.0 if 4 <= h < 6 else 400.0 for h in range(48)])


def forecast(series: StepSeries | None = CLEAN_AT_3H) -> ForecastResult:
    if series is None:
        return ForecastResult("DE", "replay", "none", None, None, False, "replay: no data")
    return ForecastResult("DE", "replay", "provider", series, 60.0, False, None)


def knowledge(now: datetime, result: ForecastResult | None = None) -> CheckKnowledge:
    return CheckKnowledge(
        now=now,
        defaults=DEFAULTS,
        catalog=CATALOG,
        energy=SETTINGS.energy,
        planner=SETTINGS.planner,
        forecast=lambda zone: result,
        recheck_s=60.0,
    )


def pod_template(gpus: int = 0, cpu: str = "1") -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": cpu}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    return {
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"requests": requests}}
            ]
        }
    }


def workload(
    *,
    state: str = "Pending",
    annotations: dict[str, str] | None = None,
    podsets: list[dict[str, Any]] | None = None,
    created: datetime = T0,
) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": "job-train-1a2b3",
            "namespace": "ml",
            "uid": "0f0e0d0c-0000-4000-8000-000000000001",
            "resourceVersion": "42",
            "creationTimestamp": format_time(created),
            "annotations": annotations or {},
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "controller": True}
            ],
        },
        "spec": {
            "queueName": "lq",
            "podSets": podsets
            if podsets is not None
            else [{"name": "main", "count": 4, "template": pod_template(gpus=2)}],
        },
        "status": {
            "admissionChecks": [
                {
                    "name": CHECK,
                    "state": state,
                    "message": "",
                    "lastTransitionTime": format_time(created),
                },
                {"name": "other", "state": "Pending", "message": "", "lastTransitionTime": "x"},
            ]
        },
    }


def judge(
    obj: dict[str, Any],
    now: datetime,
    result: ForecastResult | None = None,
    *,
    owner: dict[str, str] | None = None,
    namespace: Inputs = Inputs(),  # noqa: B008 (immutable)
) -> Verdict | None:
    return judge_workload(
        read_workload(obj),
        CHECK,
        owner_annotations=owner or {},
        namespace_inputs=namespace,
        knowledge=knowledge(now, result),
    )


def test_energy_counts_every_pod_of_every_pod_set() -> None:
    obj = workload(
        podsets=[
            {"name": "leader", "count": 1, "template": pod_template(gpus=1)},
            {"name": "workers", "count": 3, "template": pod_template(gpus=2, cpu="4")},
        ]
    )
    resources = podset_resources(obj)
    assert (resources.pods, resources.gpu_count, resources.cpu_cores) == (4, 7, 13.0)


@pytest.mark.parametrize(
    ("podsets", "message"),
    [
        ([], "spec.podSets: expected a non-empty list"),
        ([{"name": "main", "template": pod_template()}], "spec.podSets[0].count: missing"),
        ([{"name": "m", "count": -1, "template": pod_template()}], "spec.podSets[0].count"),
        ([{"name": "main", "count": 1}], "spec.podSets[0].template: missing"),
    ],
    ids=["empty", "no-count", "negative-count", "no-template"],
)
def test_bad_pod_sets_are_named(podsets: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(JobSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        podset_resources(workload(podsets=podsets))


def test_held_for_the_clean_window_with_when_and_why() -> None:
    verdict = judge(workload(), T0, forecast())
    assert verdict is not None
    assert verdict.state == CheckState.PENDING
    assert verdict.decision == Decision.DEFERRED
    assert verdict.wake_at == at(3 * HOUR)
    assert verdict.message.startswith(
        f"held for a cleaner window: release at {format_time(at(3 * HOUR))}"
    )
    assert "intensity now 400.0, then 50.0 gCO2/kWh, saving 87.5 %" in verdict.message
    assert f"latest start {format_time(at(12 * HOUR))}" in verdict.message
    recorded = verdict.annotations
    assert recorded[keys.DECISION] == "deferred"
    assert recorded[keys.RELEASE_AT] == format_time(at(3 * HOUR))
    assert recorded[keys.RELEASE_BY] == format_time(at(12 * HOUR))
    assert recorded[keys.ADMITTED_AT] == format_time(T0)
    assert float(recorded[keys.ENERGY_KWH]) > 0


def test_recorded_plan_stays_pending_then_turns_ready_at_the_window() -> None:
    held = judge(workload(), T0, forecast())
    assert held is not None
    recorded = dict(held.annotations)
    before = judge(workload(annotations=recorded), at(3 * HOUR - 1), None)
    assert before is not None
    assert (before.state, before.wake_at) == (CheckState.PENDING, at(3 * HOUR))
    assert before.message == held.message  # rebuilt from the annotations: same after a restart
    ready = judge(workload(annotations=recorded), at(3 * HOUR), None)
    assert ready is not None
    assert (ready.state, ready.ready_reason) == (CheckState.READY, ReadyReason.WINDOW)
    assert ready.annotations[keys.RELEASE_REASON] == "window"
    assert ready.wake_at is None


def test_without_a_forecast_it_waits_and_is_ready_at_its_latest_start() -> None:
    down = forecast(None)
    waiting = judge(workload(), T0, down)
    assert waiting is not None
    assert waiting.state == CheckState.PENDING
    assert waiting.code == "no-forecast"
    assert "replay: no data" in waiting.message
    assert waiting.wake_at == at(60)
    assert waiting.annotations[keys.RELEASE_BY] == format_time(at(12 * HOUR))
    assert keys.DECISION not in waiting.annotations
    near = judge(workload(), at(12 * HOUR - 30), down)
    assert near is not None
    assert near.wake_at == at(12 * HOUR)  # never sleeps past the deadline
    late = judge(workload(), at(12 * HOUR), down)
    assert late is not None
    assert (late.state, late.ready_reason) == (CheckState.READY, ReadyReason.DEADLINE)


def test_owner_annotations_win_over_namespace_and_global_defaults() -> None:
    verdict = judge(
        workload(),
        T0,
        forecast(),
        owner={keys.MAX_DELAY: "2h"},
        namespace=Inputs(max_delay_s=6 * HOUR, zone="FR"),
    )
    assert verdict is not None
    assert verdict.zone == "FR"
    # The clean hours start at 3h, after the 2h the Job allows: nothing to gain, run now.
    assert verdict.state == CheckState.READY
    assert verdict.decision == Decision.RUN_NOW
    assert verdict.annotations[keys.RELEASE_BY] == format_time(at(2 * HOUR))


@pytest.mark.parametrize(
    ("owner", "code", "decision"),
    [
        ({keys.SKIP: "true"}, "opted-out", Decision.SKIPPED),
        ({keys.MAX_DELAY: "soon"}, "invalid-annotations", Decision.SKIPPED),
        ({keys.MAX_DELAY: "30s"}, "no-room", Decision.SKIPPED),
        ({keys.MODE: "observe"}, "cleaner-window", Decision.OBSERVED),
    ],
    ids=["skip", "bad-annotation", "no-room", "observe"],
)
def test_rules_that_never_hold_a_workload(
    owner: dict[str, str], code: str, decision: Decision
) -> None:
    verdict = judge(workload(), T0, forecast(), owner=owner)
    assert verdict is not None
    assert verdict.state == CheckState.READY
    assert verdict.decision == decision
    assert verdict.annotations[keys.DECISION] == decision.value
    if decision != Decision.OBSERVED:
        assert verdict.code == code


def test_unreadable_pod_sets_are_admitted_now() -> None:
    verdict = judge(workload(podsets=[{"name": "m", "count": 1}]), T0, forecast())
    assert verdict is not None
    assert (verdict.state, verdict.code) == (CheckState.READY, "no-estimate")
    assert "spec.podSets[0].template: missing" in verdict.message


@pytest.mark.parametrize("state", ["Ready", "Rejected"])
def test_a_settled_check_is_left_alone(state: str) -> None:
    assert judge(workload(state=state), T0, forecast()) is None


def test_a_workload_without_our_check_is_left_alone() -> None:
    obj = workload()
    obj["status"]["admissionChecks"] = obj["status"]["admissionChecks"][1:]
    assert judge(obj, T0, forecast()) is None


def test_only_checks_with_greenlights_controller_name_are_ours() -> None:
    names = {"greenlight-carbon": "greenlight.dev/carbon", "prov": "kueue.x-k8s.io/provisioning"}
    assert our_checks(names) == {"greenlight-carbon"}


def test_writes_touch_only_what_changed() -> None:
    view: WorkloadView = read_workload(workload())
    verdict = judge(workload(), T0, forecast())
    assert verdict is not None
    patch = annotation_patch(view, verdict)
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "42"
    entry = check_status(view, CHECK, verdict, T0 + timedelta(seconds=5))
    assert entry is not None
    assert entry["state"] == "Pending"
    assert entry["lastTransitionTime"] == format_time(T0)  # the state did not change
    body = status_apply(view, "kueue.x-k8s.io/v1beta2", [entry])
    assert body["status"]["admissionChecks"] == [entry]  # never the other check's entry
    again = read_workload(
        workload(annotations=dict(verdict.annotations)) | {"status": {"admissionChecks": [entry]}}
    )
    assert annotation_patch(again, verdict) is None
    assert check_status(again, CHECK, verdict, T0) is None


def test_a_workload_seen_ready_in_its_annotations_before_its_state_records_nothing_new() -> None:
    held = judge(workload(), T0, forecast())
    assert held is not None
    ready = judge(workload(annotations=dict(held.annotations)), at(3 * HOUR), None)
    assert ready is not None
    recorded = {**held.annotations, **ready.annotations}
    # The watch may bring the annotation write before the state write: the same Ready again.
    again = judge(workload(annotations=recorded), at(3 * HOUR + 2), None)
    assert again is not None
    assert again.state == CheckState.READY
    assert again.message == ready.message
    assert again.message == (
        f"ready at {format_time(at(3 * HOUR))} (window): its planned window "
        f"{format_time(at(3 * HOUR))} has come"
    )
    assert (dict(again.annotations), again.decision, again.ready_reason) == ({}, None, None)


def test_the_deadline_message_says_no_forecast_came_in_time() -> None:
    late = judge(workload(), at(12 * HOUR), forecast(None))
    assert late is not None
    assert late.message.endswith(
        f"its latest start {format_time(at(12 * HOUR))} has come with no usable forecast before it"
    )


def _finished(annotations: dict[str, str], start: datetime, end: datetime) -> dict[str, Any]:
    obj = workload(state="Ready", annotations=annotations)
    obj["status"]["conditions"] = [
        {"type": "Admitted", "status": "True", "lastTransitionTime": format_time(start)},
        {
            "type": "Finished",
            "status": "True",
            "reason": "Succeeded",
            "lastTransitionTime": format_time(end),
        },
    ]
    return obj


def test_a_finished_workload_greenlight_held_is_accounted_from_admitted_to_finished() -> None:
    held = judge(workload(), T0, forecast())
    assert held is not None
    ready = judge(workload(annotations=dict(held.annotations)), at(3 * HOUR), None)
    assert ready is not None
    released = {**held.annotations, **ready.annotations}
    start, end = at(3 * HOUR + 10), at(3 * HOUR + 10 + 1800)
    observed = StepSeries.regular(to_epoch(T0), int(HOUR), [400.0] * 3 + [100.0] * 3)
    run = account_workload(read_workload(_finished(released, start, end)), lambda zone: observed)
    assert isinstance(run, FinishedRun)
    assert run.outcome == "Succeeded"
    assert run.accounting.run_s == 1800
    assert run.accounting.intensity_g_per_kwh == pytest.approx(100.0)
    assert run.accounting.basis == "observed"
    written = run.patch["metadata"]
    assert written["resourceVersion"] == "42"
    assert float(written["annotations"][keys.ACTUAL_EMISSIONS_G]) == pytest.approx(
        run.accounting.emissions_g, abs=0.1
    )
    assert run.accounting.savings_g > 0  # admitted in the 400 g/kWh hours
    # Accounted once; never before it finishes, nor when greenlight did not release it.
    done = {**released, **written["annotations"]}
    assert account_workload(read_workload(_finished(done, start, end)), lambda z: None) is None
    assert account_workload(read_workload(workload(annotations=released)), lambda z: None) is None
    unreleased = {k: v for k, v in released.items() if k != keys.RELEASED_AT}
    assert (
        account_workload(read_workload(_finished(unreleased, start, end)), lambda z: None) is None
    )


def test_a_finished_workload_with_an_unreadable_plan_says_why_it_is_not_accounted() -> None:
    broken = {keys.DECISION: "deferred", keys.RELEASED_AT: format_time(at(HOUR))}
    why = account_workload(read_workload(_finished(broken, at(HOUR), at(2 * HOUR))), lambda z: None)
    assert isinstance(why, str)
    assert "greenlight.dev/" in why

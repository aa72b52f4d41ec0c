from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reviews import body, job, review
from test_workloads import jobset, pytorchjob

from webhook.admission.mutate import Admission, Judgement, MutationContext, judge
from webhook.admission.review import AdmissionRequest, apply_patch, decode_review
from webhook.config.settings import Settings, WebhookSettings
from webhook.config.workloads import WorkloadSettings
from webhook.core import annotations as keys
from webhook.core.annotations import Inputs, Mode
from webhook.core.cost import FlatPrice
from webhook.core.energy import load_catalog
from webhook.core.forecast import ForecastResult, ForecastUncertainty
from webhook.core.reasons import ReasonCode, decision_reasons
from webhook.core.series import StepSeries, to_epoch
from webhook.telemetry.metrics import Metrics

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
HOUR = 3600
CLEAN_AT = NOW + timedelta(hours=6)


def _dirty_then_clean() -> StepSeries:
    """400 g/kWh now, 100 g/kWh from +6 h to +10 h, 400 after (48 h, hourly)."""
    values = [400.0] * 48
    for hour in range(7, 11):  # the series starts an hour before NOW
        values[hour] = 100.0
    return StepSeries.regular(to_epoch(NOW) - HOUR, HOUR, values)


class FixedForecasts:
    """Snapshots held in memory: one result for every zone (or none)."""

    def __init__(
        self,
        series: StepSeries | None,
        *,
        age_s: float = 300.0,
        provider: str = "replay",
        uncertainty: ForecastUncertainty | None = None,
    ) -> None:
        self.series = series
        self.uncertainty = uncertainty
        self.age_s = age_s
        self.provider = provider
        self.asked: list[str] = []

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        self.asked.append(zone)
        if self.series is None:
            return ForecastResult(
                zone, self.provider, "none", None, None, True, "no replay forecast fetched yet"
            )
        return ForecastResult(
            zone,
            self.provider,
            "provider",
            self.series,
            self.age_s,
            False,
            None,
            self.uncertainty,
        )


def _context(
    forecasts: FixedForecasts | None = None,
    namespace_defaults: dict[str, Inputs] | None = None,
    settings: Settings | None = None,
) -> MutationContext:
    settings = settings or Settings()
    defaults = namespace_defaults or {}
    return MutationContext(
        settings=settings,
        catalog=load_catalog(settings.energy),
        prices=None,
        forecasts=forecasts or FixedForecasts(_dirty_then_clean()),
        namespace_defaults=lambda ns: defaults.get(ns, Inputs()),
    )


def _request(obj: dict[str, Any] | None = None, **kwargs: Any) -> AdmissionRequest:
    return decode_review(body(review(obj if obj is not None else job(), **kwargs)))


def _stored(request: AdmissionRequest, context: MutationContext) -> dict[str, Any]:
    """The Job as the apiserver would store it after greenlight's patch."""
    response = judge(request, context, NOW).response
    assert response.allowed
    return apply_patch(request.object, response.patch)


def test_a_deferral_carries_the_measured_error_at_its_lead_and_a_saving_range() -> None:
    # Released 6 h after admission: the error measured at lead 6 h is the one reported.
    measured = ForecastUncertainty(9.0, by_lead_pct=(0.0, 1.0, 2.0, 3.0, 3.5, 3.8, 4.0, 8.0))
    forecasts = FixedForecasts(_dirty_then_clean(), uncertainty=measured)
    stored = _stored(_request(job(annotations={keys.EXPECTED_DURATION: "1h"})), _context(forecasts))
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.RELEASE_AT] == "2025-06-02T18:00:00Z"
    assert annotations[keys.FORECAST_ERROR_PCT] == "4.0"
    assert (annotations[keys.SAVINGS_PCT_LOW], annotations[keys.SAVINGS_PCT_HIGH]) == (
        "71.0",
        "79.0",
    )


def test_without_a_measured_error_no_range_is_claimed() -> None:
    stored = _stored(_request(job(annotations={keys.EXPECTED_DURATION: "1h"})), _context())
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.DECISION] == "deferred"
    assert keys.FORECAST_ERROR_PCT not in annotations
    assert keys.SAVINGS_PCT_LOW not in annotations


def test_a_job_is_deferred_to_the_cleanest_window_with_every_annotation() -> None:
    stored = _stored(_request(job(annotations={keys.EXPECTED_DURATION: "1h"})), _context())
    annotations = stored["metadata"]["annotations"]
    assert stored["spec"]["suspend"] is True
    assert annotations[keys.DECISION] == "deferred"
    assert annotations[keys.REASON_CODE] == "window"
    assert annotations[keys.RELEASE_AT] == "2025-06-02T18:00:00Z"
    assert annotations[keys.RELEASE_BY] == "2025-06-03T12:00:00Z"
    assert annotations[keys.ADMITTED_AT] == "2025-06-02T12:00:00Z"
    assert annotations[keys.INTENSITY_NOW] == "400.0"
    assert annotations[keys.INTENSITY_PLANNED] == "100.0"
    assert annotations[keys.SAVINGS_PCT] == "75.0"
    energy = float(annotations[keys.ENERGY_KWH])
    assert energy > 0
    assert float(annotations[keys.EMISSIONS_NOW_G]) == pytest.approx(400 * energy, rel=1e-3)
    assert float(annotations[keys.SAVINGS_G]) == pytest.approx(300 * energy, rel=1e-3)
    assert annotations[keys.PLANNED_ZONE] == "DE"
    assert annotations[keys.PLANNED_DURATION_S] == "3600"
    assert (annotations[keys.PROVIDER], annotations[keys.FORECAST_SOURCE]) == ("replay", "provider")
    assert annotations[keys.FORECAST_AGE_S] == "300"
    assert "deferred to 2025-06-02T18:00:00Z" in annotations[keys.REASON]


def test_the_patch_adds_the_annotations_map_when_the_job_has_none() -> None:
    request = _request(job(annotations=None))
    response = judge(request, _context(), NOW).response
    paths = {op["path"] for op in response.patch}
    assert paths == {"/metadata/annotations", "/spec/suspend"}


def test_existing_annotations_are_kept() -> None:
    stored = _stored(_request(job(annotations={"team": "vision"})), _context())
    assert stored["metadata"]["annotations"]["team"] == "vision"


def test_resubmitting_the_output_yields_no_patch() -> None:
    context = _context()
    stored = _stored(_request(), context)
    again = judge(_request(stored), context, NOW + timedelta(seconds=1))
    assert not again.response.patch
    assert again.decision is None


def test_a_flat_forecast_runs_now_with_the_numbers_annotated() -> None:
    flat = FixedForecasts(StepSeries.regular(to_epoch(NOW) - HOUR, HOUR, [300.0] * 48))
    stored = _stored(_request(), _context(flat))
    annotations = stored["metadata"]["annotations"]
    assert "suspend" not in stored["spec"]
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == ("run-now", "best-now")
    assert annotations[keys.INTENSITY_NOW] == "300.0"
    assert keys.RELEASE_AT not in annotations


@pytest.mark.parametrize(
    ("annotations", "namespace_defaults"),
    [
        pytest.param({keys.MODE: "observe"}, {}, id="job-annotation"),
        pytest.param({}, {"ml": Inputs(mode=keys.Mode.OBSERVE)}, id="namespace-default"),
    ],
)
def test_observe_mode_annotates_the_decision_without_suspending(
    annotations: dict[str, str], namespace_defaults: dict[str, Inputs]
) -> None:
    stored = _stored(_request(job(annotations=annotations)), _context(None, namespace_defaults))
    result = stored["metadata"]["annotations"]
    assert "suspend" not in stored["spec"]
    assert result[keys.DECISION] == "observed"
    assert result[keys.RELEASE_AT] == "2025-06-02T18:00:00Z"
    assert "observe mode" in result[keys.REASON]


def test_observe_mode_from_global_settings() -> None:
    settings = Settings(webhook=WebhookSettings(mode=Mode.OBSERVE))
    stored = _stored(_request(), _context(settings=settings))
    assert stored["metadata"]["annotations"][keys.DECISION] == "observed"


def test_a_job_annotation_wins_over_the_namespace_default() -> None:
    context = _context(None, {"ml": Inputs(mode=keys.Mode.OBSERVE)})
    stored = _stored(_request(job(annotations={keys.MODE: "defer"})), context)
    assert stored["metadata"]["annotations"][keys.DECISION] == "deferred"


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        pytest.param(job(annotations={keys.SKIP: "true"}), "skip-annotation", id="skip"),
        pytest.param(job(annotations={"helm.sh/hook": "pre-upgrade"}), "helm-hook", id="helm"),
        pytest.param(
            job(annotations={"argocd.argoproj.io/hook": "Sync"}), "argocd-hook", id="argo"
        ),
        pytest.param(job(labels={"kueue.x-k8s.io/queue-name": "q"}), "kueue", id="kueue"),
        pytest.param(job(suspend=True), "user-suspended", id="user-suspended"),
        pytest.param(job(owner_kind="CronJob"), "cronjob", id="cronjob-without-own-delay"),
        pytest.param(job(annotations={keys.MAX_DELAY: "30s"}), "no-room", id="no-room"),
        pytest.param(
            job(annotations={keys.DEADLINE: "2025-06-02T12:30:00Z", keys.EXPECTED_DURATION: "1h"}),
            "no-room",
            id="deadline-passed-for-duration",
        ),
        pytest.param(job(annotations={keys.MODE: "loud"}), "invalid-annotations", id="invalid"),
    ],
)
def test_jobs_that_must_not_wait_are_annotated_skipped_and_left_unsuspended(
    obj: dict[str, Any], code: str
) -> None:
    request = _request(obj)
    judgement = judge(request, _context(), NOW)
    stored = apply_patch(request.object, judgement.response.patch)
    annotations = stored["metadata"]["annotations"]
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == ("skipped", code)
    assert stored["spec"].get("suspend") is obj["spec"].get("suspend")


def test_a_cronjob_run_with_its_own_max_delay_waits_at_most_that_long() -> None:
    obj = job(owner_kind="CronJob", annotations={keys.MAX_DELAY: "8h"})
    stored = _stored(_request(obj), _context())
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.DECISION] == "deferred"
    assert annotations[keys.RELEASE_BY] == "2025-06-02T20:00:00Z"


def test_a_deadline_bounds_the_release_by_the_run_time() -> None:
    obj = job(annotations={keys.DEADLINE: "2025-06-02T17:30:00Z", keys.EXPECTED_DURATION: "1h"})
    stored = _stored(_request(obj), _context())
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.RELEASE_BY] == "2025-06-02T16:30:00Z"
    assert annotations[keys.DECISION] == "run-now"  # the clean window starts too late


@pytest.mark.parametrize(
    ("annotations", "namespace_defaults", "recorded"),
    [
        pytest.param({}, {}, "1.0", id="global-default"),
        pytest.param({}, {"ml": Inputs(min_savings_pct=40.0)}, "40.0", id="namespace-default"),
        pytest.param({}, {"ml": Inputs(min_savings_pct=0.04)}, "0.04", id="not-rounded"),
        pytest.param(
            {keys.MIN_SAVINGS: "20"}, {"ml": Inputs(min_savings_pct=40.0)}, "20.0", id="job"
        ),
    ],
)
def test_a_deferral_records_the_minimum_saving_it_was_planned_with(
    annotations: dict[str, str], namespace_defaults: dict[str, Inputs], recorded: str
) -> None:
    stored = _stored(_request(job(annotations=annotations)), _context(None, namespace_defaults))
    result = stored["metadata"]["annotations"]
    assert result[keys.DECISION] == "deferred"
    assert result[keys.PLANNED_MIN_SAVINGS_PCT] == recorded


def test_a_minimum_saving_above_the_best_window_runs_now() -> None:
    stored = _stored(_request(job(annotations={keys.MIN_SAVINGS: "90"})), _context())
    annotations = stored["metadata"]["annotations"]
    assert keys.PLANNED_MIN_SAVINGS_PCT not in annotations  # recorded for deferrals only
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == (
        "run-now",
        "saving-below-threshold",
    )


def test_a_stale_forecast_runs_now_with_that_reason() -> None:
    stale = FixedForecasts(_dirty_then_clean(), age_s=7 * HOUR)
    stored = _stored(_request(), _context(stale))
    annotations = stored["metadata"]["annotations"]
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == (
        "run-now",
        "stale-forecast",
    )
    assert "25200 s old" in annotations[keys.REASON]


def test_no_forecast_runs_now_with_the_sources_reason() -> None:
    stored = _stored(_request(), _context(FixedForecasts(None)))
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.REASON_CODE] == "no-forecast"
    assert "no replay forecast fetched yet" in annotations[keys.REASON]


def test_an_unknown_gpu_model_runs_now_saying_why() -> None:
    obj = job(gpu_product=None, annotations={keys.GPU_MODEL: "Voodoo2"})
    stored = _stored(_request(obj), _context())
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.REASON_CODE] == "no-estimate"
    assert "Voodoo2" in annotations[keys.REASON]


def test_the_zone_comes_from_the_job_then_namespace_then_settings() -> None:
    forecasts = FixedForecasts(_dirty_then_clean())
    context = _context(forecasts, {"ml": Inputs(zone="FR")})
    judge(_request(job(annotations={keys.ZONE: "GB"})), context, NOW)
    judge(_request(job()), context, NOW)
    judge(_request(job(namespace="other")), context, NOW)
    assert forecasts.asked == ["GB", "FR", "DE"]


@pytest.mark.parametrize(
    ("request_kwargs", "namespace"),
    [
        pytest.param({"operation": "UPDATE", "old": job()}, "ml", id="update"),
        pytest.param({"kind": ("batch", "v1", "CronJob")}, "ml", id="not-a-job"),
        pytest.param({}, "kube-system", id="kube-system"),
        pytest.param({}, "greenlight", id="own-namespace"),
    ],
)
def test_requests_that_are_not_judged_get_no_patch(
    request_kwargs: dict[str, Any], namespace: str
) -> None:
    judgement = judge(_request(job(namespace=namespace), **request_kwargs), _context(), NOW)
    assert judgement.response.allowed
    assert not judgement.response.patch
    assert judgement.decision is None


def _decisions(metrics: Metrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "greenlight_decisions"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_a_dry_run_gets_the_same_answer_and_records_no_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    admission = Admission(_context(), metrics, clock=lambda: NOW)
    caplog.set_level(logging.INFO, logger="webhook.admission.mutate")

    dry = admission.mutate(_request(dry_run=True))
    assert _decisions(metrics) == 0
    assert "decision" not in caplog.text

    real = admission.mutate(_request())
    assert dry == real
    assert _decisions(metrics) == 1
    assert "decision job=ml/train kind=Job decision=deferred reason=window" in caplog.text
    assert "savings_g=" in caplog.text


def test_the_patch_replaces_the_annotations_map_in_one_operation_keeping_other_keys() -> None:
    request = _request(job(annotations={"team": "vision", keys.ZONE: "DE"}))
    response = judge(request, _context(), NOW).response
    assert [op["path"] for op in response.patch] == ["/metadata/annotations", "/spec/suspend"]
    stored = apply_patch(request.object, response.patch)
    assert stored["metadata"]["annotations"]["team"] == "vision"
    assert stored["metadata"]["annotations"][keys.ZONE] == "DE"


def test_a_job_without_metadata_still_gets_an_applicable_patch() -> None:
    obj = job()
    del obj["metadata"]
    request = _request(obj)
    stored = apply_patch(request.object, judge(request, _context(), NOW).response.patch)
    assert stored["metadata"]["annotations"][keys.DECISION] == "deferred"


def test_jobs_with_equal_inputs_in_the_same_second_share_one_plan() -> None:
    context = _context()
    first = judge(_request(job("a")), context, NOW)
    again = judge(_request(job("b")), context, NOW + timedelta(microseconds=500))
    later = judge(_request(job("c")), context, NOW + timedelta(seconds=1))
    assert first.plan is again.plan
    assert later.plan is not first.plan
    assert later.plan is not None
    assert later.plan.decided_at == NOW + timedelta(seconds=1)


def test_a_new_forecast_object_is_planned_afresh() -> None:
    forecasts = FixedForecasts(_dirty_then_clean())
    context = _context(forecasts)
    first = judge(_request(), context, NOW)
    forecasts.series = StepSeries.regular(to_epoch(NOW) - HOUR, HOUR, [300.0] * 48)
    second = judge(_request(), context, NOW)
    assert (first.decision, second.decision) == (keys.Decision.DEFERRED, keys.Decision.RUN_NOW)


def test_a_price_puts_the_cost_in_the_annotations_and_the_cost_metric() -> None:
    context = _context()
    priced = MutationContext(
        settings=context.settings,
        catalog=context.catalog,
        prices=FlatPrice(0.25),
        forecasts=context.forecasts,
        namespace_defaults=context.namespace_defaults,
    )
    metrics = Metrics()
    request = _request(job(annotations={keys.EXPECTED_DURATION: "1h"}))
    response = Admission(priced, metrics, clock=lambda: NOW).mutate(request)
    annotations = apply_patch(request.object, response.patch)["metadata"]["annotations"]
    energy = float(annotations[keys.ENERGY_KWH])
    assert float(annotations[keys.COST_NOW_USD]) == pytest.approx(0.25 * energy, rel=1e-2)
    cost = {
        when: metrics.registry.get_sample_value(
            "greenlight_estimated_cost_usd_total", {"when": when}
        )
        for when in ("now", "planned")
    }
    # A flat price: the same cost now and as planned, as annotated (rounded there).
    assert cost["now"] == pytest.approx(float(annotations[keys.COST_NOW_USD]), rel=1e-3)
    assert cost["planned"] == pytest.approx(float(annotations[keys.COST_PLANNED_USD]), rel=1e-3)
    assert cost["now"] == pytest.approx(cost["planned"])


def _annotations(request: AdmissionRequest, judgement: Judgement) -> dict[str, str]:
    stored = apply_patch(request.object, judgement.response.patch)
    annotations: dict[str, str] = stored["metadata"]["annotations"]
    return annotations


def test_jobs_sharing_a_plan_are_annotated_with_the_forecast_they_were_judged_on() -> None:
    forecasts = FixedForecasts(_dirty_then_clean(), age_s=300.0)
    context = _context(forecasts)
    first = judge(_request(job("a")), context, NOW)
    forecasts.age_s = 420.0
    forecasts.provider = "electricitymaps"
    request = _request(job("b"))
    again = judge(request, context, NOW + timedelta(microseconds=500))
    assert again.plan is first.plan
    annotations = _annotations(request, again)
    assert annotations[keys.FORECAST_AGE_S] == "420"
    assert annotations[keys.PROVIDER] == "electricitymaps"


def test_a_namespace_default_changed_between_jobs_applies_to_the_next_job() -> None:
    forecasts = FixedForecasts(_dirty_then_clean())
    defaults = {"ml": Inputs(zone="FR")}
    context = _context(forecasts, defaults)
    judge(_request(job("a")), context, NOW)
    defaults["ml"] = Inputs(zone="GB")
    judge(_request(job("b")), context, NOW)
    assert forecasts.asked == ["FR", "GB"]


def test_jobs_with_different_resources_get_their_own_energy_estimate() -> None:
    context = _context()
    one = judge(_request(job("a", gpus=1)), context, NOW)
    four = judge(_request(job("b", gpus=4)), context, NOW)
    again = judge(_request(job("c", gpus=1)), context, NOW)
    assert one.energy_kwh is not None
    assert four.energy_kwh is not None
    assert four.energy_kwh > one.energy_kwh
    assert again.energy_kwh == one.energy_kwh


def test_every_decision_is_counted_and_logged_with_its_own_numbers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    admission = Admission(_context(), metrics, clock=lambda: NOW)
    caplog.set_level(logging.INFO, logger="webhook.admission.mutate")
    energies = []
    for name, duration in (("a", "1h"), ("b", "2h"), ("c", "1h")):
        request = _request(job(name, annotations={keys.EXPECTED_DURATION: duration}))
        response = admission.mutate(request)
        stored = apply_patch(request.object, response.patch)
        energies.append(stored["metadata"]["annotations"][keys.ENERGY_KWH])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decision ")]
    assert len(lines) == 3
    for name, energy, line in zip("abc", energies, lines, strict=True):
        assert line.startswith(f"decision job=ml/{name} kind=Job decision=deferred reason=window")
        assert f" energy_kwh={energy} " in line
    assert energies[0] != energies[1]
    counted = metrics.registry.get_sample_value(
        "greenlight_decisions_total", {"decision": "deferred", "reason": "window"}
    )
    assert counted == 3


def _jobset_child() -> dict[str, Any]:
    obj = job()
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "name": "sweep",
            "uid": "0b7c5c7e-0000-4000-8000-000000000002",
            "controller": True,
        }
    ]
    return obj


_FLAT = StepSeries.regular(to_epoch(NOW) - HOUR, HOUR, [300.0] * 48)
_SHORT = StepSeries.regular(to_epoch(NOW) - HOUR, HOUR, [400.0, 100.0])
_NO_WAIT = Settings(webhook=WebhookSettings(min_wait_s=0))
# One scenario per (decision, reason code) the admission path can record.
REASON_SCENARIOS = [
    pytest.param(job(annotations={keys.MODE: "loud"}), {}, ("skipped", "invalid-annotations")),
    pytest.param(job(annotations={keys.SKIP: "true"}), {}, ("skipped", "skip-annotation")),
    pytest.param(job(annotations={"helm.sh/hook": "pre-upgrade"}), {}, ("skipped", "helm-hook")),
    pytest.param(
        job(annotations={"argocd.argoproj.io/hook": "Sync"}), {}, ("skipped", "argocd-hook")
    ),
    pytest.param(_jobset_child(), {}, ("skipped", "owned-by-workload")),
    pytest.param(job(labels={"kueue.x-k8s.io/queue-name": "q"}), {}, ("skipped", "kueue")),
    pytest.param(job(suspend=True), {}, ("skipped", "user-suspended")),
    pytest.param(job(owner_kind="CronJob"), {}, ("skipped", "cronjob")),
    pytest.param(job(annotations={keys.MAX_DELAY: "30s"}), {}, ("skipped", "no-room")),
    pytest.param(
        job(gpu_product=None, annotations={keys.GPU_MODEL: "Voodoo2"}),
        {},
        ("run-now", "no-estimate"),
    ),
    pytest.param(job(), {"forecasts": FixedForecasts(None)}, ("run-now", "no-forecast")),
    pytest.param(
        job(),
        {"forecasts": FixedForecasts(_dirty_then_clean(), age_s=7 * HOUR)},
        ("run-now", "stale-forecast"),
    ),
    pytest.param(job(), {"forecasts": FixedForecasts(_FLAT)}, ("run-now", "best-now")),
    pytest.param(
        job(annotations={keys.MIN_SAVINGS: "90"}), {}, ("run-now", "saving-below-threshold")
    ),
    pytest.param(
        job(),
        {"forecasts": FixedForecasts(_dirty_then_clean(), uncertainty=ForecastUncertainty(500.0))},
        ("run-now", "saving-within-uncertainty"),
    ),
    pytest.param(
        job(annotations={keys.MAX_DELAY: "0s"}),
        {"settings": _NO_WAIT},
        ("run-now", "no-room-before-deadline"),
    ),
    pytest.param(
        job(annotations={keys.EXPECTED_DURATION: "3h"}),
        {"forecasts": FixedForecasts(_SHORT)},
        ("run-now", "forecast-too-short"),
    ),
    pytest.param(job(), {}, ("deferred", "window")),
    pytest.param(job(annotations={keys.MODE: "observe"}), {}, ("observed", "window")),
]


@pytest.mark.parametrize(
    ("obj", "context_kwargs", "expected"),
    REASON_SCENARIOS,
    ids=["/".join(p.values[2]) for p in REASON_SCENARIOS],  # type: ignore[arg-type]
)
def test_each_reason_code_is_recorded_with_its_decision(
    obj: dict[str, Any], context_kwargs: dict[str, Any], expected: tuple[str, str]
) -> None:
    request = _request(obj)
    judgement = judge(request, _context(**context_kwargs), NOW)
    assert judgement.decision is not None
    assert isinstance(judgement.code, ReasonCode)
    assert (judgement.decision.value, judgement.code.value) == expected
    annotations = apply_patch(request.object, judgement.response.patch)["metadata"]["annotations"]
    assert (annotations[keys.DECISION], annotations[keys.REASON_CODE]) == expected


def test_the_reason_scenarios_cover_every_pair_the_counter_starts_at_zero() -> None:
    """With the test above: every pair declared is reachable, and every one reached is declared
    (so none can appear in greenlight_decisions_total without having been started at 0)."""
    covered = {p.values[2] for p in REASON_SCENARIOS}
    declared = {(d.value, c.value) for d, c in decision_reasons()}
    assert covered == declared, covered ^ declared


def _gang_request(obj: dict[str, Any], group: str, version: str) -> AdmissionRequest:
    return _request(obj, kind=(group, version, obj["kind"]))


def test_a_jobset_is_deferred_as_one_gang_by_its_own_suspend_flag() -> None:
    gang = jobset(("leader", 1, 1, 8), ("workers", 3, 2, 8))
    stored = _stored(_gang_request(gang, "jobset.x-k8s.io", "v1alpha2"), _context())
    assert stored["spec"]["suspend"] is True
    for replicated in stored["spec"]["replicatedJobs"]:  # the children are left to the JobSet
        assert "suspend" not in replicated["template"]["spec"]
    assert stored["metadata"]["annotations"][keys.DECISION] == "deferred"
    one_pod = jobset(("single", 1, 1, 8))
    single = _stored(_gang_request(one_pod, "jobset.x-k8s.io", "v1alpha2"), _context())
    # 1 + 3 x 2 pods of 8 GPUs: seven times the energy of one such pod
    gang_kwh = float(stored["metadata"]["annotations"][keys.ENERGY_KWH])
    one_kwh = float(single["metadata"]["annotations"][keys.ENERGY_KWH])
    assert gang_kwh == pytest.approx(7 * one_kwh, rel=0.02)


def test_a_pytorchjob_is_deferred_through_its_run_policy() -> None:
    ddp = pytorchjob(master_gpus=8, workers=3, worker_gpus=8)
    ddp["spec"]["runPolicy"] = {"cleanPodPolicy": "None"}
    stored = _stored(_gang_request(ddp, "kubeflow.org", "v1"), _context())
    assert stored["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "suspend": True}
    assert "suspend" not in stored["spec"]


def test_a_kind_left_out_of_the_settings_is_not_judged() -> None:
    settings = Settings(workloads=WorkloadSettings(enabled=("Job",)))
    request = _gang_request(jobset(("workers", 2, 1, 8)), "jobset.x-k8s.io", "v1alpha2")
    judgement = judge(request, _context(settings=settings), NOW)
    assert (judgement.decision, judgement.code) == (None, "kind-not-enabled")
    assert judgement.response.patch == ()


def test_a_user_suspended_jobset_is_skipped_and_never_marked_deferred() -> None:
    gang = jobset(("workers", 2, 1, 8))
    gang["spec"]["suspend"] = True
    judgement = judge(_gang_request(gang, "jobset.x-k8s.io", "v1alpha2"), _context(), NOW)
    assert (judgement.decision, judgement.code) == ("skipped", "user-suspended")


def test_a_child_job_of_a_jobset_is_never_judged_on_its_own() -> None:
    child = job(annotations={})
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "name": "train",
            "uid": "0b7c5c7e-0000-4000-8000-000000000002",
            "controller": True,
        }
    ]
    judgement = judge(_request(child), _context(), NOW)
    assert (judgement.decision, judgement.code) == ("skipped", "owned-by-workload")
    assert "suspend" not in apply_patch(child, judgement.response.patch)["spec"]

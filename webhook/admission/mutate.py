"""Judging a Job at admission: AdmissionReview request -> response with a JSONPatch.

:func:`judge` is a pure function of the request, the time and what is held in memory
(settings, GPU catalog, price model, forecast snapshots, namespace defaults):

    classify (never-defer rules) -> estimate energy -> forecast snapshot -> plan
    -> patch (``spec.suspend: true`` + annotations, from a before/after diff)

It is idempotent: a Job that already carries ``greenlight.dev/decision`` was judged (by an
earlier invocation, or re-submitted by a user) and gets no patch. :class:`Admission` is the thin
stateful shell the server calls: it records metrics and the one log line per decision, except
for dry runs, which get the same answer and leave no trace of a decision.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.admission.classify import Skip, never_defer, no_room, owned_by_cronjob
from webhook.admission.review import AdmissionRequest, AdmissionResponse, diff_patch
from webhook.admission.validate import validate
from webhook.carbon.refresher import FetchResult, OnDemandFetch
from webhook.config.settings import Settings
from webhook.core import annotations as keys
from webhook.core.annotations import (
    Decision,
    Inputs,
    Mode,
    format_time,
)
from webhook.core.cost import PriceModel
from webhook.core.energy import (
    EnergyEstimate,
    EnergyInputs,
    EnergyModelError,
    EnergySettings,
    GpuCatalog,
    estimate_energy,
)
from webhook.core.energy import parse_workload as energy_workload
from webhook.core.forecast import ForecastResult, ForecastSnapshots, ForecastUncertainty
from webhook.core.planner import Plan, PlannerSettings, PlanRequest, latest_start, plan
from webhook.core.planrecord import forecast_age as _forecast_age
from webhook.core.planrecord import plan_annotation_parts as _plan_output_parts
from webhook.core.provenance import SigningKeys
from webhook.core.reasons import ReasonCode
from webhook.core.resources import JobSpecError, WorkloadResources
from webhook.core.series import StepSeries, to_epoch
from webhook.telemetry.metrics import Metrics
from webhook.workloads.base import Workload, suspend_diff

log = logging.getLogger(__name__)


class DecisionMemo:
    """Exact memoisation of the pure steps of a judgement that repeat from Job to Job.

    The planner decides at whole seconds (epoch integers), so Jobs with the same inputs
    admitted within the same second, on the same forecast object, get the same plan: a burst
    of Jobs from one template (a sweep, a CI matrix) is planned once, and the plan's
    annotations are formatted once. The energy estimate depends only on the Job's resources
    and inputs; the effective inputs only on the Job's and its namespace's. Bounded; plan
    entries check the identity of the forecast they were made on, so a refreshed forecast
    (a new object) is planned afresh.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._max_entries = max_entries
        self._plans: dict[tuple[Any, ...], tuple[StepSeries, Plan]] = {}
        self._energy: dict[tuple[Any, ...], EnergyEstimate] = {}
        self._inputs: dict[tuple[Inputs, Inputs, Inputs], Inputs] = {}
        self._outputs: dict[tuple[Any, ...], tuple[Plan, dict[str, str], dict[str, str]]] = {}

    def effective_inputs(self, job: Inputs, namespace: Inputs, defaults: Inputs) -> Inputs:
        """``job`` over ``namespace`` over ``defaults`` (``Inputs.over``)."""
        key = (job, namespace, defaults)
        effective = self._inputs.get(key)
        if effective is None:
            if len(self._inputs) >= self._max_entries:
                self._inputs.clear()
            effective = self._inputs[key] = job.over(namespace).over(defaults)
        return effective

    def energy(
        self,
        resources: WorkloadResources,
        *,
        duration_s: int,
        workload: str | None,
        gpu_model: str | None,
        catalog: GpuCatalog,
        settings: EnergySettings,
    ) -> EnergyEstimate:
        """The estimate for a Job's resources run for ``duration_s`` (``EnergyModelError``
        when it cannot be made; errors are not memoised)."""
        key = (resources, duration_s, workload, gpu_model, id(catalog), settings)
        estimate = self._energy.get(key)
        if estimate is None:
            inputs = EnergyInputs.from_job(
                resources,
                duration_s=duration_s,
                workload=energy_workload(workload) if workload else None,
                gpu_model=gpu_model,
            )
            if len(self._energy) >= self._max_entries:
                self._energy.clear()
            estimate = self._energy[key] = estimate_energy(inputs, catalog, settings)
        return estimate

    def plan_outputs(
        self,
        result: Plan,
        *,
        zone: str,
        duration_s: int,
        energy_kwh: float,
        min_saving_pct: float,
        forecast: ForecastResult,
    ) -> dict[str, str]:
        """The annotations recording a plan and what it was made from (a new dict); all but
        the forecast's age is formatted once per plan."""
        key = (
            id(result),
            zone,
            duration_s,
            energy_kwh,
            min_saving_pct,
            forecast.provider,
            forecast.source,
        )
        held = self._outputs.get(key)
        if held is None or held[0] is not result:
            head, tail = _plan_output_parts(
                result,
                zone=zone,
                duration_s=duration_s,
                energy_kwh=energy_kwh,
                min_saving_pct=min_saving_pct,
                forecast=forecast,
            )
            if len(self._outputs) >= self._max_entries:
                self._outputs.clear()
            held = self._outputs[key] = (result, head, tail)
        return {**held[1], keys.FORECAST_AGE_S: _forecast_age(forecast), **held[2]}

    def plan(
        self,
        arrival: datetime,
        *,
        duration_s: int,
        energy_kwh: float,
        latest: datetime,
        forecast: StepSeries,
        settings: PlannerSettings,
        prices: PriceModel | None,
        uncertainty: ForecastUncertainty | None = None,
    ) -> Plan:
        """The plan for a Job arriving at ``arrival`` (the :class:`PlanRequest` is built, and
        validated, only when the plan is not already held)."""
        key = (
            id(forecast),
            to_epoch(arrival),
            duration_s,
            energy_kwh,
            to_epoch(latest),
            settings,
            id(prices),
            uncertainty,
        )
        held = self._plans.get(key)
        if held is not None and held[0] is forecast:
            return held[1]
        request = PlanRequest(arrival, duration_s, energy_kwh, latest)
        end = request.latest_start + timedelta(seconds=request.duration_s)
        price_series = prices.series(request.arrival, end) if prices is not None else None
        result = plan(
            request,
            forecast,
            settings,
            prices=price_series,
            uncertainty=uncertainty,
            now=request.arrival,
        )
        if len(self._plans) >= self._max_entries:
            self._plans.clear()
        self._plans[key] = (forecast, result)
        return result


@dataclass(frozen=True)
class MutationContext:
    """Everything a judgement reads besides the request and the time."""

    settings: Settings
    catalog: GpuCatalog
    prices: PriceModel | None
    forecasts: ForecastSnapshots
    namespace_defaults: Callable[[str], Inputs]
    want_zone: Callable[[str], None] = lambda zone: None
    signing_keys: SigningKeys | None = None
    """Sign every decision (None: unsigned; the reconciler then cannot tell it from a forgery)."""
    fetch_zone: Callable[[str], Awaitable[OnDemandFetch | None]] | None = None
    """Fetch a zone never fetched yet, within the admission budget (None: never on demand)."""
    memo: DecisionMemo = dataclasses.field(default_factory=DecisionMemo)

    @functools.cached_property
    def global_inputs(self) -> Inputs:
        """The settings' inputs (built once: settings are immutable)."""
        webhook = self.settings.webhook
        return Inputs(
            skip=False,
            max_delay_s=webhook.max_delay_s,
            expected_duration_s=webhook.expected_duration_s,
            workload=self.settings.energy.default_workload.value,
            zone=webhook.zone,
            min_savings_pct=self.settings.planner.min_saving_pct,
            mode=webhook.mode,
        )


@dataclass(frozen=True)
class Judgement:
    """The answer to one request and what it was based on (for metrics and the log line)."""

    response: AdmissionResponse
    decision: Decision | None
    """None: not judged (not a Job creation, already judged, excluded namespace)."""
    code: ReasonCode
    reason: str
    plan: Plan | None = None
    energy_kwh: float | None = None
    zone: str | None = None
    forecast: ForecastResult | None = None


def _string_map(value: object) -> dict[str, str]:
    if type(value) is not dict and not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # JSON-decoded: skip the slower abstract-class check
        return value
    return value if isinstance(value, Mapping) else {}


def _patched(
    request: AdmissionRequest,
    outputs: Mapping[str, str],
    *,
    suspend: Workload | None,
    signing_keys: SigningKeys | None,
) -> AdmissionResponse:
    """The response adding ``outputs`` (and, with ``suspend``, that workload's suspend flag:
    ``spec.suspend: true`` for a Job), as a diff of the parts
    greenlight changes, at map granularity: the annotations map is one value (``add`` of a
    member that exists replaces it, RFC 6902 4.1), so the patch has at most two operations
    whatever the number of annotations (each operation costs tens of microseconds in
    ``jsonpatch``, and this is the hot path). Applied to the object the apiserver sent, it
    leaves every other annotation as it was."""
    raw_metadata = request.object.get("metadata")
    metadata = _mapping(raw_metadata)
    existing = _mapping(metadata.get("annotations"))
    if signing_keys is None:
        merged = {**existing, **outputs}
    else:
        # Only what greenlight decided is signed: output keys the user set are dropped.
        merged = {k: v for k, v in existing.items() if not keys.is_output_key(k)}
        merged.update(outputs)
        merged[keys.ADMISSION_UID] = request.uid
        merged[keys.SIGNATURE] = signing_keys.sign(
            request.namespace,
            _text(metadata.get("name")),
            _text(metadata.get("generateName")),
            merged,
        )
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if merged != existing:
        if metadata is raw_metadata:
            before["metadata"] = {}
        after["metadata"] = {"annotations": merged}
    change = suspend_diff(suspend, request.object) if suspend is not None else None
    if change is not None:
        before.update(change[0])
        after.update(change[1])
    return AdmissionResponse(uid=request.uid, allowed=True, patch=diff_patch(before, after))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _unjudged(request: AdmissionRequest, code: ReasonCode, reason: str) -> Judgement:
    return Judgement(AdmissionResponse(uid=request.uid, allowed=True), None, code, reason)


def _outputs(decision: Decision, code: ReasonCode, reason: str, now: datetime) -> dict[str, str]:
    return {
        keys.DECISION: decision.value,
        keys.REASON: reason,
        keys.REASON_CODE: code,
        keys.ADMITTED_AT: format_time(now),
    }


def _skipped(
    request: AdmissionRequest, skip: Skip, now: datetime, signing_keys: SigningKeys | None
) -> Judgement:
    outputs = _outputs(Decision.SKIPPED, skip.code, skip.reason, now)
    response = _patched(request, outputs, suspend=None, signing_keys=signing_keys)
    return Judgement(response, Decision.SKIPPED, skip.code, skip.reason)


def _run_now(
    request: AdmissionRequest,
    code: ReasonCode,
    reason: str,
    now: datetime,
    extra: Mapping[str, str] | None = None,
    *,
    signing_keys: SigningKeys | None,
    **details: Any,
) -> Judgement:
    outputs = {**_outputs(Decision.RUN_NOW, code, reason, now), **(extra or {})}
    return Judgement(
        _patched(request, outputs, suspend=None, signing_keys=signing_keys),
        Decision.RUN_NOW,
        code,
        reason,
        **details,
    )


def _fetch_note(fetched: OnDemandFetch | None) -> str:
    """What an on-demand fetch that left no forecast adds to the reason."""
    if fetched is None or fetched.result == FetchResult.OK:
        return ""
    if fetched.result == FetchResult.TIMEOUT:
        return f"; on-demand fetch timed out after {fetched.waited_s:.1f} s"
    return f"; on-demand fetch found no data after {fetched.waited_s:.1f} s"


def judge(
    request: AdmissionRequest,
    context: MutationContext,
    now: datetime,
    *,
    fetched: OnDemandFetch | None = None,
) -> Judgement:
    """The decision on one admission request (pure: no I/O, no metrics, no logs).
    ``fetched``: the on-demand fetch of the Job's zone made since a first judgement found no
    forecast (its outcome goes into the reason when there is still none)."""
    settings = context.settings
    signer = context.signing_keys
    workload = request.workload
    if workload is None or request.operation != "CREATE":
        return _unjudged(request, ReasonCode.NOT_A_JOB_CREATE, "only workload creation is judged")
    if not settings.workloads.judges(workload):
        return _unjudged(
            request,
            ReasonCode.KIND_NOT_ENABLED,
            f"{workload.gvk.kind} is not in workloads.enabled",
        )
    if request.namespace in settings.webhook.excluded_namespaces or (
        request.namespace == settings.server.namespace
    ):
        return _unjudged(
            request, ReasonCode.EXCLUDED_NAMESPACE, f"namespace {request.namespace} is excluded"
        )
    metadata = _mapping(request.object.get("metadata"))
    annotations = _string_map(metadata.get("annotations"))
    if keys.DECISION in annotations:
        return _unjudged(
            request,
            ReasonCode.ALREADY_JUDGED,
            f"the {workload.gvk.kind} already carries a decision",
        )

    parsed = keys.parse_inputs(annotations)
    if parsed.errors:
        bad = ", ".join(error.key for error in parsed.errors)
        return _skipped(
            request, Skip(ReasonCode.INVALID_ANNOTATIONS, f"bad annotations: {bad}"), now, signer
        )
    job_inputs = parsed.inputs
    effective = context.memo.effective_inputs(
        job_inputs, context.namespace_defaults(request.namespace), context.global_inputs
    )
    if owned_by_cronjob(request.object):
        # Only the CronJob's own jobTemplate may say how long a scheduled run can wait.
        effective = dataclasses.replace(
            effective, max_delay_s=job_inputs.max_delay_s, deadline=job_inputs.deadline
        )
    skip = never_defer(request.object, job_inputs, effective, workload)
    if skip is not None:
        return _skipped(request, skip, now, signer)

    duration_s = effective.expected_duration_s or settings.webhook.expected_duration_s
    latest = latest_start(now, duration_s, effective.max_delay_s, effective.deadline)
    skip = no_room(now, latest, settings.webhook.min_wait_s)
    if skip is not None:
        return _skipped(request, skip, now, signer)

    try:
        estimate = context.memo.energy(
            workload.resources(request.object),
            duration_s=duration_s,
            workload=effective.workload,
            gpu_model=effective.gpu_model,
            catalog=context.catalog,
            settings=settings.energy,
        )
    except (JobSpecError, EnergyModelError) as e:
        return _run_now(
            request,
            ReasonCode.NO_ESTIMATE,
            f"energy cannot be estimated: {e}",
            now,
            signing_keys=signer,
        )

    zone = effective.zone or settings.webhook.zone
    context.want_zone(zone)
    forecast = context.forecasts.snapshot(zone, now.timestamp())
    if forecast.series is None:
        return _run_now(
            request,
            ReasonCode.NO_FORECAST,
            f"no forecast for zone {zone}: {forecast.reason}{_fetch_note(fetched)}",
            now,
            signing_keys=signer,
            energy_kwh=estimate.energy_kwh,
            zone=zone,
            forecast=forecast,
        )
    age_s = forecast.age_s or 0.0
    if age_s > settings.webhook.forecast_max_age_s:
        return _run_now(
            request,
            ReasonCode.STALE_FORECAST,
            f"the forecast for zone {zone} is {age_s:.0f} s old, over the "
            f"{settings.webhook.forecast_max_age_s} s limit",
            now,
            signing_keys=signer,
            energy_kwh=estimate.energy_kwh,
            zone=zone,
            forecast=forecast,
        )

    planner_settings = _planner_settings(settings.planner, effective.min_savings_pct)
    result = context.memo.plan(
        now,
        duration_s=duration_s,
        energy_kwh=estimate.energy_kwh,
        latest=latest,
        forecast=forecast.series,
        settings=planner_settings,
        prices=context.prices,
        uncertainty=forecast.uncertainty,
    )
    outputs = context.memo.plan_outputs(
        result,
        zone=zone,
        duration_s=duration_s,
        energy_kwh=estimate.energy_kwh,
        min_saving_pct=planner_settings.min_saving_pct,
        forecast=forecast,
    )
    details: dict[str, Any] = {
        "plan": result,
        "energy_kwh": estimate.energy_kwh,
        "zone": zone,
        "forecast": forecast,
    }
    if not result.deferred:
        return _run_now(
            request, result.reason, result.detail, now, outputs, signing_keys=signer, **details
        )
    if effective.mode == Mode.OBSERVE:
        reason = f"observe mode, would defer to {format_time(result.start)}: {result.detail}"
        outputs = {**_outputs(Decision.OBSERVED, result.reason, reason, now), **outputs}
        response = _patched(request, outputs, suspend=None, signing_keys=signer)
        return Judgement(response, Decision.OBSERVED, result.reason, reason, **details)
    reason = f"deferred to {format_time(result.start)}: {result.detail}"
    outputs = {**_outputs(Decision.DEFERRED, result.reason, reason, now), **outputs}
    response = _patched(request, outputs, suspend=workload, signing_keys=signer)
    return Judgement(response, Decision.DEFERRED, result.reason, reason, **details)


def _planner_settings(base: PlannerSettings, min_savings_pct: float | None) -> PlannerSettings:
    if min_savings_pct is None or min_savings_pct == base.min_saving_pct:
        return base
    return base.model_copy(update={"min_saving_pct": min_savings_pct})


class Admission:
    """The handlers the server calls: ``mutate`` (judge, then record) and ``validate``."""

    def __init__(
        self,
        context: MutationContext,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._context = context
        self._metrics = metrics
        self._clock = clock
        self._trusted = frozenset(context.settings.webhook.trusted_usernames)
        self._decision_counters: dict[tuple[Decision, ReasonCode], Any] = {}
        self._cost_now = metrics.cost.labels(when="now")
        self._cost_planned = metrics.cost.labels(when="planned")
        self._last_numbers: tuple[tuple[Plan, str | None, float | None], str] | None = None

    def mutate(self, request: AdmissionRequest) -> AdmissionResponse:
        """Judge on what is held in memory (no waiting)."""
        return self._answer(request, judge(request, self._context, self._clock()))

    async def admit(self, request: AdmissionRequest) -> AdmissionResponse:
        """:meth:`mutate`, except that a Job in a zone never fetched yet waits for that zone's
        forecast (fetched on demand, within its timeout) and is judged again on it."""
        judgement = judge(request, self._context, self._clock())
        fetch = self._context.fetch_zone
        if fetch is not None and judgement.code == ReasonCode.NO_FORECAST and judgement.zone:
            fetched = await fetch(judgement.zone)
            if fetched is not None:
                judgement = judge(request, self._context, self._clock(), fetched=fetched)
        return self._answer(request, judgement)

    def _answer(self, request: AdmissionRequest, judgement: Judgement) -> AdmissionResponse:
        if judgement.decision is not None and not request.dry_run:
            self._record(request, judgement)
        return judgement.response

    def validate(self, request: AdmissionRequest) -> AdmissionResponse:
        return validate(request, self._trusted, self._context.catalog, self._context.signing_keys)

    def _decision_counter(self, decision: Decision, code: ReasonCode) -> Any:
        """The decisions counter's child for these labels (``labels()`` is a locked lookup
        that builds the label tuple on every call; reason codes are few and stable)."""
        key = (decision, code)
        counter = self._decision_counters.get(key)
        if counter is None:
            counter = self._metrics.decisions.labels(decision=decision.value, reason=code)
            self._decision_counters[key] = counter
        return counter

    def _plan_numbers(self, judgement: Judgement, result: Plan) -> str:
        """The plan's numbers in the decision log line. Jobs that share a memoised plan (a
        burst from one template, within the same second) share the text: it is formatted
        once per plan, zone and energy."""
        key = (result, judgement.zone, judgement.energy_kwh)
        held = self._last_numbers
        if held is not None and held[0][0] is result and held[0][1:] == key[1:]:
            return held[1]
        numbers = (
            f" zone={judgement.zone} energy_kwh={judgement.energy_kwh:.3f}"
            f" start={format_time(result.start)} release_by={format_time(result.latest_start)}"
            f" intensity_now={result.intensity_now_g_per_kwh:.1f}"
            f" intensity_planned={result.intensity_planned_g_per_kwh:.1f}"
            f" emissions_now_g={result.emissions_now_g:.1f}"
            f" emissions_planned_g={result.emissions_planned_g:.1f}"
            f" savings_g={result.savings_g:.1f} savings_pct={result.savings_pct:.1f}"
        )
        self._last_numbers = (key, numbers)
        return numbers

    def _record(self, request: AdmissionRequest, judgement: Judgement) -> None:
        metrics = self._metrics
        assert judgement.decision is not None
        self._decision_counter(judgement.decision, judgement.code).inc()
        result = judgement.plan
        if result is not None:
            metrics.emissions_planned.inc(max(result.emissions_planned_g, 0.0))
            if result.cost_now_usd is not None and result.cost_planned_usd is not None:
                self._cost_now.inc(max(result.cost_now_usd, 0.0))
                self._cost_planned.inc(max(result.cost_planned_usd, 0.0))
            if judgement.decision == Decision.DEFERRED:
                metrics.planned_delay.observe(result.delay_s)
                metrics.savings.inc(max(result.savings_g, 0.0))
        if not log.isEnabledFor(logging.INFO):
            return
        numbers = "" if result is None else self._plan_numbers(judgement, result)
        if judgement.forecast is not None:
            numbers += (
                f" provider={judgement.forecast.provider} source={judgement.forecast.source}"
                f" forecast_age_s={judgement.forecast.age_s or 0.0:.0f}"
            )
        log.info(
            "decision job=%s/%s kind=%s decision=%s reason=%s%s detail=%r",
            request.namespace,
            request.name,
            request.kind.kind,
            judgement.decision,  # a StrEnum: "%s" writes its value
            judgement.code,
            numbers,
            judgement.reason,
        )

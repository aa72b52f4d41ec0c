"""greenlight as a Kueue AdmissionCheck, pure: ``judge_workload(workload, ...) -> Verdict``.

Kueue admits a Workload only when its quota is reserved **and** every AdmissionCheck of its
ClusterQueue is ``Ready``. For each check whose AdmissionCheck object names
``controllerName: greenlight.dev/carbon``, greenlight keeps the state ``Pending`` (with a
message saying until when and why) and turns it ``Ready`` at the planned window, and never
later than the Workload's latest start, whatever the forecast.

The judgement is the one the webhook makes for a Job, on the same inputs and functions:
the inputs (``greenlight.dev/*``) of the job Kueue queued (its owner) over the Workload's own,
over the namespace's, over the global defaults (``Inputs.over``); the energy of every pod set
(``webhook.workloads.kueue``, ``core.energy``); the latest start (``planner.latest_start``)
from the Workload's creation, recorded as ``greenlight.dev/admitted-at``; the plan
(``planner.plan``) on the reconciler's forecast; the annotations (``core.planrecord``).

Where it differs from the webhook, on purpose: the webhook must answer at once, so a Job with no
forecast runs now; a check can wait, so a Workload whose zone has no usable forecast yet (the
reconciler loads a zone's forecast when a Workload first names it, or every provider is down)
stays ``Pending`` and is looked at again every ``recheck_s``, and turns ``Ready`` at its
latest start at the latest. A recorded plan is kept (no re-plan, no release spread): the
window is when the check turns ``Ready``.

Nothing here does I/O or reads a clock; the writes (annotations, the check's status entry, an
Event) are built here too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from webhook.config.kueue import CONTROLLER_NAME
from webhook.core import annotations as keys
from webhook.core.annotations import (
    Decision,
    DeferralError,
    Inputs,
    Mode,
    format_number,
    format_time,
    parse_deferral,
)
from webhook.core.cost import PriceModel
from webhook.core.energy import (
    EnergyInputs,
    EnergyModelError,
    EnergySettings,
    GpuCatalog,
    estimate_energy,
    parse_workload,
)
from webhook.core.forecast import ForecastResult
from webhook.core.planner import Plan, PlannerSettings, PlanRequest, latest_start, plan
from webhook.core.planrecord import plan_annotations
from webhook.core.resources import JobSpecError
from webhook.core.series import StepSeries
from webhook.reconciler.accounting import Accounting, AccountingError, account
from webhook.reconciler.decide import actual_annotations
from webhook.workloads.base import OwnerReference, controller_owner
from webhook.workloads.kueue import podset_resources


class CheckState(StrEnum):
    """``status.admissionChecks[].state`` (the same in v1beta1 and v1beta2)."""

    PENDING = "Pending"
    READY = "Ready"
    RETRY = "Retry"
    REJECTED = "Rejected"


class ReadyReason(StrEnum):
    """Why a check turned Ready: ``greenlight.dev/release-reason`` on the Workload (the same
    values as for Jobs where they mean the same)."""

    WINDOW = "window"
    """Its planned window came."""
    DEADLINE = "deadline"
    """Its latest start came with no plan made (no usable forecast until then), or past its
    plan (greenlight was down)."""
    INVALID_PLAN = "invalid-plan"
    """Its recorded plan is unreadable: admitted rather than risk its deadline."""
    NOT_DEFERRED = "not-deferred"
    """Judged and not held: the plan is to run now, or a rule says never to hold it."""


MAX_MESSAGE = 32768
"""Kueue's maxLength of ``admissionChecks[].message``."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _string_map(value: object) -> dict[str, str]:
    return {k: v for k, v in _mapping(value).items() if isinstance(k, str) and isinstance(v, str)}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


# --- What is read -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckStatus:
    """One entry of ``status.admissionChecks``."""

    name: str
    state: str
    message: str
    last_transition_time: str | None


@dataclass(frozen=True)
class WorkloadView:
    """What the check reads of a Kueue Workload."""

    uid: str
    namespace: str
    name: str
    resource_version: str
    created_at: datetime | None
    annotations: Mapping[str, str]
    checks: Mapping[str, CheckStatus]
    owner: OwnerReference | None
    finished: bool
    deleting: bool
    raw: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _true_condition(status: Mapping[str, Any], kind: str) -> bool:
    conditions = status.get("conditions")
    for entry in conditions if isinstance(conditions, list) else []:
        condition = _mapping(entry)
        if condition.get("type") == kind and condition.get("status") == "True":
            return True
    return False


def read_workload(obj: Mapping[str, Any]) -> WorkloadView:
    """The check's view of a Workload object (either API version)."""
    metadata = _mapping(obj.get("metadata"))
    status = _mapping(obj.get("status"))
    checks: dict[str, CheckStatus] = {}
    entries = status.get("admissionChecks")
    for entry in entries if isinstance(entries, list) else []:
        state = _mapping(entry)
        name = state.get("name")
        if isinstance(name, str) and name:
            transition = state.get("lastTransitionTime")
            checks[name] = CheckStatus(
                name,
                str(state.get("state", "")),
                str(state.get("message", "")),
                transition if isinstance(transition, str) else None,
            )
    return WorkloadView(
        uid=str(metadata.get("uid", "")),
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        resource_version=str(metadata.get("resourceVersion", "")),
        created_at=_time(metadata.get("creationTimestamp")),
        annotations=_string_map(metadata.get("annotations")),
        checks=checks,
        owner=controller_owner(obj),
        finished=_true_condition(status, "Finished"),
        deleting=metadata.get("deletionTimestamp") is not None,
        raw=obj,
    )


def _condition_time(status: Mapping[str, Any], kind: str) -> datetime | None:
    conditions = status.get("conditions")
    for entry in conditions if isinstance(conditions, list) else []:
        condition = _mapping(entry)
        if condition.get("type") == kind and condition.get("status") == "True":
            return _time(condition.get("lastTransitionTime"))
    return None


@dataclass(frozen=True)
class FinishedRun:
    """The accounting of a finished Workload greenlight held, and the PATCH that records it."""

    accounting: Accounting
    patch: dict[str, Any]
    outcome: str


def account_workload(
    workload: WorkloadView, observed: Callable[[str], StepSeries | None]
) -> FinishedRun | str | None:
    """What a Workload greenlight held and released really emitted, once Kueue marks it
    ``Finished``: its run is from its ``Admitted`` condition to its ``Finished`` one, the rest
    is the Job reconciler's accounting (``reconciler.accounting``). None when there is nothing
    to account (not finished, not released by greenlight, accounted already); a string says
    why a finished one cannot be."""
    annotations = workload.annotations
    if (
        not workload.finished
        or annotations.get(keys.DECISION) != Decision.DEFERRED
        or keys.RELEASED_AT not in annotations
        or keys.ACTUAL_EMISSIONS_G in annotations
    ):
        return None
    status = _mapping(workload.raw.get("status"))
    finished_at = _condition_time(status, "Finished")
    started_at = _condition_time(status, "Admitted") or _time(annotations.get(keys.RELEASED_AT))
    if finished_at is None or started_at is None:
        return "its Admitted or Finished condition has no readable time"
    try:
        deferral = parse_deferral(annotations)
        result = account(
            deferral,
            started_at=started_at,
            finished_at=finished_at,
            observed=observed(deferral.zone),
            intensity_planned_g_per_kwh=_number(annotations.get(keys.INTENSITY_PLANNED)),
            intensity_at_admission_g_per_kwh=_number(annotations.get(keys.INTENSITY_NOW)),
        )
    except (DeferralError, AccountingError) as e:
        return str(e)
    patch = {
        "metadata": {
            "resourceVersion": workload.resource_version,
            "annotations": actual_annotations(result),
        }
    }
    reason = ""
    for entry in status.get("conditions") or []:
        condition = _mapping(entry)
        if condition.get("type") == "Finished":
            reason = str(condition.get("reason") or "")
    return FinishedRun(result, patch, reason or "Finished")


def _number(value: object) -> float | None:
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def our_checks(names: Mapping[str, str]) -> frozenset[str]:
    """The AdmissionCheck names whose controller is greenlight, from name -> controllerName."""
    return frozenset(name for name, controller in names.items() if controller == CONTROLLER_NAME)


# --- What a judgement knows ---------------------------------------------------------------


def _no_forecast(zone: str) -> ForecastResult | None:
    return None


@dataclass(frozen=True)
class CheckKnowledge:
    """Everything besides the Workload a judgement reads."""

    now: datetime
    defaults: Inputs
    """The global inputs (the webhook section of the settings)."""
    catalog: GpuCatalog
    energy: EnergySettings
    planner: PlannerSettings = dataclasses.field(default_factory=PlannerSettings)
    forecast: Callable[[str], ForecastResult | None] = _no_forecast
    forecast_max_age_s: float = 6 * 3600.0
    min_wait_s: float = 60.0
    recheck_s: float = 60.0
    prices: PriceModel | None = None


# --- The verdict --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What to do with one greenlight check of one Workload."""

    state: CheckState
    message: str
    code: str
    """A stable reason code (the webhook's where they mean the same)."""
    annotations: Mapping[str, str]
    """To add to the Workload's annotations (empty: nothing to record)."""
    wake_at: datetime | None
    """When to judge it again (None: never; it is Ready or not ours)."""
    decision: Decision | None = None
    """The decision made now (None: none new); counted in the metrics once."""
    ready_reason: ReadyReason | None = None
    """Set when the state turns Ready now."""
    plan: Plan | None = None
    energy_kwh: float | None = None
    zone: str | None = None
    deferred_until: datetime | None = None


def ready_message(annotations: Mapping[str, str]) -> str:
    """The Ready message, from the Workload's annotations only: the same text whoever writes
    it (the leader that turned it Ready, or one that sees the annotations before the state)."""
    reason = annotations.get(keys.RELEASE_REASON, "")
    if reason == ReadyReason.WINDOW:
        detail = f"its planned window {annotations.get(keys.RELEASE_AT)} has come"
    elif reason == ReadyReason.DEADLINE:
        detail = f"its latest start {annotations.get(keys.RELEASE_BY)} has come"
        if keys.DECISION not in annotations:
            detail += " with no usable forecast before it"
    elif reason == ReadyReason.INVALID_PLAN:
        detail = "its recorded plan is unreadable: admitted rather than risk its deadline"
    else:
        detail = annotations.get(keys.REASON, "not held")
    return f"ready at {annotations.get(keys.RELEASED_AT)} ({reason}): {detail}"[:MAX_MESSAGE]


def _ready(
    code: str,
    reason: ReadyReason,
    now: datetime,
    annotations: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    **details: Any,
) -> Verdict:
    """Ready now: ``annotations`` and the release are recorded; ``base`` is what the Workload
    already carries."""
    recorded = {
        **(annotations or {}),
        keys.RELEASED_AT: format_time(now),
        keys.RELEASE_REASON: reason.value,
    }
    return Verdict(
        CheckState.READY,
        ready_message({**(base or {}), **recorded}),
        code,
        recorded,
        None,
        ready_reason=reason,
        **details,
    )


def _decision_outputs(decision: Decision, code: str, reason: str, at: datetime) -> dict[str, str]:
    return {
        keys.DECISION: decision.value,
        keys.REASON: reason,
        keys.REASON_CODE: code,
        keys.ADMITTED_AT: format_time(at),
    }


def held_message(result: Plan) -> str:
    """The Pending message of a held Workload: when, and why."""
    return (
        f"held for a cleaner window: release at {format_time(result.start)} (intensity now "
        f"{format_number(result.intensity_now_g_per_kwh)}, then "
        f"{format_number(result.intensity_planned_g_per_kwh)} gCO2/kWh, saving "
        f"{format_number(result.savings_pct)} %), latest start {format_time(result.latest_start)}"
    )


def judge_workload(
    workload: WorkloadView,
    check: str,
    *,
    owner_annotations: Mapping[str, str],
    namespace_inputs: Inputs,
    knowledge: CheckKnowledge,
) -> Verdict | None:
    """The state of greenlight's check ``check`` on ``workload`` now (None: nothing to do)."""
    current = workload.checks.get(check)
    if current is None or workload.deleting or workload.finished:
        return None
    if current.state in (CheckState.READY, CheckState.REJECTED):
        return None
    annotations = workload.annotations
    if keys.RELEASED_AT in annotations:
        # Turned Ready before (the state write may not have landed): the same Ready again,
        # recording and counting nothing new.
        code = annotations.get(keys.RELEASE_REASON, ReadyReason.NOT_DEFERRED.value)
        return Verdict(CheckState.READY, ready_message(annotations), code, {}, None)
    if keys.DECISION in annotations:
        return _recorded(workload, annotations, knowledge)
    return _fresh(workload, owner_annotations, namespace_inputs, knowledge)


def _recorded(
    workload: WorkloadView, annotations: Mapping[str, str], knowledge: CheckKnowledge
) -> Verdict:
    """A Workload judged before (by this or an earlier leader): follow the recorded plan."""
    now = knowledge.now
    if annotations.get(keys.DECISION) != Decision.DEFERRED:
        code = annotations.get(keys.REASON_CODE, "not-deferred")
        return _ready(code, ReadyReason.NOT_DEFERRED, now, base=annotations)
    try:
        deferral = parse_deferral(annotations)
    except DeferralError:
        return _ready("invalid-plan", ReadyReason.INVALID_PLAN, now, base=annotations)
    if now >= deferral.release_at:
        late = now >= deferral.release_by and deferral.release_at < deferral.release_by
        reason = ReadyReason.DEADLINE if late else ReadyReason.WINDOW
        return _ready(
            reason.value,
            reason,
            now,
            base=annotations,
            zone=deferral.zone,
            energy_kwh=deferral.energy_kwh,
            deferred_until=deferral.release_at,
        )
    message = annotations.get(keys.REASON, "")
    return Verdict(
        CheckState.PENDING,
        _pending_message(annotations) or message,
        "deferred",
        {},
        deferral.release_at,
        zone=deferral.zone,
        deferred_until=deferral.release_at,
    )


def _pending_message(annotations: Mapping[str, str]) -> str | None:
    """The held message rebuilt from the recorded plan (the same text after a restart)."""
    try:
        return (
            f"held for a cleaner window: release at {annotations[keys.RELEASE_AT]} (intensity "
            f"now {annotations[keys.INTENSITY_NOW]}, then {annotations[keys.INTENSITY_PLANNED]} "
            f"gCO2/kWh, saving {annotations[keys.SAVINGS_PCT]} %), latest start "
            f"{annotations[keys.RELEASE_BY]}"
        )
    except KeyError:
        return None


def _fresh(
    workload: WorkloadView,
    owner_annotations: Mapping[str, str],
    namespace_inputs: Inputs,
    knowledge: CheckKnowledge,
) -> Verdict:
    now = knowledge.now
    admitted_at = workload.created_at or now
    own = {k: v for k, v in workload.annotations.items() if k in keys.INPUT_KEYS}
    parsed = keys.parse_inputs({**own, **owner_annotations})
    if parsed.errors:
        bad = ", ".join(error.key for error in parsed.errors)
        reason = f"bad annotations: {bad}"
        outputs = _decision_outputs(Decision.SKIPPED, "invalid-annotations", reason, admitted_at)
        return _ready(
            "invalid-annotations",
            ReadyReason.NOT_DEFERRED,
            now,
            outputs,
            decision=Decision.SKIPPED,
        )
    effective = parsed.inputs.over(namespace_inputs).over(knowledge.defaults)
    if effective.skip:
        reason = "greenlight.dev/skip is set"
        outputs = _decision_outputs(Decision.SKIPPED, "opted-out", reason, admitted_at)
        return _ready(
            "opted-out", ReadyReason.NOT_DEFERRED, now, outputs, decision=Decision.SKIPPED
        )
    duration_s = effective.expected_duration_s or knowledge.defaults.expected_duration_s or 3600
    latest = latest_start(admitted_at, duration_s, effective.max_delay_s, effective.deadline)
    if (latest - admitted_at).total_seconds() < knowledge.min_wait_s:
        reason = (
            f"the deadline or max-delay leaves no room to wait (latest start {format_time(latest)})"
        )
        outputs = _decision_outputs(Decision.SKIPPED, "no-room", reason, admitted_at)
        return _ready("no-room", ReadyReason.NOT_DEFERRED, now, outputs, decision=Decision.SKIPPED)
    try:
        estimate = estimate_energy(
            EnergyInputs.from_job(
                podset_resources(workload.raw),
                duration_s=duration_s,
                workload=parse_workload(effective.workload) if effective.workload else None,
                gpu_model=effective.gpu_model,
            ),
            knowledge.catalog,
            knowledge.energy,
        )
    except (JobSpecError, EnergyModelError) as e:
        reason = f"energy cannot be estimated: {e}"
        outputs = _decision_outputs(Decision.RUN_NOW, "no-estimate", reason, admitted_at)
        return _ready(
            "no-estimate", ReadyReason.NOT_DEFERRED, now, outputs, decision=Decision.RUN_NOW
        )
    zone = effective.zone or knowledge.defaults.zone or ""
    if now >= latest:
        return _ready(
            ReadyReason.DEADLINE.value,
            ReadyReason.DEADLINE,
            now,
            {keys.ADMITTED_AT: format_time(admitted_at), keys.RELEASE_BY: format_time(latest)},
            zone=zone,
            energy_kwh=estimate.energy_kwh,
        )
    forecast = knowledge.forecast(zone)
    unusable = _unusable(forecast, zone, knowledge)
    series = forecast.series if forecast is not None else None
    if unusable is not None or forecast is None or series is None:
        wake = min(latest, now + timedelta(seconds=knowledge.recheck_s))
        return Verdict(
            CheckState.PENDING,
            f"waiting for a forecast: {unusable}; admitted at its latest start "
            f"{format_time(latest)} at the latest",
            "no-forecast",
            {keys.ADMITTED_AT: format_time(admitted_at), keys.RELEASE_BY: format_time(latest)},
            wake,
            zone=zone,
            energy_kwh=estimate.energy_kwh,
        )
    planner = knowledge.planner
    if (
        effective.min_savings_pct is not None
        and effective.min_savings_pct != planner.min_saving_pct
    ):
        planner = planner.model_copy(update={"min_saving_pct": effective.min_savings_pct})
    request = PlanRequest(now, duration_s, estimate.energy_kwh, latest)
    prices = None
    if knowledge.prices is not None:
        prices = knowledge.prices.series(now, latest + timedelta(seconds=duration_s))
    result = plan(
        request,
        series,
        planner,
        prices=prices,
        uncertainty=forecast.uncertainty,
        now=now,
    )
    outputs = plan_annotations(
        result,
        zone=zone,
        duration_s=duration_s,
        energy_kwh=estimate.energy_kwh,
        min_saving_pct=planner.min_saving_pct,
        forecast=forecast,
    )
    details: dict[str, Any] = {"plan": result, "energy_kwh": estimate.energy_kwh, "zone": zone}
    if not result.deferred:
        outputs.update(
            _decision_outputs(Decision.RUN_NOW, result.reason, result.detail, admitted_at)
        )
        return _ready(
            result.reason,
            ReadyReason.NOT_DEFERRED,
            now,
            outputs,
            decision=Decision.RUN_NOW,
            **details,
        )
    if effective.mode == Mode.OBSERVE:
        reason = f"observe mode, would defer to {format_time(result.start)}: {result.detail}"
        outputs.update(_decision_outputs(Decision.OBSERVED, result.reason, reason, admitted_at))
        return _ready(
            result.reason,
            ReadyReason.NOT_DEFERRED,
            now,
            outputs,
            decision=Decision.OBSERVED,
            **details,
        )
    reason = f"deferred to {format_time(result.start)}: {result.detail}"
    outputs.update(_decision_outputs(Decision.DEFERRED, result.reason, reason, admitted_at))
    return Verdict(
        CheckState.PENDING,
        held_message(result)[:MAX_MESSAGE],
        result.reason,
        outputs,
        result.start,
        decision=Decision.DEFERRED,
        deferred_until=result.start,
        **details,
    )


def _unusable(forecast: ForecastResult | None, zone: str, knowledge: CheckKnowledge) -> str | None:
    """Why ``forecast`` cannot be planned on (None: it can)."""
    if forecast is None:
        return f"no forecast for zone {zone} loaded yet"
    if forecast.series is None:
        return f"no forecast for zone {zone}: {forecast.reason or 'no data'}"
    age_s = forecast.age_s or 0.0
    if age_s > knowledge.forecast_max_age_s:
        return (
            f"the forecast for zone {zone} is {age_s:.0f} s old, over the "
            f"{knowledge.forecast_max_age_s:.0f} s limit"
        )
    return None


# --- The writes ---------------------------------------------------------------------------


def annotation_patch(workload: WorkloadView, verdict: Verdict) -> dict[str, Any] | None:
    """A merge patch recording the verdict's annotations on the Workload, applying only to the
    version judged (409 Conflict otherwise); None when there is nothing new to record."""
    new = {k: v for k, v in verdict.annotations.items() if workload.annotations.get(k) != v}
    if not new:
        return None
    return {"metadata": {"resourceVersion": workload.resource_version, "annotations": new}}


def check_status(
    workload: WorkloadView, check: str, verdict: Verdict, now: datetime
) -> dict[str, Any] | None:
    """The ``status.admissionChecks`` entry greenlight owns, for a server-side apply of the
    status subresource (None when the state and message already read so).

    ``lastTransitionTime`` moves only when the state changes (Kueue's own rule). Only
    ``Pending`` and ``Ready`` are written: ``Retry`` would release the quota and make Kueue
    count retries, and ``requeueAfterSeconds`` applies to ``Retry`` only, so neither is used."""
    current = workload.checks.get(check)
    if (
        current is not None
        and current.state == verdict.state
        and current.message == verdict.message
    ):
        return None
    transition = format_time(now)
    if current is not None and current.state == verdict.state and current.last_transition_time:
        transition = current.last_transition_time
    return {
        "name": check,
        "state": verdict.state.value,
        "message": verdict.message,
        "lastTransitionTime": transition,
    }


def status_apply(
    workload: WorkloadView, api_version: str, entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """The server-side apply body for the status subresource: only greenlight's entries of
    the ``admissionChecks`` map-list (keyed by name), so Kueue's and other checks' stay
    theirs."""
    return {
        "apiVersion": api_version,
        "kind": "Workload",
        "metadata": {"name": workload.name, "namespace": workload.namespace},
        "status": {"admissionChecks": entries},
    }


def active_condition_apply(name: str, api_version: str, now: datetime) -> dict[str, Any]:
    """The server-side apply body that marks an AdmissionCheck ``Active`` (Kueue keeps a
    ClusterQueue that names an inactive check from admitting anything)."""
    return {
        "apiVersion": api_version,
        "kind": "AdmissionCheck",
        "metadata": {"name": name},
        "status": {
            "conditions": [
                {
                    "type": "Active",
                    "status": "True",
                    "reason": "Active",
                    "message": "greenlight's carbon-aware admission check controller is running",
                    "lastTransitionTime": format_time(now),
                }
            ]
        },
    }


def is_active(admission_check: Mapping[str, Any]) -> bool:
    conditions = _mapping(admission_check.get("status")).get("conditions")
    for entry in conditions if isinstance(conditions, list) else []:
        condition = _mapping(entry)
        if condition.get("type") == "Active":
            return condition.get("status") == "True"
    return False

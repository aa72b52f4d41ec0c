"""The reconcile decision for one Job, as a pure function: ``decide(job, knowledge) -> action``.

``track`` reads the little the reconciler keeps of a Job (a :class:`TrackedJob`: its plan,
whether it is suspended, released, finished, accounted). ``decide`` is a list of guard
clauses; each returns an action whose ``why`` says, for the log line, why it returned there:

- ``Forget``         not greenlight's any more (deleted, released and accounted);
- ``Track``          released and still running: nothing to do until it finishes;
- ``RecordManual``   its user set ``spec.suspend: false``: record the manual release;
- ``Release``        release it now, with a stable reason (:class:`ReleaseReason`);
- ``Move``           a re-plan moves its release time (bounded churn);
- ``Wait``           nothing yet: wake up at ``until`` (its release target or next re-plan);
- ``Account``        it finished: record what it really emitted.

Nothing here does I/O or reads a clock: the time, the forecasts and the observed intensity come
in :class:`Knowledge`. The patches that carry the actions out are built here too, so what is
written is as testable as what is decided.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from webhook.config.reconciler import ReconcilerSettings
from webhook.core import annotations as keys
from webhook.core.annotations import Decision, Deferral, DeferralError, format_number, format_time
from webhook.core.cost import PriceModel
from webhook.core.forecast import ForecastResult, ForecastUncertainty
from webhook.core.planner import PlannerSettings, PlanRequest, Replan, replan
from webhook.core.provenance import SIGNED_KEYS, SigningKeys
from webhook.core.series import StepSeries, to_epoch
from webhook.reconciler.accounting import Accounting, AccountingError, account
from webhook.workloads.base import Workload, is_suspended, set_suspend
from webhook.workloads.job import JOB
from webhook.workloads.ownership import job_annotations, read_deferral


class ReleaseReason(StrEnum):
    """Why a Job was released: the ``greenlight.dev/release-reason`` annotation."""

    WINDOW = "window"
    """At the time the webhook planned (plus the release spread)."""
    REPLANNED = "replanned"
    """At a time a re-plan chose: moved earlier or later, or released now."""
    DEADLINE = "deadline"
    """Its planned window was missed (greenlight was down) and its latest start has passed."""
    MANUAL = "manual"
    """Its user set ``spec.suspend: false``; greenlight only recorded it."""
    SKIP = "skip"
    """Its user added ``greenlight.dev/skip: "true"`` while it waited."""
    PROVIDER_OUTAGE = "provider-outage"
    """At its planned time with no usable forecast to re-check the plan against."""
    INVALID_PLAN = "invalid-plan"
    """Its plan annotations are unreadable, so greenlight cannot know how long it may wait."""


# --- What is kept of a Job -----------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _time(value: object) -> datetime | None:
    """A time greenlight or Kubernetes recorded; None when absent or unreadable (these only
    inform: the plan's own times are read strictly by ``parse_deferral``)."""
    if not isinstance(value, str) or not value or len(value) > 40 or not value.isascii():
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59-14:00 is past datetime.max
        return None


def _float(value: object) -> float | None:
    """A finite number from an annotation; None when absent or unreadable."""
    if not isinstance(value, str) or len(value) > 40 or not value.isascii():
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class UnreadableJobError(ValueError):
    """A Job marked deferred whose identity (uid, namespace, name, resourceVersion) cannot
    be read: the reconciler cannot address it, so it sets it aside."""


def _identity(metadata: Mapping[str, Any], field: str) -> str:
    value = metadata.get(field)
    if not isinstance(value, str) or not value:
        raise UnreadableJobError(f"metadata.{field} is {value!r}: expected a non-empty string")
    return value


def _text(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None


# A replan count above this reads as this (every max_replans setting is far below it).
MAX_REPLAN_COUNT = 1_000_000


@dataclass(frozen=True, slots=True)
class TrackedJob:
    """What the reconciler keeps of one workload greenlight deferred (a Job, a JobSet, ...:
    ``workload`` says which kind, and how to suspend and read it)."""

    uid: str
    namespace: str
    name: str
    resource_version: str
    suspended: bool
    deleting: bool = False
    skip: bool = False
    deferral: Deferral | None = None
    deferral_error: str | None = None
    released_at: datetime | None = None
    release_reason: str | None = None
    replan_count: int = 0
    replanned_at: datetime | None = None
    replan_checks: int = 0
    accounted: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    min_savings_pct: float | None = None
    intensity_now_g_per_kwh: float | None = None
    intensity_planned_g_per_kwh: float | None = None
    savings_g: float | None = None
    savings_pct: float | None = None
    forecast_source: str | None = None
    """What the plan at admission was made from (``forecast-source``); None on older Jobs."""
    forecast_error_pct: float | None = None
    """That forecast's measured error at the planned lead (``forecast-error-pct``), where
    measured; with it the saving one such error either side (``savings-pct-low``/``-high``)."""
    savings_pct_low: float | None = None
    savings_pct_high: float | None = None
    workload: Workload = JOB

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def waiting(self) -> bool:
        """greenlight_owns: deferred, still suspended, not released."""
        return self.suspended and self.released_at is None and not self.deleting


def track(job: Mapping[str, Any], workload: Workload = JOB) -> TrackedJob | None:
    """The reconciler's record of ``job`` (an object of kind ``workload``); None for one
    greenlight did not defer.

    Every value is read defensively (anyone who can create a Job can write these
    annotations): an unreadable plan is kept as ``deferral_error``, an unreadable informative
    value as None. The one error raised is :class:`UnreadableJobError`, for a Job whose
    identity cannot be read."""
    annotations = job_annotations(job)
    if annotations.get(keys.DECISION) != Decision.DEFERRED:
        return None
    metadata = _mapping(job.get("metadata"))
    uid = _identity(metadata, "uid")
    namespace = _identity(metadata, "namespace")
    name = _identity(metadata, "name")
    resource_version = _identity(metadata, "resourceVersion")
    run = workload.run_status(job)
    inputs = keys.parse_inputs(
        {k: annotations[k] for k in (keys.SKIP, keys.MIN_SAVINGS) if k in annotations}
    ).inputs
    deferral: Deferral | None = None
    deferral_error: str | None = None
    try:
        deferral = read_deferral(job)
    except DeferralError as e:
        deferral_error = str(e)
    finished_at = _time(run.finished_at) if run.outcome is not None else None
    count = _float(annotations.get(keys.REPLAN_COUNT))
    checks = _float(annotations.get(keys.REPLAN_CHECKS))
    return TrackedJob(
        uid=uid,
        namespace=namespace,
        name=name,
        resource_version=resource_version,
        suspended=is_suspended(workload, job),
        deleting=metadata.get("deletionTimestamp") is not None,
        skip=inputs.skip is True,
        deferral=deferral,
        deferral_error=deferral_error,
        released_at=_time(annotations.get(keys.RELEASED_AT)),
        release_reason=_text(annotations.get(keys.RELEASE_REASON)),
        replan_count=int(min(count, MAX_REPLAN_COUNT)) if count is not None and count >= 0 else 0,
        replanned_at=_time(annotations.get(keys.REPLANNED_AT)),
        replan_checks=int(checks) if checks is not None and checks >= 0 else 0,
        accounted=keys.ACTUAL_EMISSIONS_G in annotations,
        started_at=_time(run.started_at),
        finished_at=finished_at,
        outcome=run.outcome if finished_at is not None else None,
        min_savings_pct=inputs.min_savings_pct,
        intensity_now_g_per_kwh=_float(annotations.get(keys.INTENSITY_NOW)),
        intensity_planned_g_per_kwh=_float(annotations.get(keys.INTENSITY_PLANNED)),
        savings_g=_float(annotations.get(keys.SAVINGS_G)),
        savings_pct=_float(annotations.get(keys.SAVINGS_PCT)),
        forecast_source=_text(annotations.get(keys.FORECAST_SOURCE)),
        forecast_error_pct=_float(annotations.get(keys.FORECAST_ERROR_PCT)),
        savings_pct_low=_float(annotations.get(keys.SAVINGS_PCT_LOW)),
        savings_pct_high=_float(annotations.get(keys.SAVINGS_PCT_HIGH)),
        workload=workload,
    )


# --- Release timing ------------------------------------------------------------------------


def spread_offset_s(uid: str, spread_s: float) -> float:
    """A fixed offset in ``[0, spread_s)`` for a Job, from its uid: the same on every replica
    and after every restart, and uniform over Jobs."""
    if spread_s <= 0:
        return 0.0
    digest = hashlib.blake2b(uid.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % 1_000_000) / 1_000_000 * spread_s


def release_target(uid: str, deferral: Deferral, spread_s: float) -> datetime:
    """When the reconciler releases a Job on its plan: the planned time plus the Job's spread
    offset, never after its latest start (release-by).

    The offset only ever delays: a plan's window starts where the grid gets cleaner, so
    starting a few seconds into it costs nothing, while starting before it would."""
    spread = timedelta(seconds=spread_offset_s(uid, spread_s))
    return min(deferral.release_at + spread, max(deferral.release_by, deferral.release_at))


# --- Actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outlook:
    """What a re-plan's choice rests on, for the Event that reports it: the source of the
    forecast it re-planned on, that forecast's measured error at the chosen release's lead
    (None: not measured) and the chosen release's expected saving against running now."""

    source: str
    savings_pct: float
    error_pct: float | None = None


@dataclass(frozen=True)
class Forget:
    why: str


@dataclass(frozen=True)
class Track:
    why: str


@dataclass(frozen=True)
class Wait:
    until: datetime
    why: str
    replan_checked: bool = False
    """A re-plan was evaluated now (kept): the next one is due an interval from now."""
    check_at: datetime | None = None
    """When its next re-plan check is due (None: it will not be re-planned again). The
    controller keeps it and passes it back to :func:`decide` as ``scheduled_check``."""
    outlook: Outlook | None = None
    """For a re-plan that kept the plan on a forecast: what the kept release expects."""


@dataclass(frozen=True)
class Release:
    reason: ReleaseReason
    why: str
    target: datetime | None = None
    """The time it was due (for lateness); None when released ahead of any plan."""


@dataclass(frozen=True)
class RecordManual:
    why: str


@dataclass(frozen=True)
class Move:
    start: datetime
    previous: datetime
    why: str
    savings_g: float | None = None
    outlook: Outlook | None = None
    """What the new release expects, on the forecast the re-plan used."""


@dataclass(frozen=True)
class Account:
    accounting: Accounting
    why: str


Action = Forget | Track | Wait | Release | RecordManual | Move | Account


# --- What the decision knows ---------------------------------------------------------------


def _no_forecast(zone: str) -> ForecastResult | None:
    return None


def _no_observations(zone: str) -> StepSeries | None:
    return None


@dataclass(frozen=True)
class Knowledge:
    """Everything besides the Job that a decision reads: the time, settings, forecasts (from
    memory, per zone), observed intensity (per zone) and prices."""

    now: datetime
    settings: ReconcilerSettings = field(default_factory=ReconcilerSettings)
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    forecast_max_age_s: float = 6 * 3600.0
    forecast: Callable[[str], ForecastResult | None] = _no_forecast
    observed: Callable[[str], StepSeries | None] = _no_observations
    prices: PriceModel | None = None


@dataclass(frozen=True)
class _Usable:
    series: StepSeries
    uncertainty: ForecastUncertainty | None
    source: str


def _usable(result: ForecastResult | None, knowledge: Knowledge) -> _Usable | str:
    """The forecast to re-plan on, or why there is none."""
    if result is None or result.series is None:
        return result.reason if result is not None and result.reason else "no forecast held"
    age = result.age_s or 0.0
    if age > knowledge.forecast_max_age_s:
        return f"the {result.source} forecast is {age:.0f} s old"
    return _Usable(result.series, result.uncertainty, result.source)


def _replan(job: TrackedJob, deferral: Deferral, forecast: _Usable, knowledge: Knowledge) -> Replan:
    planner = knowledge.planner
    # The Job's own annotation (it may have been edited since), else what admission used
    # (namespace defaults included), else the global setting.
    min_saving = job.min_savings_pct
    if min_saving is None:
        min_saving = deferral.min_saving_pct
    if min_saving is not None and min_saving != planner.min_saving_pct:
        planner = planner.model_copy(update={"min_saving_pct": min_saving})
    request = PlanRequest(
        arrival=deferral.admitted_at,
        duration_s=deferral.duration_s,
        energy_kwh=deferral.energy_kwh,
        latest_start=deferral.release_by,
    )
    prices = None
    if knowledge.prices is not None:
        end = max(deferral.release_by, knowledge.now) + timedelta(seconds=deferral.duration_s)
        prices = knowledge.prices.series(knowledge.now, end)
    return replan(
        deferral.release_at,
        request,
        now=knowledge.now,
        forecast=forecast.series,
        settings=planner,
        prices=prices,
        uncertainty=forecast.uncertainty,
    )


def _outlook(
    release: datetime, result: Replan, deferral: Deferral, forecast: _Usable, now: datetime
) -> Outlook:
    """The expected saving of starting at ``release`` (the re-plan's move, or the kept plan)
    against running now, on the forecast ``result`` was re-planned on, and that forecast's
    error at its lead."""
    start = to_epoch(release)
    duration = deferral.duration_s
    intensity = forecast.series.extended_to(start + duration).mean(start, start + duration)
    now_intensity = result.plan.intensity_now_g_per_kwh
    saving_pct = 100.0 * (now_intensity - intensity) / now_intensity if now_intensity > 0 else 0.0
    lead_s = (release - now).total_seconds()
    error = forecast.uncertainty.at_lead(lead_s) if forecast.uncertainty is not None else None
    return Outlook(forecast.source, saving_pct, error)


def next_replan_check(
    job: TrackedJob, deferral: Deferral, knowledge: Knowledge, scheduled: datetime | None
) -> datetime:
    """When a waiting Job is next re-planned.

    ``scheduled`` is the check this process already scheduled (the ``check_at`` of the last
    :class:`Wait` it acted on); once set it stands until it comes, so every firing of the
    Job's timer moves towards it. Without one (a Job first seen, or just moved) the check is an
    interval after its admission or last move; a check already due then (after a restart) is
    spread over the next interval by uid, so a relist does not re-plan every Job at once. The
    caller keeps that time: computed again on the next firing it would slide away forever."""
    if scheduled is not None:
        return scheduled
    interval = timedelta(seconds=knowledge.settings.replan_interval_s)
    base = max(deferral.admitted_at, job.replanned_at or deferral.admitted_at) + interval
    if base > knowledge.now:
        return base
    offset = spread_offset_s(job.uid, knowledge.settings.replan_interval_s)
    return knowledge.now + timedelta(seconds=offset)


# --- The decision --------------------------------------------------------------------------


def decide(
    job: TrackedJob, knowledge: Knowledge, scheduled_check: datetime | None = None
) -> Action:
    """What to do with ``job`` now (see the module docstring). ``scheduled_check`` is the
    re-plan check this process scheduled for it: the ``check_at`` of the last :class:`Wait`
    it got (None: none since it first saw it or last moved it)."""
    if job.deleting:
        return Forget("it is being deleted")
    if job.released_at is not None:
        return _after_release(job, knowledge)
    if not job.suspended:
        flag = ".".join(job.workload.suspend_path)
        return RecordManual(f"its user set {flag} to false before its planned time")
    if job.skip:
        return Release(ReleaseReason.SKIP, "its user set greenlight.dev/skip while it waited")
    if job.deferral is None:
        return Release(
            ReleaseReason.INVALID_PLAN,
            f"its plan is unreadable ({job.deferral_error}): released rather than risk its "
            "deadline",
        )
    deferral = job.deferral
    target = release_target(job.uid, deferral, knowledge.settings.release_spread_s)
    if knowledge.now >= target:
        return _due(job, deferral, target, knowledge)
    return _waiting(job, deferral, target, knowledge, scheduled_check)


def _after_release(job: TrackedJob, knowledge: Knowledge) -> Action:
    if job.accounted:
        return Forget("released and accounted")
    if job.finished_at is None:
        return Track("released; accounted when it finishes")
    if job.deferral is None:
        return Forget("finished, but its plan is unreadable: nothing to account against")
    started = job.started_at or job.released_at or job.finished_at
    try:
        result = account(
            job.deferral,
            started_at=started,
            finished_at=job.finished_at,
            observed=knowledge.observed(job.deferral.zone),
            intensity_planned_g_per_kwh=job.intensity_planned_g_per_kwh,
            intensity_at_admission_g_per_kwh=job.intensity_now_g_per_kwh,
        )
    except AccountingError as e:
        return Forget(f"finished, but cannot be accounted: {e}")
    return Account(result, f"it finished ({job.outcome or 'done'})")


def _due(job: TrackedJob, deferral: Deferral, target: datetime, knowledge: Knowledge) -> Action:
    now = knowledge.now
    late_s = (now - target).total_seconds()
    if now >= deferral.release_by and late_s > knowledge.settings.late_tolerance_s:
        return Release(
            ReleaseReason.DEADLINE,
            f"its latest start {format_time(deferral.release_by)} has passed; {late_s:.0f} s "
            "after its planned time",
            target,
        )
    planned = ReleaseReason.WINDOW if job.replan_count == 0 else ReleaseReason.REPLANNED
    if job.replan_count >= knowledge.settings.max_replans:
        return Release(planned, "its planned time has come", target)
    result_or_none = knowledge.forecast(deferral.zone)
    if result_or_none is None:
        return Release(planned, "its planned time has come (no forecast loaded yet)", target)
    forecast = _usable(result_or_none, knowledge)
    if isinstance(forecast, str):
        return Release(
            ReleaseReason.PROVIDER_OUTAGE,
            f"its planned time has come and no forecast for zone {deferral.zone} can re-check "
            f"the plan: {forecast}",
            target,
        )
    try:
        result = _replan(job, deferral, forecast, knowledge)
    except ValueError as e:
        return Release(
            ReleaseReason.PROVIDER_OUTAGE,
            f"its planned time has come and the plan cannot be re-checked: {e}",
            target,
        )
    min_shift = timedelta(seconds=knowledge.settings.replan_min_shift_s)
    if result.action == "move" and result.start - now >= min_shift:
        return _move(result, deferral, forecast, now)
    return Release(planned, f"its planned time has come ({result.detail})", target)


def _move(result: Replan, deferral: Deferral, forecast: _Usable, now: datetime) -> Move:
    """Move the release to the re-plan's start, with what the new plan rests on."""
    return Move(
        result.start,
        deferral.release_at,
        result.detail,
        result.plan.savings_g,
        _outlook(result.start, result, deferral, forecast, now),
    )


def _waiting(
    job: TrackedJob,
    deferral: Deferral,
    target: datetime,
    knowledge: Knowledge,
    scheduled_check: datetime | None,
) -> Action:
    now = knowledge.now
    settings = knowledge.settings
    if job.replan_count >= settings.max_replans:
        return Wait(target, f"waiting for its planned time {format_time(target)}")
    check_at = next_replan_check(job, deferral, knowledge, scheduled_check)
    if now < check_at:
        return Wait(
            min(target, check_at),
            f"waiting for its planned time {format_time(target)}",
            check_at=check_at,
        )
    next_check = now + timedelta(seconds=settings.replan_interval_s)
    forecast = _usable(knowledge.forecast(deferral.zone), knowledge)
    if isinstance(forecast, str):
        return Wait(
            min(target, next_check), f"plan kept, no forecast: {forecast}", True, next_check
        )
    try:
        result = _replan(job, deferral, forecast, knowledge)
    except ValueError as e:
        return Wait(
            min(target, next_check), f"plan kept, re-plan impossible: {e}", True, next_check
        )
    if result.action == "release-now":
        return Release(ReleaseReason.REPLANNED, f"re-planned: {result.detail}")
    shift = abs((result.start - deferral.release_at).total_seconds())
    if result.action == "move" and shift >= settings.replan_min_shift_s:
        return _move(result, deferral, forecast, now)
    # Kept (or a move too small to make): the planned release stands.
    kept = _outlook(max(deferral.release_at, now), result, deferral, forecast, now)
    return Wait(min(target, next_check), f"re-planned, {result.detail}", True, next_check, kept)


# --- The writes that carry actions out -----------------------------------------------------


def _precondition(job: TrackedJob, annotations: Mapping[str, str]) -> dict[str, Any]:
    """Metadata for a merge patch that applies only to the version of the Job decided on: the
    apiserver answers 409 Conflict if anyone changed it since."""
    return {"resourceVersion": job.resource_version, "annotations": dict(annotations)}


def release_patch(job: TrackedJob, reason: ReleaseReason, now: datetime) -> dict[str, Any]:
    """The one PATCH that releases a Job: resume it and record when and why."""
    annotations = {keys.RELEASED_AT: format_time(now), keys.RELEASE_REASON: reason.value}
    return {"metadata": _precondition(job, annotations), **set_suspend(job.workload, False)}


def manual_patch(job: TrackedJob, now: datetime) -> dict[str, Any]:
    """Record a release its user made: annotations only, the spec is the user's."""
    annotations = {
        keys.RELEASED_AT: format_time(now),
        keys.RELEASE_REASON: ReleaseReason.MANUAL.value,
    }
    return {"metadata": _precondition(job, annotations)}


def _checked(job: TrackedJob, now: datetime) -> dict[str, str]:
    return {
        keys.REPLAN_CHECKED_AT: format_time(now),
        keys.REPLAN_CHECKS: str(job.replan_checks + 1),
    }


def move_patch(
    job: TrackedJob,
    move: Move,
    now: datetime,
    signing_keys: SigningKeys | None = None,
    signed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Move the release; with signing keys, sign the moved plan: ``signed`` are the Job's
    annotations at ``job.resource_version`` (the old signature covers the old release-at, so
    without a new one the Job would read as forged). They are read just before the write
    rather than kept: every tracked Job would otherwise hold its whole plan in memory."""
    annotations = {
        keys.RELEASE_AT: format_time(move.start),
        keys.REPLANNED_AT: format_time(now),
        keys.REPLAN_COUNT: str(job.replan_count + 1),
        **_checked(job, now),
    }
    if signing_keys is not None:
        plan = {k: v for k, v in (signed or {}).items() if k in SIGNED_KEYS}
        plan.update(annotations)
        annotations[keys.SIGNATURE] = signing_keys.sign(job.namespace, job.name, "", plan)
    return {"metadata": _precondition(job, annotations)}


def kept_patch(job: TrackedJob, now: datetime) -> dict[str, Any]:
    """Record a re-plan that kept the plan: when it ran and how many have run."""
    return {"metadata": _precondition(job, _checked(job, now))}


def actual_annotations(accounting: Accounting) -> dict[str, str]:
    """What a finished run really emitted, as the ``actual-*`` annotations."""
    return {
        keys.ACTUAL_RUN_S: str(round(accounting.run_s)),
        keys.ACTUAL_ENERGY_KWH: format_number(accounting.energy_kwh, 3),
        keys.ACTUAL_INTENSITY: format_number(accounting.intensity_g_per_kwh),
        keys.ACTUAL_EMISSIONS_G: format_number(accounting.emissions_g),
        keys.ACTUAL_SAVINGS_G: format_number(accounting.savings_g),
    }


def account_patch(job: TrackedJob, accounting: Accounting) -> dict[str, Any]:
    return {"metadata": _precondition(job, actual_annotations(accounting))}


def patch_for(
    job: TrackedJob,
    action: Action,
    now: datetime,
    signing_keys: SigningKeys | None = None,
    signed: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The PATCH that carries ``action`` out (None: nothing to write); ``signed``: see
    :func:`move_patch`."""
    if isinstance(action, Release):
        return release_patch(job, action.reason, now)
    if isinstance(action, RecordManual):
        return manual_patch(job, now)
    if isinstance(action, Move):
        return move_patch(job, action, now, signing_keys, signed)
    if isinstance(action, Account):
        return account_patch(job, action.accounting)
    if isinstance(action, Wait) and action.replan_checked:
        return kept_patch(job, now)
    return None

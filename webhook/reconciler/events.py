"""Kubernetes Events on a deferred Job (pure): what ``kubectl describe job`` shows.

Reasons are stable: ``Deferred`` (when, and the expected saving), ``RanNow`` and ``Skipped``
(a Job the webhook let run at once, and why: once, when it is created), ``Replanned`` (from, to,
why), ``PlanKept`` (a re-plan that kept the plan, and why), ``Released`` (the release reason),
``Completed`` (actual emissions and saving), and two Warnings on Jobs the reconciler sets aside:
``Unreadable`` (marked deferred, but cannot be read) and ``ForgedDecision`` (greenlight
annotations greenlight did not write). A re-plan, kept or moved, records one Event each
``replan_interval_s`` (30 min), so a waiting Job keeps a recent Event although the apiserver
drops Events after an hour (``--event-ttl``) and its ``Deferred`` Event with them.

Each Event has a name fixed by the Job's uid and what it records, so recording it twice —
after a restart, or by a new leader during a failover — is answered 409 AlreadyExists and
changes nothing: every Event is recorded once.

What a plan rests on is said with it: ``Deferred`` names the forecast the webhook planned on
(``forecast-source``), its measured error at the planned lead and the expected saving as a
range (``forecast-error-pct``, ``savings-pct-low``/``-high``), each where the Job records it;
``Replanned`` and ``PlanKept`` say the same of the forecast the re-plan used (a Job admitted on
greenlight's history forecast may be re-planned on the provider's once it is back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from webhook.core.annotations import Decision, format_time
from webhook.reconciler.accounting import Accounting
from webhook.reconciler.decide import Move, Outlook, Release, ReleaseReason, TrackedJob

COMPONENT = "greenlight"
REPORTING_COMPONENT = "greenlight.dev/reconciler"
MAX_NAME = 253


class EventReason(StrEnum):
    DEFERRED = "Deferred"
    RAN_NOW = "RanNow"
    SKIPPED = "Skipped"
    REPLANNED = "Replanned"
    PLAN_KEPT = "PlanKept"
    RELEASED = "Released"
    COMPLETED = "Completed"
    UNREADABLE = "Unreadable"
    FORGED = "ForgedDecision"


@dataclass(frozen=True)
class JobEvent:
    """One Event to record on a Job."""

    job: TrackedJob
    reason: EventReason
    message: str
    warning: bool = False
    suffix: str = ""

    @property
    def name(self) -> str:
        """Unique per Job (uid) and per thing recorded; a valid object name."""
        tail = f".greenlight-{self.reason.lower()}{self.suffix}-{self.job.uid[:8]}"
        return self.job.name[: MAX_NAME - len(tail)] + tail


def _grams(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} g"


def _range(low: float, high: float) -> str:
    return f"{low:.1f}% to {high:.1f}%"


def _forecast(source: str | None, error_pct: float | None) -> str:
    """ "; forecast history, measured error 4.2% at the planned lead" (each part where known)."""
    if source is None and error_pct is None:
        return ""
    text = f"; forecast {source or 'of unrecorded source'}"
    if error_pct is not None:
        text += f", measured error {error_pct:.1f}% at the planned lead"
    return text


def deferred(job: TrackedJob) -> JobEvent | None:
    deferral = job.deferral
    if deferral is None:
        return None
    saving = _grams(job.savings_g)
    if job.savings_pct is not None:
        if job.savings_pct_low is not None and job.savings_pct_high is not None:
            saving += (
                f" ({job.savings_pct:.1f}%, {_range(job.savings_pct_low, job.savings_pct_high)})"
            )
        else:
            saving += f" ({job.savings_pct:.1f}%)"
    return JobEvent(
        job,
        EventReason.DEFERRED,
        f"Deferred until {format_time(deferral.release_at)} (latest start "
        f"{format_time(deferral.release_by)}, zone {deferral.zone}); expected saving "
        f"{saving} CO2eq{_forecast(job.forecast_source, job.forecast_error_pct)}",
    )


def _outlook(outlook: Outlook | None) -> str:
    """ "; expected saving 12.0% (9.1% to 14.9%) against running now; forecast provider, ..."""
    if outlook is None:
        return ""
    saving = f"{outlook.savings_pct:.1f}%"
    if outlook.error_pct is not None:
        low = outlook.savings_pct - outlook.error_pct
        saving += f" ({_range(low, outlook.savings_pct + outlook.error_pct)})"
    return f"; expected saving {saving} against running now" + _forecast(
        outlook.source, outlook.error_pct
    )


def not_deferred(
    job: TrackedJob,
    decision: Decision,
    code: str,
    reason: str,
    *,
    intensity_now_g_per_kwh: float | None = None,
    emissions_now_g: float | None = None,
) -> JobEvent | None:
    """A Job the webhook let run at once (``run-now``) or never judged deferrable
    (``skipped``): why, with the numbers of running now where a plan was made (a reason such as
    ``saving-below-threshold`` already names the saving the best window would have made)."""
    if decision == Decision.RUN_NOW:
        head, event_reason = "Ran at once", EventReason.RAN_NOW
    elif decision == Decision.SKIPPED:
        head, event_reason = "Not deferrable, ran at once", EventReason.SKIPPED
    else:
        return None
    numbers = ""
    if intensity_now_g_per_kwh is not None and emissions_now_g is not None:
        numbers = (
            f" (intensity now {intensity_now_g_per_kwh:.0f} g/kWh, expected emissions "
            f"{_grams(emissions_now_g)} CO2eq)"
        )
    return JobEvent(job, event_reason, f"{head} [{code or 'unknown'}]: {reason}{numbers}")


def replanned(job: TrackedJob, move: Move) -> JobEvent:
    direction = "earlier" if move.start < move.previous else "later"
    return JobEvent(
        job,
        EventReason.REPLANNED,
        f"Release moved {direction} from {format_time(move.previous)} to "
        f"{format_time(move.start)}: {move.why}{_outlook(move.outlook)}",
        suffix=f"-{job.replan_count + 1}",
    )


def plan_kept(job: TrackedJob, why: str, outlook: Outlook | None = None) -> JobEvent | None:
    """A re-plan that kept the plan (``why`` says what it found; ``outlook``, where it
    re-planned on a forecast, what the kept release expects), numbered by the re-plans
    recorded on the Job (``replan-checks``) so each one is its own Event."""
    deferral = job.deferral
    if deferral is None:
        return None
    return JobEvent(
        job,
        EventReason.PLAN_KEPT,
        f"Re-planned, release kept at {format_time(deferral.release_at)} (latest start "
        f"{format_time(deferral.release_by)}): {why}{_outlook(outlook)}",
        suffix=f"-{job.replan_checks + 1}",
    )


_WARNINGS = {ReleaseReason.PROVIDER_OUTAGE, ReleaseReason.INVALID_PLAN, ReleaseReason.DEADLINE}


def released(job: TrackedJob, reason: ReleaseReason, why: str, now: datetime) -> JobEvent:
    return JobEvent(
        job,
        EventReason.RELEASED,
        f"Released at {format_time(now)} (reason {reason.value}): {why}",
        warning=reason in _WARNINGS,
    )


def released_by_action(job: TrackedJob, release: Release, now: datetime) -> JobEvent:
    return released(job, release.reason, release.why, now)


def completed(job: TrackedJob, accounting: Accounting) -> JobEvent:
    basis = (
        ""
        if accounting.basis == "observed"
        else " (no observed intensity covered the run: the planned intensity was used)"
    )
    return JobEvent(
        job,
        EventReason.COMPLETED,
        f"{job.outcome or 'Finished'} after {accounting.run_s:.0f} s: actual emissions "
        f"{accounting.emissions_g:.0f} g CO2eq ({accounting.energy_kwh:.3f} kWh at "
        f"{accounting.intensity_g_per_kwh:.0f} g/kWh){basis}; saving "
        f"{accounting.savings_g:.0f} g versus running at admission "
        f"({accounting.intensity_at_admission_g_per_kwh:.0f} g/kWh)",
    )


def unreadable(job: TrackedJob, error: str) -> JobEvent:
    """Once per version of the Job (its resourceVersion is in the name): a Job fixed by its
    owner and broken again gets a new one, a relist of the same version none."""
    return JobEvent(
        job,
        EventReason.UNREADABLE,
        f"greenlight cannot read this Job and will not act on it: {error}",
        warning=True,
        suffix=f"-{job.resource_version[:20]}",
    )


def forged(job: TrackedJob, why: str) -> JobEvent:
    return JobEvent(
        job,
        EventReason.FORGED,
        f"greenlight did not write this Job's decision and will never release it: {why}",
        warning=True,
    )


def event_body(event: JobEvent, *, now: datetime, instance: str) -> dict[str, Any]:
    """The core/v1 Event object for ``event``."""
    job = event.job
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event.name, "namespace": job.namespace},
        "involvedObject": {
            "apiVersion": job.workload.gvk.api_version,
            "kind": job.workload.gvk.kind,
            "name": job.name,
            "namespace": job.namespace,
            "uid": job.uid,
        },
        "reason": event.reason.value,
        "message": event.message[:1024],
        "type": "Warning" if event.warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": instance[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }

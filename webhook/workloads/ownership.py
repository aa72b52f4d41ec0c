"""The one predicate "greenlight owns this Job", shared by the webhook and the reconciler.

A Job is greenlight's to release when the webhook deferred it (``decision: deferred``), it is
still suspended, and nobody has released it yet (no ``released-at``). A Job its owner created
suspended is never marked deferred (the webhook skips it as ``user-suspended``), so it can never
match. Both sides import this module, so no Job can be deferred by one and ignored by the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from webhook.core import annotations as keys
from webhook.core.annotations import Decision
from webhook.workloads.base import Workload, is_suspended
from webhook.workloads.job import JOB


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def job_annotations(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(job.get("metadata")).get("annotations"))


def greenlight_owns(job: Mapping[str, Any], workload: Workload = JOB) -> bool:
    """True for a workload greenlight deferred, still suspended and not yet released."""
    annotations = job_annotations(job)
    return (
        annotations.get(keys.DECISION) == Decision.DEFERRED
        and is_suspended(workload, job)
        and keys.RELEASED_AT not in annotations
    )


@dataclass(frozen=True)
class Deferral:
    """The plan the webhook recorded on a deferred Job."""

    admitted_at: datetime
    release_at: datetime
    release_by: datetime
    zone: str
    duration_s: int
    energy_kwh: float
    min_saving_pct: float | None = None
    """The minimum saving the plan used (absent on Jobs deferred before it was recorded)."""


class DeferralError(ValueError):
    """A Job marked deferred whose plan annotations are missing or unreadable."""


def read_deferral(job: Mapping[str, Any]) -> Deferral:
    """The recorded plan of a Job for which :func:`greenlight_owns` is true."""
    annotations = job_annotations(job)
    try:
        return Deferral(
            admitted_at=_time(annotations[keys.ADMITTED_AT]),
            release_at=_time(annotations[keys.RELEASE_AT]),
            release_by=_time(annotations[keys.RELEASE_BY]),
            zone=str(annotations[keys.PLANNED_ZONE]),
            duration_s=int(annotations[keys.PLANNED_DURATION_S]),
            energy_kwh=float(annotations[keys.ENERGY_KWH]),
            min_saving_pct=_percent(annotations.get(keys.PLANNED_MIN_SAVINGS_PCT)),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise DeferralError(f"deferred Job has a missing or bad greenlight annotation: {e}") from e


def _percent(value: object) -> float | None:
    if value is None:
        return None
    try:
        percent = float(str(value))
    except ValueError:
        percent = math.nan
    if not 0.0 <= percent <= 100.0:
        raise ValueError(
            f"{keys.PLANNED_MIN_SAVINGS_PCT}={value!r}: expected a number from 0 to 100"
        )
    return percent


def _time(value: object) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return moment.astimezone(UTC)

"""Small builders for the reconciler tests: deferred Jobs as the apiserver returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.core import annotations as keys
from webhook.core.annotations import format_time

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def plan_annotations(
    *,
    admitted: datetime = T0,
    release_at: datetime | None = None,
    release_by: datetime | None = None,
    zone: str = "DE",
    duration_s: int = 3600,
    energy_kwh: float = 2.0,
    intensity_now: float = 400.0,
    intensity_planned: float = 100.0,
) -> dict[str, str]:
    release_at = release_at or admitted + timedelta(hours=6)
    release_by = release_by or admitted + timedelta(hours=23)
    return {
        keys.DECISION: "deferred",
        keys.REASON_CODE: "window",
        keys.ADMITTED_AT: format_time(admitted),
        keys.RELEASE_AT: format_time(release_at),
        keys.RELEASE_BY: format_time(release_by),
        keys.PLANNED_ZONE: zone,
        keys.PLANNED_DURATION_S: str(duration_s),
        keys.ENERGY_KWH: f"{energy_kwh:.3f}",
        keys.INTENSITY_NOW: f"{intensity_now:.1f}",
        keys.INTENSITY_PLANNED: f"{intensity_planned:.1f}",
        keys.EMISSIONS_NOW_G: f"{energy_kwh * intensity_now:.1f}",
        keys.EMISSIONS_PLANNED_G: f"{energy_kwh * intensity_planned:.1f}",
        keys.SAVINGS_G: f"{energy_kwh * (intensity_now - intensity_planned):.1f}",
        keys.SAVINGS_PCT: "75.0",
    }


def deferred_job(
    name: str = "train",
    namespace: str = "ml",
    *,
    uid: str | None = None,
    resource_version: str = "100",
    suspend: bool = True,
    annotations: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
    **plan: Any,
) -> dict[str, Any]:
    """A Job the webhook deferred (its plan from ``plan`` unless ``annotations`` is given)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "resourceVersion": resource_version,
        "annotations": {**(annotations or plan_annotations(**plan)), **(extra or {})},
    }
    if deleting:
        metadata["deletionTimestamp"] = format_time(T0)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "suspend": suspend,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m"}]}},
        },
        "status": status or {},
    }


def finished(start: datetime, end: datetime, kind: str = "Complete") -> dict[str, Any]:
    status: dict[str, Any] = {
        "startTime": format_time(start),
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": format_time(end)},
        ],
    }
    if kind == "Complete":
        status["completionTime"] = format_time(end)
    return status

"""The reconciler's settings section (``GREENLIGHT_RECONCILER__*``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from webhook.core.durations import parse_duration


def _seconds(value: Any) -> Any:
    """Durations may be written as "30m" as well as a number of seconds."""
    if isinstance(value, str) and not value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        return parse_duration(value)
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]


class ReconcilerSettings(BaseModel):
    """How the reconciler elects a leader, releases, re-plans and keeps history."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lease_name: str = Field(
        default="greenlight-reconciler",
        description="Name of the coordination.k8s.io Lease the replicas elect a leader with.",
    )
    lease_namespace: str = Field(
        default="greenlight",
        description="Namespace of the Lease and of the intensity-history ConfigMap.",
    )
    lease_duration_s: Seconds = Field(
        default=15.0,
        gt=0,
        description="How long a Lease not renewed keeps other replicas from taking over.",
    )
    renew_deadline_s: Seconds = Field(
        default=10.0,
        gt=0,
        description="The leader stops acting when it could not renew for this long (must be "
        "shorter than lease_duration_s, so it steps down before anyone can take over).",
    )
    retry_period_s: Seconds = Field(
        default=2.0,
        gt=0,
        description="How often the leader renews and followers try to acquire.",
    )
    identity: str | None = Field(
        default=None,
        description="This replica's name in the Lease (default: $POD_NAME, else host-pid).",
    )
    sweep_interval_s: Seconds = Field(
        default=30.0,
        gt=0,
        description="How often the sweeper scans for overdue Jobs (a safety net behind the "
        "per-Job timers) and updates greenlight_overdue_deferred_jobs.",
    )
    overdue_grace_s: Seconds = Field(
        default=60.0,
        ge=0,
        description="A deferred Job still suspended this long after its release-by counts as "
        "overdue.",
    )
    late_tolerance_s: Seconds = Field(
        default=30.0,
        ge=0,
        description="A release more than this after its target and past release-by is recorded "
        "with reason deadline (the window was missed), not window.",
    )
    replan_interval_s: Seconds = Field(
        default=1800.0,
        gt=0,
        description="How often a waiting Job is re-planned on the latest forecast.",
    )
    max_replans: int = Field(
        default=6,
        ge=0,
        description="At most this many moves of one Job's release (bounded churn; 0 = never "
        "re-plan).",
    )
    replan_min_shift_s: Seconds = Field(
        default=300.0,
        ge=0,
        description="A re-plan moving the release by less than this keeps the current time.",
    )
    release_spread_s: Seconds = Field(
        default=60.0,
        ge=0,
        description="Releases are spread over this many seconds after their planned time "
        "(a fixed offset per Job from its uid, never past release-by), so Jobs planned for the "
        "same clean hour do not all reach the scheduler in the same second.",
    )
    history_configmap: str = Field(
        default="greenlight-intensity-history",
        description="ConfigMap (in lease_namespace) holding observed intensity per zone.",
    )
    history_points_per_zone: int = Field(
        default=672,
        ge=1,
        description="Observations kept per zone (672 = 28 days of hourly values, what the "
        "history forecaster looks back over).",
    )
    history_max_zones: int = Field(
        default=32,
        ge=1,
        description="Zones kept in the history (the least recently observed are dropped).",
    )
    history_flush_s: Seconds = Field(
        default=600.0,
        gt=0,
        description="How often the leader writes new observations to the ConfigMap.",
    )
    watch_timeout_s: int = Field(
        default=300,
        ge=10,
        description="Server-side timeout of one watch request (it resumes from the last "
        "resourceVersion or bookmark).",
    )
    list_page_size: int = Field(
        default=100,
        ge=1,
        description="Jobs per page when (re)listing: a raw page is the bulk of a relist's "
        "memory (100 Jobs: a few MB), more pages cost a little relist time.",
    )
    api_workers: int = Field(
        default=8,
        ge=1,
        description="Threads writing releases, re-plans and accounting to the apiserver.",
    )
    api_timeout_s: Seconds = Field(
        default=30.0, gt=0, description="Timeout of one API request (watches excepted)."
    )
    events: bool = Field(
        default=True,
        description=(
            "Record Kubernetes Events on Jobs (Deferred, Replanned, PlanKept, Released, "
            "Completed, RanNow and Skipped; Unreadable and ForgedDecision Warnings)."
        ),
    )
    event_queue_size: int = Field(
        default=20000,
        ge=1,
        description="Events waiting to be written; beyond it new Events are dropped and counted.",
    )

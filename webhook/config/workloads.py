"""The workload kinds greenlight judges (``GREENLIGHT_WORKLOADS__*``).

One list, read by both halves: the webhook judges a created object only when its kind is
enabled, and the reconciler watches and releases exactly the enabled kinds. The chart renders
the webhook rules and the RBAC from the same value, so the three never disagree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webhook.workloads.base import Workload
from webhook.workloads.kinds import WORKLOADS

KIND_NAMES: tuple[str, ...] = tuple(w.gvk.kind for w in WORKLOADS)
"""Every kind greenlight knows, by its API kind name (unique across their API groups)."""


class WorkloadSettings(BaseModel):
    """Which workload kinds greenlight judges, watches and releases."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: tuple[str, ...] = Field(
        default=KIND_NAMES,
        min_length=1,
        description="Kinds the webhook judges and the reconciler releases: Job, JobSet, "
        "PyTorchJob, TFJob, MPIJob, XGBoostJob, MXJob, PaddleJob, TrainJob, RayJob. A kind "
        "whose CRD is not installed is logged at start-up and watched for once it is. The "
        "children of any known kind (a JobSet's Jobs, a RayJob's submitter) are never judged "
        "on their own, enabled or not.",
    )

    @field_validator("enabled", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            unknown = [kind for kind in value if kind not in KIND_NAMES]
            if unknown:
                raise ValueError(
                    f"unknown workload kind(s) {', '.join(map(repr, unknown))}; "
                    f"known: {', '.join(KIND_NAMES)}"
                )
            if len(set(value)) != len(value):
                raise ValueError("a workload kind is listed twice")
        return value

    @property
    def workloads(self) -> tuple[Workload, ...]:
        """The enabled implementations, in the order of ``webhook.workloads.kinds``."""
        return tuple(w for w in WORKLOADS if w.gvk.kind in self.enabled)

    def judges(self, workload: Workload) -> bool:
        return workload.gvk.kind in self.enabled

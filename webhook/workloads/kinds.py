"""Every workload kind greenlight knows, by API kind, and the rule that a child of one of them
(a JobSet's Jobs, a RayJob's submitter Job, a TrainJob's JobSet) is never judged on its own: its
parent is the gang that starts in one window, or is not held back at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from webhook.workloads.base import GroupVersionKind, OwnerReference, Workload, controller_owner
from webhook.workloads.job import JOB
from webhook.workloads.jobset import JOBSET
from webhook.workloads.kubeflow import KUBEFLOW_V1
from webhook.workloads.rayjob import RAYJOB
from webhook.workloads.trainjob import TRAINJOB

WORKLOADS: tuple[Workload, ...] = (JOB, JOBSET, *KUBEFLOW_V1, TRAINJOB, RAYJOB)
BY_KIND: dict[GroupVersionKind, Workload] = {w.gvk: w for w in WORKLOADS}

PARENT_KINDS: frozenset[tuple[str, str]] = frozenset(
    (w.gvk.group, w.gvk.kind) for w in WORKLOADS if w is not JOB
) | {("ray.io", "RayCluster")}
"""(API group, kind) of the owners whose children greenlight leaves to them. A RayJob's
RayCluster owns the cluster's pods, never a Job, but is listed for completeness."""


def workload_for(gvk: GroupVersionKind) -> Workload | None:
    """The implementation for an AdmissionReview's ``request.kind``, or None."""
    return BY_KIND.get(gvk)


def workload_parent(obj: Mapping[str, Any]) -> OwnerReference | None:
    """The controlling owner of ``obj`` when it is a workload kind greenlight knows (any
    version of its API group), else None."""
    owner = controller_owner(obj)
    if owner is not None and (owner.group, owner.kind) in PARENT_KINDS:
        return owner
    return None


def admission_rules(workloads: Iterable[Workload], operations: list[str]) -> list[dict[str, Any]]:
    """The ``rules`` of an admission webhook on ``workloads``: one rule per API group and
    version, naming its resources (what the chart renders from ``workloads.enabled``)."""
    resources: dict[tuple[str, str], list[str]] = {}
    for workload in workloads:
        resources.setdefault((workload.gvk.group, workload.gvk.version), []).append(workload.plural)
    return [
        {
            "apiGroups": [group],
            "apiVersions": [version],
            "resources": plurals,
            "operations": list(operations),
            "scope": "Namespaced",
        }
        for (group, version), plurals in resources.items()
    ]

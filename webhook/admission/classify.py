"""The "never defer" rules: which Jobs greenlight lets run at once whatever the grid looks like.

Pure functions of the admission operation, the Job and its parsed inputs. Each rule returns a
:class:`Skip` with a stable code (a metrics label and the ``reason-code`` annotation) and a
sentence for humans, or None.

CronJob policy. The webhook sees only the Job, not its CronJob, so it cannot know the schedule
or ``concurrencyPolicy``. A deferred Job counts as active for its CronJob: under ``Forbid`` the
next runs are skipped while it waits, under ``Replace`` the next run deletes it. So a Job owned
by a CronJob is deferred only when the Job itself carries ``greenlight.dev/max-delay`` or
``greenlight.dev/deadline`` (put them in the CronJob's ``jobTemplate.metadata.annotations``):
whoever wrote the schedule states how long one run may wait, i.e. caps the deferral before the
next run. Namespace and global max-delay defaults never apply to CronJob Jobs, which are
otherwise skipped with the reason ``cronjob``. This needs no watch on CronJobs and no cron
parser in the webhook, and the default can never lose or delete a scheduled run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webhook.core.annotations import Inputs
from webhook.core.reasons import ReasonCode
from webhook.workloads.base import Workload, is_suspended
from webhook.workloads.job import JOB
from webhook.workloads.kinds import workload_parent

HELM_HOOK = "helm.sh/hook"
ARGOCD_HOOK = "argocd.argoproj.io/hook"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CRONJOB_SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@dataclass(frozen=True)
class Skip:
    """Why a Job is not deferred: ``code`` is stable and low-cardinality, ``reason`` is prose."""

    code: ReasonCode
    reason: str


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # JSON-decoded: skip the slower abstract-class check
        return value
    return value if isinstance(value, Mapping) else {}


def owned_by_cronjob(job: Mapping[str, Any]) -> bool:
    metadata = _mapping(job.get("metadata"))
    if CRONJOB_SCHEDULED_AT in _mapping(metadata.get("annotations")):
        return True
    owners = metadata.get("ownerReferences")
    if not isinstance(owners, list):
        return False
    return any(
        isinstance(owner, Mapping)
        and owner.get("kind") == "CronJob"
        and str(owner.get("apiVersion", "")).startswith("batch/")
        for owner in owners
    )


def never_defer(
    job: Mapping[str, Any], job_inputs: Inputs, effective: Inputs, workload: Workload = JOB
) -> Skip | None:
    """The first rule that keeps a Job (being created) from being deferred, or None.

    ``job_inputs`` are the inputs written on the Job itself, ``effective`` the Job's merged over
    the namespace and global defaults.
    """
    metadata = _mapping(job.get("metadata"))
    annotations = _mapping(metadata.get("annotations"))
    labels = _mapping(metadata.get("labels"))
    if effective.skip:
        return Skip(ReasonCode.SKIP_ANNOTATION, "greenlight.dev/skip is true")
    if HELM_HOOK in annotations:
        return Skip(
            ReasonCode.HELM_HOOK, "Helm hook Jobs run at once: a suspended hook hangs the release"
        )
    if ARGOCD_HOOK in annotations:
        return Skip(
            ReasonCode.ARGOCD_HOOK, "Argo CD hook Jobs run at once: a suspended hook hangs the sync"
        )
    parent = workload_parent(job)
    if parent is not None:
        return Skip(
            ReasonCode.OWNED_BY_WORKLOAD,
            f"part of {parent.kind} {parent.name}: the {parent.kind} is the gang greenlight "
            "judges, its children are never held back on their own",
        )
    if KUEUE_QUEUE_LABEL in labels:
        return Skip(
            ReasonCode.KUEUE, "Kueue manages this Job's suspension (kueue.x-k8s.io/queue-name)"
        )
    if is_suspended(workload, job):
        return Skip(
            ReasonCode.USER_SUSPENDED,
            "created suspended by its owner: greenlight never releases such a Job",
        )
    if owned_by_cronjob(job) and job_inputs.max_delay_s is None and job_inputs.deadline is None:
        return Skip(
            ReasonCode.CRONJOB,
            "created by a CronJob without greenlight.dev/max-delay or greenlight.dev/deadline "
            "in its jobTemplate: a waiting run could block or be replaced by the next one",
        )
    return None


def no_room(arrival: datetime, latest_start: datetime, min_delay_s: float = 60.0) -> Skip | None:
    """Skip when the deadline leaves less than ``min_delay_s`` to wait: nothing to plan."""
    if (latest_start - arrival).total_seconds() < min_delay_s:
        return Skip(
            ReasonCode.NO_ROOM,
            "the deadline or max-delay leaves no room to wait "
            f"(latest start {latest_start.isoformat()})",
        )
    return None

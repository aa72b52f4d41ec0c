"""The one predicate "greenlight owns this Job", shared by the webhook and the reconciler.

A Job is greenlight's to release when the webhook deferred it (``decision: deferred``), it is
still suspended, and nobody has released it yet (no ``released-at``). A Job its owner created
suspended is never marked deferred (the webhook skips it as ``user-suspended``), so it can never
match. Both sides import this module, so no Job can be deferred by one and ignored by the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core import annotations as keys
from webhook.core.annotations import Decision, Deferral
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


def read_deferral(job: Mapping[str, Any]) -> Deferral:
    """The recorded plan of a Job for which :func:`greenlight_owns` is true
    (``DeferralError`` names a missing or bad annotation)."""
    return keys.parse_deferral(job_annotations(job))

"""Every reason code the admission path gives for a decision, and which decision each goes with.

A code is stable and low-cardinality: it is the ``greenlight.dev/reason-code`` annotation and
the ``reason`` label of ``greenlight_decisions_total``, so dashboards and alerts can match on it
(the prose is ``greenlight.dev/reason``). :data:`DECISION_REASONS` lists every (decision, code)
pair that can occur, so the counter can export each at 0 before its first decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from webhook.core.annotations import Decision


class ReasonCode(StrEnum):
    """Why a Job was (or was not) judged the way it was."""

    # Not judged: no decision, no annotation, not counted.
    NOT_A_JOB_CREATE = "not-a-job-create"
    KIND_NOT_ENABLED = "kind-not-enabled"
    EXCLUDED_NAMESPACE = "excluded-namespace"
    ALREADY_JUDGED = "already-judged"

    # skipped: the never-defer rules (admission/classify.py) and bad inputs.
    INVALID_ANNOTATIONS = "invalid-annotations"
    SKIP_ANNOTATION = "skip-annotation"
    HELM_HOOK = "helm-hook"
    ARGOCD_HOOK = "argocd-hook"
    OWNED_BY_WORKLOAD = "owned-by-workload"
    KUEUE = "kueue"
    USER_SUSPENDED = "user-suspended"
    CRONJOB = "cronjob"
    NO_ROOM = "no-room"

    # run-now: nothing to plan on.
    NO_ESTIMATE = "no-estimate"
    NO_FORECAST = "no-forecast"
    STALE_FORECAST = "stale-forecast"

    # run-now: the planner (core/planner.py) found no window worth waiting for.
    BEST_NOW = "best-now"
    SAVING_BELOW_THRESHOLD = "saving-below-threshold"
    SAVING_WITHIN_UNCERTAINTY = "saving-within-uncertainty"
    NO_ROOM_BEFORE_DEADLINE = "no-room-before-deadline"
    FORECAST_TOO_SHORT = "forecast-too-short"

    # deferred (or observed): the planner's cleanest window.
    WINDOW = "window"


UNJUDGED = frozenset(
    {
        ReasonCode.NOT_A_JOB_CREATE,
        ReasonCode.KIND_NOT_ENABLED,
        ReasonCode.EXCLUDED_NAMESPACE,
        ReasonCode.ALREADY_JUDGED,
    }
)
"""Codes of requests left alone: they carry no decision and are never counted."""

PLANNER_RUN_NOW = frozenset(
    {
        ReasonCode.BEST_NOW,
        ReasonCode.SAVING_BELOW_THRESHOLD,
        ReasonCode.SAVING_WITHIN_UNCERTAINTY,
        ReasonCode.NO_ROOM_BEFORE_DEADLINE,
        ReasonCode.FORECAST_TOO_SHORT,
    }
)
"""The planner's codes for a plan that starts now."""

DECISION_REASONS: dict[Decision, frozenset[ReasonCode]] = {
    Decision.SKIPPED: frozenset(
        {
            ReasonCode.INVALID_ANNOTATIONS,
            ReasonCode.SKIP_ANNOTATION,
            ReasonCode.HELM_HOOK,
            ReasonCode.ARGOCD_HOOK,
            ReasonCode.OWNED_BY_WORKLOAD,
            ReasonCode.KUEUE,
            ReasonCode.USER_SUSPENDED,
            ReasonCode.CRONJOB,
            ReasonCode.NO_ROOM,
        }
    ),
    Decision.RUN_NOW: frozenset(
        {ReasonCode.NO_ESTIMATE, ReasonCode.NO_FORECAST, ReasonCode.STALE_FORECAST}
        | PLANNER_RUN_NOW
    ),
    Decision.DEFERRED: frozenset({ReasonCode.WINDOW}),
    Decision.OBSERVED: frozenset({ReasonCode.WINDOW}),
}
"""Every code each decision can carry (observe mode records the deferral it would have made)."""


def decision_reasons() -> Iterator[tuple[Decision, ReasonCode]]:
    """Every (decision, code) pair the admission path can record, in a stable order."""
    for decision in Decision:
        for code in sorted(DECISION_REASONS[decision]):
            yield decision, code

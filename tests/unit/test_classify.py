from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reviews import job

from webhook.admission.classify import never_defer, no_room, owned_by_cronjob
from webhook.core.annotations import Inputs


@pytest.mark.parametrize(
    ("obj", "job_inputs", "effective", "code"),
    [
        pytest.param(job(), Inputs(), Inputs(skip=True), "skip-annotation", id="skip"),
        pytest.param(
            job(annotations={"helm.sh/hook": "pre-install"}),
            Inputs(),
            Inputs(),
            "helm-hook",
            id="helm-hook",
        ),
        pytest.param(
            job(annotations={"argocd.argoproj.io/hook": "PreSync"}),
            Inputs(),
            Inputs(),
            "argocd-hook",
            id="argocd-hook",
        ),
        pytest.param(
            job(labels={"kueue.x-k8s.io/queue-name": "team-a"}),
            Inputs(),
            Inputs(),
            "kueue",
            id="kueue-queue-label",
        ),
        pytest.param(job(suspend=True), Inputs(), Inputs(), "user-suspended", id="user-suspended"),
        pytest.param(
            job(owner_kind="CronJob"),
            Inputs(),
            Inputs(max_delay_s=86400),
            "cronjob",
            id="cronjob-with-only-default-max-delay",
        ),
        pytest.param(
            job(
                annotations={
                    "batch.kubernetes.io/cronjob-scheduled-timestamp": "2025-06-01T00:00:00Z"
                }
            ),
            Inputs(),
            Inputs(),
            "cronjob",
            id="cronjob-by-scheduled-timestamp",
        ),
    ],
)
def test_jobs_that_must_never_wait_are_skipped_with_a_stable_code(
    obj: dict[str, Any], job_inputs: Inputs, effective: Inputs, code: str
) -> None:
    skip = never_defer(obj, job_inputs, effective)
    assert skip is not None
    assert skip.code == code
    assert skip.reason


@pytest.mark.parametrize(
    ("obj", "job_inputs"),
    [
        pytest.param(job(), Inputs(), id="plain-job"),
        pytest.param(job(suspend=False), Inputs(), id="explicit-suspend-false"),
        pytest.param(
            job(owner_kind="CronJob"), Inputs(max_delay_s=1800), id="cronjob-own-max-delay"
        ),
        pytest.param(
            job(owner_kind="CronJob"),
            Inputs(deadline=datetime(2030, 1, 1, tzinfo=UTC)),
            id="cronjob-own-deadline",
        ),
        pytest.param(job(owner_kind="ReplicaSet"), Inputs(), id="other-owner"),
        pytest.param(job(), Inputs(skip=False), id="skip-false"),
    ],
)
def test_ordinary_jobs_may_be_deferred(obj: dict[str, Any], job_inputs: Inputs) -> None:
    assert never_defer(obj, job_inputs, job_inputs) is None


def test_skip_is_checked_before_the_other_rules() -> None:
    obj = job(suspend=True, annotations={"helm.sh/hook": "post-install"})
    skip = never_defer(obj, Inputs(), Inputs(skip=True))
    assert skip is not None
    assert skip.code == "skip-annotation"


def test_a_malformed_object_is_not_a_crash() -> None:
    obj: dict[str, Any] = {"metadata": "oops", "spec": ["x"]}
    assert never_defer(obj, Inputs(), Inputs()) is None
    assert owned_by_cronjob({"metadata": {"ownerReferences": "x"}}) is False


ARRIVAL = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("latest_start", "skipped"),
    [
        pytest.param(ARRIVAL - timedelta(hours=1), True, id="deadline-already-past"),
        pytest.param(ARRIVAL, True, id="must-start-now"),
        pytest.param(ARRIVAL + timedelta(seconds=59), True, id="under-a-minute"),
        pytest.param(ARRIVAL + timedelta(minutes=1), False, id="a-minute"),
        pytest.param(ARRIVAL + timedelta(hours=24), False, id="a-day"),
    ],
)
def test_no_room_before_the_latest_start_means_run_now(
    latest_start: datetime, skipped: bool
) -> None:
    skip = no_room(ARRIVAL, latest_start)
    assert (skip is not None) is skipped
    if skip is not None:
        assert skip.code == "no-room"

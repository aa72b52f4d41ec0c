from __future__ import annotations

import copy
from typing import Any

import pytest
from reviews import GREENLIGHT_USER, body, job, review

from webhook.admission.review import AdmissionResponse, decode_review
from webhook.admission.validate import validate
from webhook.core import annotations as keys
from webhook.core.energy import EnergySettings, load_catalog

TRUSTED = (GREENLIGHT_USER,)
DEFERRED = {keys.DECISION: "deferred", keys.RELEASE_AT: "2025-06-01T03:00:00Z"}


def _validate(
    annotations: dict[str, str] | None,
    *,
    operation: str = "CREATE",
    old_annotations: dict[str, str] | None = None,
    username: str = "alice",
    suspend: bool | None = None,
    old_suspend: bool | None = None,
) -> AdmissionResponse:
    old = job(annotations=old_annotations, suspend=old_suspend) if operation == "UPDATE" else None
    value = review(
        job(annotations=annotations, suspend=suspend),
        operation=operation,
        old=old,
        username=username,
    )
    return validate(decode_review(body(value)), TRUSTED)


def test_good_inputs_are_allowed() -> None:
    response = _validate({keys.MAX_DELAY: "12h", keys.ZONE: "DE", keys.MODE: "observe"})
    assert response.allowed


def test_one_message_lists_every_bad_key_its_value_and_the_accepted_form() -> None:
    response = _validate(
        {
            keys.MAX_DELAY: "2 days",
            keys.MODE: "fast",
            keys.ZONE: "DE",
            "greenlight.dev/skpi": "true",
        }
    )
    assert not response.allowed
    assert response.code == 422
    message = response.message or ""
    assert message.startswith("greenlight: 3 problems")
    for fragment in (
        f"{keys.MAX_DELAY}='2 days'",
        keys.ACCEPTED[keys.MAX_DELAY],
        f"{keys.MODE}='fast'",
        keys.ACCEPTED[keys.MODE],
        "greenlight.dev/skpi='true': not a greenlight annotation",
    ):
        assert fragment in message
    assert keys.ZONE + "=" not in message


@pytest.mark.parametrize(
    ("operation", "old", "new", "username", "allowed"),
    [
        pytest.param(
            "UPDATE",
            DEFERRED,
            {**DEFERRED, keys.RELEASE_AT: "2025-06-01T01:00:00Z"},
            "alice",
            False,
            id="user-edits-release-at",
        ),
        pytest.param(
            "UPDATE",
            DEFERRED,
            {keys.RELEASE_AT: DEFERRED[keys.RELEASE_AT]},
            "alice",
            False,
            id="user-removes-decision",
        ),
        pytest.param(
            "UPDATE", {}, {keys.DECISION: "skipped"}, "alice", False, id="user-adds-output"
        ),
        pytest.param(
            "UPDATE",
            DEFERRED,
            {**DEFERRED, keys.RELEASED_AT: "2025-06-01T03:00:00Z"},
            GREENLIGHT_USER,
            True,
            id="greenlight-releases",
        ),
        pytest.param(
            "UPDATE",
            DEFERRED,
            {**DEFERRED, "greenlight.dev/actual-emissions-g": "12.0"},
            GREENLIGHT_USER,
            True,
            id="greenlight-adds-future-key",
        ),
        pytest.param(
            "UPDATE",
            DEFERRED,
            {**DEFERRED, "team": "a"},
            "alice",
            True,
            id="user-edits-other-annotation",
        ),
        pytest.param(
            "UPDATE", DEFERRED, {**DEFERRED, keys.SKIP: "true"}, "alice", True, id="user-adds-skip"
        ),
        pytest.param("CREATE", None, DEFERRED, "alice", True, id="create-carries-mutation-output"),
    ],
)
def test_greenlight_outputs_change_only_by_greenlight(
    operation: str, old: dict[str, str] | None, new: dict[str, str], username: str, allowed: bool
) -> None:
    response = _validate(new, operation=operation, old_annotations=old, username=username)
    assert response.allowed is allowed
    if not allowed:
        assert "written by greenlight only" in (response.message or "")


def test_a_user_may_release_a_deferred_job_early() -> None:
    response = _validate(
        DEFERRED, operation="UPDATE", old_annotations=DEFERRED, suspend=False, old_suspend=True
    )
    assert response.allowed


def test_an_update_checks_only_the_keys_it_changes() -> None:
    legacy = {keys.MAX_DELAY: "2d"}  # written before the webhook was installed
    assert _validate({**legacy, "x": "y"}, operation="UPDATE", old_annotations=legacy).allowed
    response = _validate({keys.MAX_DELAY: "3d"}, operation="UPDATE", old_annotations=legacy)
    assert not response.allowed
    assert "'3d'" in (response.message or "")


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        pytest.param("DELETE", ("batch", "v1", "Job"), id="delete"),
        pytest.param("CREATE", ("batch", "v1", "CronJob"), id="not-a-job"),
    ],
)
def test_other_requests_are_allowed(operation: str, kind: tuple[str, str, str]) -> None:
    bad = job(annotations={keys.MODE: "fast"})
    value = review(bad if operation != "DELETE" else None, operation=operation, old=bad, kind=kind)
    assert validate(decode_review(body(value)), TRUSTED).allowed


def test_a_non_string_annotation_value_is_reported_not_crashed() -> None:
    obj = job()
    obj["metadata"]["annotations"] = {keys.MAX_DELAY: 5}
    response = validate(decode_review(body(review(obj))), TRUSTED)
    assert not response.allowed
    assert "not a string" in (response.message or "")


def test_an_unknown_gpu_model_is_refused_naming_the_known_ones() -> None:
    catalog = load_catalog(EnergySettings())
    unknown = decode_review(body(review(job(annotations={keys.GPU_MODEL: "Voodoo2"}))))
    response = validate(unknown, TRUSTED, catalog)
    assert not response.allowed
    assert "Voodoo2" in (response.message or "")
    assert "A100" in (response.message or "")
    known = decode_review(body(review(job(annotations={keys.GPU_MODEL: "h100-pcie"}))))
    assert validate(known, TRUSTED, catalog).allowed


def test_a_forged_release_on_a_pytorchjob_names_its_own_suspend_flag() -> None:
    old: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "ddp", "namespace": "ml", "annotations": DEFERRED},
        "spec": {},
    }
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {**DEFERRED, keys.DECISION: "run-now"}
    value = review(new, operation="UPDATE", old=old, kind=("kubeflow.org", "v1", "PyTorchJob"))
    response = validate(decode_review(body(value)), TRUSTED)
    assert not response.allowed
    assert "set spec.runPolicy.suspend to false to release a deferred PyTorchJob early" in (
        response.message or ""
    )

"""Signed decisions (issue 17): the webhook signs what it decides, the reconciler and the
validating webhook accept only what greenlight signed, and a re-plan signs again."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from reviews import body, job, review
from test_mutate import NOW, _context

from webhook.admission.mutate import judge
from webhook.admission.review import AdmissionRequest, apply_patch, decode_review
from webhook.admission.validate import validate
from webhook.core import annotations as keys
from webhook.core.provenance import KeyFileError, SigningKeys, load_keys

KEY = b"k" * 32
OLD_KEY = b"o" * 32
SIGNER = SigningKeys((KEY,))


def _signed_metadata(name: str = "train", **annotations: str) -> dict[str, Any]:
    plan = {
        keys.DECISION: "deferred",
        keys.RELEASE_AT: "2025-06-02T18:00:00Z",
        keys.ADMISSION_UID: "req-1",
        **annotations,
    }
    plan[keys.SIGNATURE] = SIGNER.sign("ml", name, "", plan)
    return {"namespace": "ml", "name": name, "annotations": plan}


def test_a_signed_decision_verifies() -> None:
    assert SIGNER.problem(_signed_metadata()) is None


@pytest.mark.parametrize(
    "edit",
    [
        {keys.RELEASE_AT: "2025-06-02T13:00:00Z"},  # changed
        {keys.RELEASE_BY: "2025-06-03T00:00:00Z"},  # added
        {keys.ADMISSION_UID: "req-2"},  # another request's decision
        {keys.REPLAN_COUNT: "1"},  # reconciler keys are signed too
    ],
    ids=["changed", "added", "admission-uid", "replan-count"],
)
def test_any_change_to_a_signed_annotation_breaks_the_signature(edit: dict[str, str]) -> None:
    metadata = _signed_metadata()
    metadata["annotations"].update(edit)
    assert SIGNER.problem(metadata) == (
        f"{keys.SIGNATURE} does not match the Job's greenlight annotations"
    )


def test_removing_a_signed_annotation_breaks_the_signature() -> None:
    metadata = _signed_metadata()
    del metadata["annotations"][keys.RELEASE_AT]
    assert SIGNER.problem(metadata) is not None


def test_the_signature_binds_the_namespace_and_name() -> None:
    assert SIGNER.problem({**_signed_metadata(), "namespace": "other"}) is not None
    assert SIGNER.problem({**_signed_metadata(), "name": "copy"}) is not None


def test_annotations_outside_the_signed_set_do_not_matter() -> None:
    metadata = _signed_metadata()
    metadata["annotations"].update({"team": "ml", keys.RELEASED_AT: "2025-06-02T18:00:00Z"})
    assert SIGNER.problem(metadata) is None


def test_a_decision_signed_with_another_key_does_not_verify() -> None:
    assert SigningKeys((b"x" * 32,)).problem(_signed_metadata()) is not None


def test_rotation_the_first_key_signs_and_every_key_verifies() -> None:
    old = SigningKeys((OLD_KEY,))
    plan = {keys.DECISION: "deferred", keys.ADMISSION_UID: "req-1"}
    plan[keys.SIGNATURE] = old.sign("ml", "train", "", plan)
    rotated = SigningKeys((KEY, OLD_KEY))
    assert rotated.problem({"namespace": "ml", "name": "train", "annotations": plan}) is None
    assert rotated.sign("ml", "train", "", plan) == SIGNER.sign("ml", "train", "", plan)


def test_a_job_named_by_generate_name_verifies_against_its_prefix() -> None:
    plan = {keys.DECISION: "deferred", keys.ADMISSION_UID: "req-1"}
    plan[keys.SIGNATURE] = SIGNER.sign("ml", "", "train-", plan)
    metadata = {"namespace": "ml", "name": "train-x7k2p", "generateName": "train-"}
    assert SIGNER.problem({**metadata, "annotations": plan}) is None
    assert SIGNER.problem({**metadata, "name": "other-x7k2p", "annotations": plan}) is not None


@pytest.mark.parametrize(
    ("annotations", "problem"),
    [
        ({keys.DECISION: "deferred"}, f"no {keys.SIGNATURE} annotation"),
        ({keys.DECISION: "deferred", keys.SIGNATURE: 7}, "is not a signature"),
        ({keys.DECISION: "deferred", keys.SIGNATURE: "v1:ü"}, "is not a signature"),
        ({keys.DECISION: 1, keys.SIGNATURE: "v1:00"}, "is not a string"),
        ({keys.DECISION: "deferred", keys.SIGNATURE: "v1:00"}, f"no {keys.ADMISSION_UID}"),
    ],
)
def test_a_missing_or_malformed_signature_says_what_is_wrong(
    annotations: dict[str, Any], problem: str
) -> None:
    found = SIGNER.problem({"namespace": "ml", "name": "train", "annotations": annotations})
    assert found is not None
    assert problem in found


def test_keys_load_one_a_line_and_a_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"\n  {KEY.decode()}  \n{OLD_KEY.decode()}\n")
    assert load_keys(path).keys == (KEY, OLD_KEY)
    path.write_text("\n\n")
    with pytest.raises(KeyFileError, match="no signing key"):
        load_keys(path)
    path.write_text("short\n")
    with pytest.raises(KeyFileError, match="shorter than 32 bytes"):
        load_keys(path)
    with pytest.raises(KeyFileError, match="missing"):
        load_keys(tmp_path / "missing")


# --- The webhook signs; the validating webhook checks -----------------------------------------


def _request(obj: dict[str, Any], **kwargs: Any) -> AdmissionRequest:
    return decode_review(body(review(obj, **kwargs)))


def _signing_context() -> Any:
    return dataclasses.replace(_context(), signing_keys=SIGNER)


def _mutated(obj: dict[str, Any], uid: str = "req-1") -> tuple[AdmissionRequest, dict[str, Any]]:
    request = _request(obj, uid=uid)
    response = judge(request, _signing_context(), NOW).response
    return request, apply_patch(request.object, response.patch)


def test_the_webhook_signs_its_decision_over_the_admission_uid() -> None:
    _, stored = _mutated(job())
    annotations = stored["metadata"]["annotations"]
    assert annotations[keys.DECISION] == "deferred"
    assert annotations[keys.ADMISSION_UID] == "req-1"
    assert SIGNER.problem(stored["metadata"]) is None


def test_output_keys_a_user_set_are_dropped_not_signed() -> None:
    _, stored = _mutated(job(annotations={keys.RELEASE_REASON: "window", keys.SAVINGS_G: "9e9"}))
    annotations = stored["metadata"]["annotations"]
    assert keys.RELEASE_REASON not in annotations
    assert annotations[keys.SAVINGS_G] != "9e9"
    assert SIGNER.problem(stored["metadata"]) is None


def test_a_job_with_generate_name_is_signed_over_its_prefix() -> None:
    obj = job()
    obj["metadata"] = {"generateName": "train-", "namespace": "ml"}
    _, stored = _mutated(obj)
    stored["metadata"]["name"] = "train-abcde"  # the apiserver names it after admission
    assert SIGNER.problem(stored["metadata"]) is None


def test_the_validating_webhook_passes_what_the_mutating_webhook_signed() -> None:
    _, stored = _mutated(job())
    answer = validate(_request(stored), frozenset(), None, SIGNER)
    assert answer.allowed, answer.message


def test_the_validating_webhook_refuses_a_forged_decision_naming_each_annotation() -> None:
    forged = job(
        annotations={keys.DECISION: "deferred", keys.ADMITTED_AT: "9999-12-31T23:59:59-14:00"}
    )
    answer = validate(_request(forged), frozenset(), None, SIGNER)
    assert not answer.allowed
    assert answer.message is not None
    assert f"{keys.ADMITTED_AT}: written by greenlight only, and not signed by it" in (
        answer.message
    )
    assert f"{keys.DECISION}: written by greenlight only" in answer.message
    assert f"no {keys.SIGNATURE} annotation" in answer.message


def test_a_signature_copied_to_another_job_is_refused() -> None:
    _, stored = _mutated(job("train"))
    copy = job("copy", annotations=stored["metadata"]["annotations"])
    assert not validate(_request(copy), frozenset(), None, SIGNER).allowed


def test_without_signing_keys_validation_is_as_before() -> None:
    forged = job(annotations={keys.DECISION: "deferred"})
    assert validate(_request(forged), frozenset(), None, None).allowed

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reviews import body, job, review

from webhook.admission.review import (
    MAX_BODY_BYTES,
    AdmissionResponse,
    MalformedReviewError,
    apply_patch,
    decode_review,
    diff_patch,
    encode_response,
)
from webhook.workloads.job import JOB


def _with(change: dict[str, Any], request_change: dict[str, Any] | None = None) -> bytes:
    value = review(job())
    value["request"].update(request_change or {})
    value.update(change)
    return body(value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"{not json", "not JSON", id="not-json"),
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"[1, 2]", "JSON object", id="array"),
        pytest.param(_with({"apiVersion": "admission.k8s.io/v1beta1"}), "apiVersion", id="v1beta1"),
        pytest.param(_with({"kind": "TokenReview"}), "kind", id="wrong-kind"),
        pytest.param(_with({"request": None}), "no request", id="no-request"),
        pytest.param(_with({}, {"uid": ""}), "no uid", id="empty-uid"),
        pytest.param(_with({}, {"uid": 7}), "no uid", id="uid-not-string"),
        pytest.param(_with({}, {"operation": None}), "no operation", id="no-operation"),
        pytest.param(_with({}, {"object": None}), "no object", id="no-object"),
        pytest.param(_with({}, {"object": "job"}), "no object", id="object-not-mapping"),
        pytest.param(_with({}, {"oldObject": 3}), "oldObject", id="old-object-not-mapping"),
        pytest.param(b" " * (MAX_BODY_BYTES + 1), "over the", id="over-3-mib"),
    ],
)
def test_malformed_reviews_are_refused_with_a_precise_message(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedReviewError, match=message):
        decode_review(raw)


def test_a_review_decodes_to_the_fields_greenlight_uses() -> None:
    request = decode_review(body(review(job("etl", "data"), dry_run=True, username="bob")))
    assert request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert request.workload is JOB
    assert (request.operation, request.namespace, request.name) == ("CREATE", "data", "etl")
    assert request.dry_run is True
    assert request.username == "bob"
    assert request.object["metadata"]["name"] == "etl"
    assert request.old_object is None


def test_a_delete_without_object_is_well_formed() -> None:
    request = decode_review(body(review(None, operation="DELETE", old=job())))
    assert request.object == {}
    assert request.old_object is not None


def test_a_generate_name_job_is_named_by_its_prefix() -> None:
    obj = job()
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "train-"
    value = review(obj)
    value["request"]["name"] = ""
    assert decode_review(body(value)).name == "train-"


@pytest.mark.parametrize(
    ("kind", "sub_resource", "expected"),
    [
        pytest.param(("batch", "v1", "Job"), "", "Job", id="job"),
        pytest.param(("batch", "v1", "Job"), "status", None, id="job-status"),
        pytest.param(("batch", "v1", "CronJob"), "", None, id="cronjob"),
        pytest.param(("", "v1", "Pod"), "", None, id="pod"),
        pytest.param(("jobset.x-k8s.io", "v1alpha2", "JobSet"), "", "JobSet", id="jobset"),
        pytest.param(("jobset.x-k8s.io", "v1alpha1", "JobSet"), "", None, id="jobset-v1alpha1"),
        pytest.param(("kubeflow.org", "v1", "PyTorchJob"), "", "PyTorchJob", id="pytorchjob"),
        pytest.param(("ray.io", "v1", "RayJob"), "", "RayJob", id="rayjob"),
        pytest.param(("ray.io", "v1", "RayCluster"), "", None, id="raycluster"),
    ],
)
def test_the_request_names_the_workload_kind_greenlight_reads(
    kind: tuple[str, str, str], sub_resource: str, expected: str | None
) -> None:
    value = review(job(), kind=kind)
    value["request"]["subResource"] = sub_resource
    workload = decode_review(body(value)).workload
    assert (workload.gvk.kind if workload is not None else None) == expected


def test_a_response_carries_uid_allowed_and_a_base64_json_patch() -> None:
    ops = [{"op": "add", "path": "/spec/suspend", "value": True}]
    encoded = orjson.loads(encode_response(AdmissionResponse(uid="u1", allowed=True, patch=ops)))
    assert encoded["apiVersion"] == "admission.k8s.io/v1"
    assert encoded["kind"] == "AdmissionReview"
    response = encoded["response"]
    assert (response["uid"], response["allowed"], response["patchType"]) == (
        "u1",
        True,
        "JSONPatch",
    )
    assert orjson.loads(base64.b64decode(response["patch"])) == ops
    assert "status" not in response


def test_a_denial_carries_code_and_message_and_no_patch() -> None:
    encoded = orjson.loads(
        encode_response(AdmissionResponse(uid="u2", allowed=False, code=422, message="bad"))
    )
    assert encoded["response"] == {
        "uid": "u2",
        "allowed": False,
        "status": {"code": 422, "message": "bad"},
    }


def test_an_equal_diff_is_no_patch() -> None:
    obj = job()
    assert diff_patch(obj, job()) == []
    assert (
        "patch"
        not in orjson.loads(encode_response(AdmissionResponse("u", True, patch=[])))["response"]
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            {"metadata": {}, "spec": {}},
            {
                "metadata": {"annotations": {"greenlight.dev/decision": "deferred"}},
                "spec": {"suspend": True},
            },
            id="add-annotations-map-and-suspend",
        ),
        pytest.param(
            {"metadata": {"annotations": {"a": "1"}}, "spec": {"suspend": False}},
            {
                "metadata": {"annotations": {"a": "1", "greenlight.dev/x": "2"}},
                "spec": {"suspend": True},
            },
            id="slash-in-key-and-replace",
        ),
    ],
)
def test_a_patch_from_a_diff_turns_before_into_after(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    ops = diff_patch(before, after)
    assert ops
    assert apply_patch(before, ops) == after


# No integers beside booleans: Python's True == 1 would blur what 'equal' means here.
_json_leaf = st.none() | st.booleans() | st.text(max_size=5)
_json = st.recursive(
    _json_leaf,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet="ab/~c", max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@given(
    before=st.dictionaries(st.text(alphabet="ab/~c", max_size=3), _json, max_size=4),
    after=st.dictionaries(st.text(alphabet="ab/~c", max_size=3), _json, max_size=4),
)
def test_any_diff_applied_by_jsonpatch_gives_the_after_document(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    ops = diff_patch(before, after)
    assert apply_patch(before, ops) == after
    assert (ops == []) == (before == after)

"""release-all's writes (pure parts), for a Job and for custom workload kinds (a JobSet holds
its flag at spec.suspend, a PyTorchJob at spec.runPolicy.suspend); the sweep itself runs on the
real apiserver in tests/e2e/test_chart_on_apiserver.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from webhook.cli.release_all import held, release_event, release_patch
from webhook.core.provenance import SigningKeys
from webhook.workloads.base import Workload
from webhook.workloads.jobset import JOBSET
from webhook.workloads.kubeflow import PYTORCHJOB
from webhook.workloads.ownership import greenlight_owns

NOW = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)


def deferred_job(name: str = "train", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": "0123456789abcdef",
            "resourceVersion": "42",
            "annotations": {"greenlight.dev/decision": "deferred"},
            **metadata,
        },
        "spec": {"suspend": True},
    }


def apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = dict(target)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge_patch(result[key], value)
        else:
            result[key] = value
    return result


def test_release_patch_resumes_records_and_is_guarded_by_the_version_read() -> None:
    job = deferred_job()
    patch = release_patch(job, "uninstall", NOW)
    assert patch == {
        "metadata": {
            "resourceVersion": "42",
            "annotations": {
                "greenlight.dev/released-at": "2026-11-26T04:00:00Z",
                "greenlight.dev/release-reason": "uninstall",
            },
        },
        "spec": {"suspend": False},
    }
    assert greenlight_owns(job)
    assert not greenlight_owns(apply_merge_patch(job, patch))


@pytest.mark.parametrize("name", ["train", "x" * 253], ids=["short", "longest-name"])
def test_release_event_is_named_once_per_job_and_fits_the_name_limit(name: str) -> None:
    event = release_event(deferred_job(name), "uninstall", NOW)
    assert event["metadata"]["name"].endswith(".greenlight-released-01234567")
    assert len(event["metadata"]["name"]) <= 253
    assert event["involvedObject"] == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "namespace": "ml",
        "uid": "0123456789abcdef",
    }
    assert event["reason"] == "Released"
    assert "reason uninstall" in event["message"]


def test_with_signing_keys_only_a_signed_decision_is_held_and_released() -> None:
    signer = SigningKeys((b"u" * 32,))
    genuine = deferred_job()
    annotations = genuine["metadata"]["annotations"]
    annotations["greenlight.dev/admission-uid"] = "req-1"
    annotations["greenlight.dev/signature"] = signer.signed(genuine["metadata"], annotations)
    forged = deferred_job("forged")
    assert held(genuine, signer)
    assert not held(forged, signer)
    assert held(forged, None)  # no keys configured: as before, every owned Job
    assert not held(deferred_job(annotations={}), None)


def deferred_custom(workload: Workload, name: str = "train") -> dict[str, Any]:
    """A deferred ``workload`` object, suspended at its kind's suspend path."""
    obj = deferred_job(name)
    del obj["spec"]
    node = obj
    for key in workload.suspend_path[:-1]:
        node = node.setdefault(key, {})
    node[workload.suspend_path[-1]] = True
    obj["apiVersion"] = workload.gvk.api_version
    obj["kind"] = workload.gvk.kind
    return obj


@pytest.mark.parametrize(
    ("workload", "suspend"),
    [
        pytest.param(JOBSET, {"spec": {"suspend": False}}, id="JobSet"),
        pytest.param(PYTORCHJOB, {"spec": {"runPolicy": {"suspend": False}}}, id="PyTorchJob"),
    ],
)
def test_a_custom_workload_is_resumed_at_its_kinds_suspend_path(
    workload: Workload, suspend: dict[str, Any]
) -> None:
    obj = deferred_custom(workload)
    assert held(obj, None, workload)
    if workload is PYTORCHJOB:  # read as a Job it has no spec.suspend: its kind must be named
        assert not held(obj, None)
    patch = release_patch(obj, "uninstall", NOW, workload)
    assert patch == {
        "metadata": {
            "resourceVersion": "42",
            "annotations": {
                "greenlight.dev/released-at": "2026-11-26T04:00:00Z",
                "greenlight.dev/release-reason": "uninstall",
            },
        },
        **suspend,
    }
    assert not greenlight_owns(apply_merge_patch(obj, patch), workload)


@pytest.mark.parametrize("workload", [JOBSET, PYTORCHJOB], ids=["JobSet", "PyTorchJob"])
def test_the_released_event_names_the_workloads_kind(workload: Workload) -> None:
    event = release_event(deferred_custom(workload), "uninstall", NOW, workload)
    assert event["involvedObject"] == {
        "apiVersion": workload.gvk.api_version,
        "kind": workload.gvk.kind,
        "name": "train",
        "namespace": "ml",
        "uid": "0123456789abcdef",
    }
    assert event["metadata"]["name"] == "train.greenlight-released-01234567"


def test_a_signed_jobset_is_held_and_a_forged_one_is_not() -> None:
    signer = SigningKeys((b"u" * 32,))
    genuine = deferred_custom(JOBSET)
    annotations = genuine["metadata"]["annotations"]
    annotations["greenlight.dev/admission-uid"] = "req-1"
    annotations["greenlight.dev/signature"] = signer.signed(genuine["metadata"], annotations)
    assert held(genuine, signer, JOBSET)
    assert not held(deferred_custom(JOBSET, "forged"), signer, JOBSET)

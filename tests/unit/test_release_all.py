"""release-all's writes (pure parts); the sweep itself runs on the real apiserver in
tests/e2e/test_chart_on_apiserver.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from webhook.cli.release_all import held, release_event, release_patch
from webhook.core.provenance import SigningKeys
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

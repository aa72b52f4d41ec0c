"""Small builders for Jobs and AdmissionReviews used by the webhook tests."""

from __future__ import annotations

import copy
from typing import Any

import orjson

GREENLIGHT_USER = "system:serviceaccount:greenlight:greenlight"


def job(
    name: str = "train",
    namespace: str = "ml",
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    suspend: bool | None = None,
    gpus: int = 1,
    gpu_product: str | None = "NVIDIA-H100-80GB-HBM3",
    parallelism: int | None = None,
    owner_kind: str | None = None,
) -> dict[str, Any]:
    """A realistic batch/v1 Job as the apiserver sends it to a webhook."""
    container: dict[str, Any] = {
        "name": "main",
        "image": "registry.example/train:1.2",
        "command": ["python", "train.py", "--epochs", "3"],
        "resources": {
            "requests": {"cpu": "8", "memory": "64Gi"},
            "limits": {"memory": "64Gi"},
        },
    }
    if gpus:
        container["resources"]["requests"]["nvidia.com/gpu"] = str(gpus)
        container["resources"]["limits"]["nvidia.com/gpu"] = str(gpus)
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if gpu_product:
        pod_spec["nodeSelector"] = {"nvidia.com/gpu.product": gpu_product}
    spec: dict[str, Any] = {
        "backoffLimit": 2,
        "completions": 1,
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    }
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if suspend is not None:
        spec["suspend"] = suspend
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if labels is not None:
        metadata["labels"] = dict(labels)
    if owner_kind is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": owner_kind,
                "name": f"{name}-owner",
                "uid": "0b7c5c7e-0000-4000-8000-000000000001",
                "controller": True,
            }
        ]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    username: str = "alice",
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    kind: tuple[str, str, str] = ("batch", "v1", "Job"),
) -> dict[str, Any]:
    """An AdmissionReview v1 request for ``obj``."""
    metadata = (obj or old or {}).get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": kind[0], "version": kind[1], "kind": kind[2]},
            "resource": {"group": "batch", "version": "v1", "resource": "jobs"},
            "requestKind": {"group": kind[0], "version": kind[1], "kind": kind[2]},
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": username, "groups": ["system:authenticated"]},
            "object": copy.deepcopy(obj),
            "oldObject": copy.deepcopy(old),
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def body(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)

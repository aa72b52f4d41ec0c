"""PyTorchJob (Kubeflow training operator v1.8.1 CRDs) and RayJob (KubeRay v1.5.0 CRDs) judged and
released through their own suspend flags, on the real apiserver with the upstream CRDs (their
OpenAPI schemas check every patch greenlight sends). The operators themselves are not run here:
kwok completes only Job-owned pods, and both need their webhook certs on fixed paths
(docs/dev/controllers.md); what greenlight owns — the decision, the flag, the release — is
all in the API.

Zone E2E-TRAIN is replayed like the JobSet suite's: dirty except for one minute about 90 s on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_kueue import clean_minute_cluster, when
from test_reconciler import Cluster

from webhook.core import annotations as keys
from webhook.devtools.controllers import install_crds
from webhook.devtools.localcluster import LocalControlPlane, wait_until

ZONE = "E2E-TRAIN"
INPUTS = {keys.MAX_DELAY: "10m", keys.EXPECTED_DURATION: "30s", keys.ZONE: ZONE}


@pytest.fixture(scope="module")
def training_crds(workloads_plane: LocalControlPlane) -> None:
    install_crds(workloads_plane, "training-operator")
    install_crds(workloads_plane, "kuberay")


@pytest.fixture
def cluster(
    workloads_plane: LocalControlPlane,
    kube_api: client.ApiClient,
    tmp_path: Path,
    training_crds: None,
) -> Iterator[Cluster]:
    with clean_minute_cluster(workloads_plane, kube_api, tmp_path, ZONE) as state:
        yield state


def _pod(gpus: int) -> dict[str, Any]:
    resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {}}
    if gpus:
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
        resources["limits"]["nvidia.com/gpu"] = str(gpus)
    return {
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
            "containers": [
                {"name": "pytorch", "image": "registry.example/ddp:1", "resources": resources}
            ],
        }
    }


def pytorchjob(name: str) -> dict[str, Any]:
    """A Master and two Workers of one GPU each."""
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "annotations": INPUTS},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "Never", "template": _pod(1)},
                "Worker": {"replicas": 2, "restartPolicy": "Never", "template": _pod(1)},
            },
        },
    }


def rayjob(name: str) -> dict[str, Any]:
    """A head without GPUs and a worker group of two one-GPU pods."""

    def ray_pod(gpus: int) -> dict[str, Any]:
        pod = _pod(gpus)
        pod["spec"]["containers"][0]["name"] = "ray"
        return pod

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "annotations": INPUTS},
        "spec": {
            "entrypoint": "python tune.py",
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": ray_pod(0)},
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": 2,
                        "minReplicas": 2,
                        "maxReplicas": 2,
                        "rayStartParams": {},
                        "template": ray_pod(1),
                    }
                ],
            },
        },
    }


KINDS = {
    "PyTorchJob": (
        "kubeflow.org",
        "v1",
        "pytorchjobs",
        pytorchjob,
        ("spec", "runPolicy", "suspend"),
    ),
    "RayJob": ("ray.io", "v1", "rayjobs", rayjob, ("spec", "suspend")),
}


def _flag(obj: dict[str, Any], path: tuple[str, ...]) -> object:
    node: Any = obj
    for key in path:
        node = (node or {}).get(key)
    return node


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_training_gang_is_held_by_its_own_suspend_flag_and_released_at_its_window(
    kind: str,
    cluster: Cluster,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    group, version, plural, build, flag = KINDS[kind]
    custom = client.CustomObjectsApi(cluster.api)
    namespace = make_namespace()
    cluster.webhook(register_webhook, zone=ZONE)
    reconciler = cluster.reconciler()
    custom.create_namespaced_custom_object(group, version, namespace, plural, build("gang"))

    def read() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            group, version, namespace, plural, "gang"
        )
        return obj

    planned = read()
    outputs = planned["metadata"]["annotations"]
    assert outputs[keys.DECISION] == "deferred", outputs.get(keys.REASON)
    assert _flag(planned, flag) is True
    release_at = when(outputs[keys.RELEASE_AT])
    assert float(outputs[keys.ENERGY_KWH]) > 0
    if datetime.now(UTC) < release_at:
        assert keys.RELEASED_AT not in read()["metadata"]["annotations"]

    released = wait_until(
        lambda: keys.RELEASED_AT in (found := read())["metadata"]["annotations"] and found,
        timeout_s=(release_at - datetime.now(UTC)).total_seconds() + 60,
        what=f"the {kind} to be released",
    )
    assert _flag(released, flag) is False
    annotations = released["metadata"]["annotations"]
    assert annotations[keys.RELEASE_REASON] == "window"
    assert when(annotations[keys.RELEASED_AT]) >= release_at
    events = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={released['metadata']['uid']}"
    )
    assert {"Deferred", "Released"} <= {event.reason for event in events.items}
    assert {event.involved_object.kind for event in events.items} == {kind}
    assert reconciler.metric("greenlight_releases_total", reason="window") == 1.0

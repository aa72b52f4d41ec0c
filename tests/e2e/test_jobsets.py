"""Gangs as they really run: a JobSet judged and released as one, with the real JobSet controller
(v0.10.1) creating its child Jobs and kwok running their pods.

Zone E2E-GANG is replayed with 30-second steps: dirty (500 g/kWh) except for one minute that
starts about 90 seconds after the test writes the file, so the webhook defers each JobSet to
that minute and the reconciler releases it there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_kueue import clean_minute_cluster, when
from test_reconciler import Cluster

from webhook.core import annotations as keys
from webhook.devtools.localcluster import LocalControlPlane, wait_until

GROUP, VERSION, PLURAL = "jobset.x-k8s.io", "v1alpha2", "jobsets"
ZONE = "E2E-GANG"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"


@pytest.fixture
def cluster(
    workloads_plane: LocalControlPlane,
    kube_api: client.ApiClient,
    tmp_path: Path,
    jobsets: None,
) -> Iterator[Cluster]:
    with clean_minute_cluster(workloads_plane, kube_api, tmp_path, ZONE) as state:
        yield state


def jobset(
    name: str, *replicated: tuple[str, int], suspend: bool | None = None, **annotations: str
) -> dict[str, Any]:
    """A JobSet of ``(name, replicas)`` replicated Jobs, each of one pod with one GPU."""
    pod = {
        "restartPolicy": "Never",
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        "containers": [
            {
                "name": "main",
                "image": "registry.example/train:1",
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                    "limits": {"nvidia.com/gpu": "1"},
                },
            }
        ],
    }
    spec: dict[str, Any] = {
        "replicatedJobs": [
            {
                "name": job,
                "replicas": replicas,
                "template": {
                    "spec": {
                        "parallelism": 1,
                        "completions": 1,
                        "backoffLimit": 0,
                        "template": {"spec": pod},
                    }
                },
            }
            for job, replicas in replicated
        ]
    }
    if suspend is not None:
        spec["suspend"] = suspend
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JobSet",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }


def get_jobset(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def children(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    listed = client.BatchV1Api(api).list_namespaced_job(
        namespace, label_selector=f"{JOBSET_LABEL}={name}"
    )
    return list(listed.items)


def pods_of(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    listed = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{JOBSET_LABEL}={name}"
    )
    return list(listed.items)


def completed(obj: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Completed" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def outputs(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


GANG_ANNOTATIONS = {keys.MAX_DELAY: "10m", keys.EXPECTED_DURATION: "30s", keys.ZONE: ZONE}


def test_a_jobset_is_deferred_as_one_gang_and_all_of_it_starts_at_the_window(
    cluster: Cluster,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    api = cluster.api
    custom = client.CustomObjectsApi(api)
    namespace = make_namespace()
    cluster.webhook(register_webhook, zone=ZONE)
    reconciler = cluster.reconciler()

    # Two replicated Jobs, 1 + 3 replicas: four child Jobs of one GPU pod each; beside it the
    # same gang of one, to compare the energy with, and one its user suspended.
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL,
        jobset("gang", ("leader", 1), ("workers", 3), **GANG_ANNOTATIONS),
    )  # fmt: skip
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, jobset("solo", ("leader", 1), **GANG_ANNOTATIONS)
    )  # fmt: skip
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL,
        jobset("mine", ("leader", 1), suspend=True, **GANG_ANNOTATIONS),
    )  # fmt: skip

    gang = get_jobset(api, namespace, "gang")
    planned = outputs(gang)
    assert planned[keys.DECISION] == "deferred", planned.get(keys.REASON)
    assert gang["spec"]["suspend"] is True
    release_at = when(planned[keys.RELEASE_AT])
    solo = outputs(get_jobset(api, namespace, "solo"))
    assert solo[keys.RELEASE_AT] == planned[keys.RELEASE_AT]  # one window for both gangs
    assert float(planned[keys.ENERGY_KWH]) == pytest.approx(
        4 * float(solo[keys.ENERGY_KWH]), rel=0.01
    )  # annotations are rounded
    mine = get_jobset(api, namespace, "mine")
    assert outputs(mine)[keys.REASON_CODE] == "user-suspended"

    # Until the window: the JobSet controller creates the four child Jobs suspended, greenlight
    # leaves them to their JobSet, and no pod exists.
    jobs = wait_until(
        lambda: len(found := children(api, namespace, "gang")) == 4 and found,
        timeout_s=60,
        what="the JobSet controller to create the four child Jobs",
    )
    for job in jobs:
        assert job.spec.suspend is True
        assert (job.metadata.annotations or {}).get(keys.REASON_CODE) == "owned-by-workload"
    status = subprocess.run(
        [
            sys.executable, "-m", "webhook", "status", "--namespace", namespace,
            "--output", "json", "--kubeconfig", str(cluster.plane.kubeconfig),
        ],
        capture_output=True, text=True, check=True, env=cluster.environ(),
    )  # fmt: skip
    waiting = {(row["kind"], row["name"]) for row in json.loads(status.stdout)["jobs"]}
    if datetime.now(UTC) < release_at:
        assert {("JobSet", "gang"), ("JobSet", "solo")} <= waiting
    assert ("JobSet", "mine") not in waiting  # its user's suspension, not greenlight's
    while datetime.now(UTC) < release_at.replace(microsecond=0):
        assert pods_of(api, namespace, "gang") == [], "a child pod exists before the window"
        assert all(job.spec.suspend for job in children(api, namespace, "gang"))
        time.sleep(2)

    # At the window: the JobSet is released, and every child starts.
    released = wait_until(
        lambda: keys.RELEASED_AT in outputs(found := get_jobset(api, namespace, "gang")) and found,
        timeout_s=60,
        what="the gang to be released",
    )
    assert released["spec"]["suspend"] is False
    assert outputs(released)[keys.RELEASE_REASON] == "window"
    assert when(outputs(released)[keys.RELEASED_AT]) >= release_at
    wait_until(
        lambda: len(pods_of(api, namespace, "gang")) == 4,
        timeout_s=60,
        what="a pod for each of the four child Jobs",
    )
    accounted = wait_until(
        lambda: (
            keys.ACTUAL_EMISSIONS_G in outputs(found := get_jobset(api, namespace, "gang"))
            and found
        ),
        timeout_s=120,
        what="the gang to complete and be accounted",
    )
    assert completed(accounted)
    # Accounted at the clean minute's intensity, for the whole gang's energy.
    assert float(outputs(accounted)[keys.ACTUAL_INTENSITY]) < 500.0
    assert float(outputs(accounted)[keys.ACTUAL_SAVINGS_G]) > 0

    # The user's own suspended JobSet is never released by greenlight.
    assert get_jobset(api, namespace, "mine")["spec"]["suspend"] is True
    assert keys.RELEASED_AT not in outputs(get_jobset(api, namespace, "mine"))
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={gang['metadata']['uid']}"
    )
    assert {"Deferred", "Released", "Completed"} <= {event.reason for event in events.items}
    assert {event.involved_object.kind for event in events.items} == {"JobSet"}
    assert reconciler.metric("greenlight_releases_total", reason="window") == 2.0


def test_outside_an_opted_in_namespace_a_jobset_and_its_children_are_never_touched(
    cluster: Cluster,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    api = cluster.api
    namespace = make_namespace(opted_in=False)
    cluster.webhook(register_webhook, zone=ZONE)
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, jobset("plain", ("workers", 2), **GANG_ANNOTATIONS)
    )
    done = wait_until(
        lambda: completed(found := get_jobset(api, namespace, "plain")) and found,
        timeout_s=120,
        what="the JobSet to run at once and complete",
    )
    assert not any(
        key.startswith(keys.PREFIX) and key not in GANG_ANNOTATIONS for key in outputs(done)
    )
    for job in children(api, namespace, "plain"):
        assert keys.DECISION not in (job.metadata.annotations or {})

"""greenlight as a Kueue AdmissionCheck, with the real Kueue manager and kwok running the pods.

A Job queued through Kueue (label ``kueue.x-k8s.io/queue-name``) on a ClusterQueue whose
admission checks include ``greenlight-carbon`` (controllerName ``greenlight.dev/carbon``): Kueue
suspends it, makes its Workload and reserves quota; ``greenlight reconcile`` (with
``GREENLIGHT_KUEUE__ADMISSION_CHECK_ENABLED``) keeps the check Pending until the window it
planned, then Ready, and only then does Kueue admit the Workload and resume the Job. With no
forecast at all, the check turns Ready at the Workload's latest start.

Zone E2E-KUEUE is replayed with 30-second steps: dirty (500 g/kWh) except for one minute that
starts about 90 seconds after the test writes the file.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_reconciler import CSV_HEADER, MONDAY_OFFSET_S, WEEK_S, Cluster, replay_files

from webhook.core import annotations as keys
from webhook.devtools.controllers import kueue_manager
from webhook.devtools.localcluster import LocalControlPlane, wait_until

GROUP, VERSION = "kueue.x-k8s.io", "v1beta2"
ZONE = "E2E-KUEUE"
CHECK = "greenlight-carbon"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
STEP_S = 30


@pytest.fixture(scope="module")
def kueue(
    workloads_plane: LocalControlPlane,
    kube_api: client.ApiClient,
    tmp_path_factory: Any,
    jobsets: None,  # Kueue manages JobSets too: their CRD must be there when it starts
) -> Iterator[None]:
    with kueue_manager(workloads_plane, kube_api, tmp_path_factory.mktemp("kueue")):
        custom = client.CustomObjectsApi(kube_api)
        _apply(custom, "resourceflavors", {"metadata": {"name": "default-flavor"}})
        _apply(
            custom,
            "admissionchecks",
            {"metadata": {"name": CHECK}, "spec": {"controllerName": "greenlight.dev/carbon"}},
        )
        yield


def _apply(custom: Any, plural: str, body: dict[str, Any], namespace: str | None = None) -> None:
    kind = {
        "resourceflavors": "ResourceFlavor",
        "admissionchecks": "AdmissionCheck",
        "clusterqueues": "ClusterQueue",
        "localqueues": "LocalQueue",
    }[plural]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **body}
    try:
        if namespace:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        else:
            custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
    except client.ApiException as e:
        if e.status != 409:
            raise


def clean_minute_replay(directory: Path, zone: str = ZONE) -> tuple[str, datetime]:
    """A week of 30-second steps for ``zone``, clean for one minute from the returned time."""
    now = datetime.now(UTC).timestamp()
    window = math.ceil((now + 90) / STEP_S) * STEP_S
    window_of_week = (window - MONDAY_OFFSET_S) % WEEK_S
    start = datetime(2023, 3, 6, tzinfo=UTC)  # a Monday
    lines = [CSV_HEADER]
    for index in range(WEEK_S // STEP_S):
        moment = start + timedelta(seconds=index * STEP_S)
        of_week = (int(moment.timestamp()) - MONDAY_OFFSET_S) % WEEK_S
        value = 50.0 if (of_week - window_of_week) % WEEK_S < 60 else 500.0
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S},Testland,Testland,{zone},{value},{value},50,50,t,false,"
        )
    path = directory / f"{zone.lower()}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path), datetime.fromtimestamp(window, UTC)


@pytest.fixture
def cluster(
    workloads_plane: LocalControlPlane, kube_api: client.ApiClient, tmp_path: Path, kueue: None
) -> Iterator[Cluster]:
    with clean_minute_cluster(workloads_plane, kube_api, tmp_path, ZONE) as state:
        yield state


@contextmanager
def clean_minute_cluster(
    plane: LocalControlPlane, api: client.ApiClient, workdir: Path, zone: str
) -> Iterator[Cluster]:
    """A :class:`Cluster` whose replay has ``zone`` clean for one minute about 90 s on (see
    :func:`clean_minute_replay`); what a test starts on it is stopped afterwards."""
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "greenlight"}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    replay = replay_files(workdir)
    replay[zone], _ = clean_minute_replay(workdir, zone)
    state = Cluster(plane, api, workdir, replay)
    try:
        yield state
    finally:
        for process in reversed(state.started):
            process.stop()


def queue_for(api: client.ApiClient, namespace: str) -> str:
    """A ClusterQueue with greenlight's check and a LocalQueue ``lq`` in ``namespace``."""
    custom = client.CustomObjectsApi(api)
    name = f"cq-{uuid.uuid4().hex[:6]}"
    _apply(
        custom,
        "clusterqueues",
        {
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": "default-flavor",
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "8"},
                                    {"name": "memory", "nominalQuota": "32Gi"},
                                ],
                            }
                        ],
                    }
                ],
                "admissionChecksStrategy": {"admissionChecks": [{"name": CHECK}]},
            },
        },
    )
    _apply(
        custom,
        "localqueues",
        {"metadata": {"name": "lq", "namespace": namespace}, "spec": {"clusterQueue": name}},
        namespace,
    )
    return name


def queued_job(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: "lq"}, "annotations": annotations},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ],
                }
            },
        },
    }


def workload_of(
    api: client.ApiClient, namespace: str, job: str, kind: str = "Job"
) -> dict[str, Any] | None:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workloads"
    )
    for item in listed["items"]:
        owners = item["metadata"].get("ownerReferences") or []
        if any(o.get("kind") == kind and o.get("name") == job for o in owners):
            return dict(item)
    return None


def our_check(workload: dict[str, Any]) -> dict[str, Any] | None:
    for entry in (workload.get("status") or {}).get("admissionChecks") or []:
        if entry.get("name") == CHECK:
            return dict(entry)
    return None


def condition(workload: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in (workload.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind and entry.get("status") == "True":
            return dict(entry)
    return None


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_workload(
    api: client.ApiClient,
    namespace: str,
    job: str,
    test: Callable[[dict[str, Any]], bool],
    what: str,
    timeout_s: float,
    kind: str = "Job",
) -> dict[str, Any]:
    return wait_until(
        lambda: (w := workload_of(api, namespace, job, kind)) is not None and test(w) and w,
        timeout_s=timeout_s,
        what=f"workload of {kind} {namespace}/{job}: {what}",
        interval_s=0.5,
    )


def check_active(api: client.ApiClient) -> bool:
    obj = client.CustomObjectsApi(api).get_cluster_custom_object(
        GROUP, VERSION, "admissionchecks", CHECK
    )
    return any(
        c.get("type") == "Active" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def events_of(api: client.ApiClient, namespace: str, uid: str) -> dict[str, Any]:
    listed = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={uid}"
    )
    return {event.reason: event for event in listed.items}


KUEUE_SETTINGS = {
    "GREENLIGHT_KUEUE__ADMISSION_CHECK_ENABLED": "true",
    "GREENLIGHT_KUEUE__RECHECK_S": "2",
    "GREENLIGHT_WEBHOOK__MIN_WAIT_S": "10",
    "GREENLIGHT_WEBHOOK__ZONE": ZONE,
}


def test_a_kueue_workload_stays_unadmitted_until_its_window_then_is_admitted(
    cluster: Cluster, make_namespace: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cluster.api
    namespace = make_namespace(opted_in=False)
    queue_for(api, namespace)
    for key, value in KUEUE_SETTINGS.items():
        monkeypatch.setenv(key, value)
    reconciler = cluster.reconciler()
    wait_until(lambda: check_active(api), timeout_s=60, what="greenlight-carbon to be Active")
    cluster.batch.create_namespaced_job(
        namespace,
        queued_job(
            "train",
            **{keys.MAX_DELAY: "10m", keys.EXPECTED_DURATION: "30s", keys.ZONE: ZONE},
        ),
    )
    held = wait_workload(
        api,
        namespace,
        "train",
        lambda w: "held for a cleaner window" in ((our_check(w) or {}).get("message") or ""),
        "greenlight's check Pending with its release time",
        timeout_s=120,
    )
    seen_at = datetime.now(UTC)
    annotations = held["metadata"]["annotations"]
    release_at = when(annotations[keys.RELEASE_AT])
    state = our_check(held)
    assert state is not None
    assert state["state"] == "Pending"
    assert f"release at {annotations[keys.RELEASE_AT]}" in state["message"]
    assert "intensity now 500.0, then 50.0 gCO2/kWh" in state["message"]
    assert annotations[keys.DECISION] == "deferred"
    assert float(annotations[keys.ENERGY_KWH]) > 0
    if seen_at < release_at:  # (a very slow machine may see it only at the window)
        assert condition(held, "Admitted") is None
        assert cluster.job(namespace, "train").spec.suspend is True

    admitted = wait_workload(
        api,
        namespace,
        "train",
        lambda w: condition(w, "Admitted") is not None,
        "admitted",
        timeout_s=(release_at - datetime.now(UTC)).total_seconds() + 120,
    )
    ready = our_check(admitted)
    assert ready is not None
    assert ready["state"] == "Ready"
    assert when(ready["lastTransitionTime"]) >= release_at
    admitted_at = condition(admitted, "Admitted")
    assert admitted_at is not None
    assert when(admitted_at["lastTransitionTime"]) >= release_at
    assert admitted["metadata"]["annotations"][keys.RELEASE_REASON] == "window"
    # The server-side apply left Kueue's own status fields Kueue's: greenlight owns its entry.
    managers = {
        (entry["manager"], entry.get("subresource", ""))
        for entry in admitted["metadata"]["managedFields"]
    }
    assert ("greenlight-carbon-check", "status") in managers
    cluster.wait_job(namespace, "train", lambda job: job.spec.suspend is False, "resumed by Kueue")
    events = events_of(api, namespace, admitted["metadata"]["uid"])
    assert {"Deferred", "Released"} <= set(events)
    assert reconciler.metric("greenlight_kueue_check_ready_total", reason="window") == 1.0
    assert reconciler.metric("greenlight_kueue_check_decisions_total", decision="deferred") == 1.0

    # kwok completes the pods, Kueue finishes the Workload, greenlight accounts the run.
    accounted = wait_workload(
        api,
        namespace,
        "train",
        lambda w: keys.ACTUAL_EMISSIONS_G in (w["metadata"].get("annotations") or {}),
        "finished and accounted",
        timeout_s=120,
    )
    actual = accounted["metadata"]["annotations"]
    assert condition(accounted, "Finished") is not None
    assert float(actual[keys.ACTUAL_RUN_S]) >= 0
    assert float(actual[keys.ACTUAL_INTENSITY]) == pytest.approx(50.0)  # the clean minute
    # kwok's pods run for about a second: a saving that small rounds to 0, never below.
    assert float(actual[keys.ACTUAL_SAVINGS_G]) >= 0
    wait_until(
        lambda: "Completed" in events_of(api, namespace, accounted["metadata"]["uid"]),
        timeout_s=30,
        what="the Completed Event on the Workload",
    )
    assert reconciler.metric("greenlight_completed_deferred_jobs_total", namespace=namespace) == 1


def test_with_the_provider_down_a_kueue_workload_is_admitted_at_its_latest_start(
    cluster: Cluster, make_namespace: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cluster.api
    namespace = make_namespace(opted_in=False)
    queue_for(api, namespace)
    for key, value in KUEUE_SETTINGS.items():
        monkeypatch.setenv(key, value)
    reconciler = cluster.reconciler(provider_down=True)
    wait_until(lambda: check_active(api), timeout_s=60, what="greenlight-carbon to be Active")
    cluster.batch.create_namespaced_job(
        namespace,
        queued_job("nightly", **{keys.MAX_DELAY: "40s", keys.EXPECTED_DURATION: "30s"}),
    )
    waiting = wait_workload(
        api,
        namespace,
        "nightly",
        lambda w: "waiting for a forecast" in ((our_check(w) or {}).get("message") or ""),
        "greenlight's check Pending, waiting for a forecast",
        timeout_s=60,
    )
    release_by = when(waiting["metadata"]["annotations"][keys.RELEASE_BY])
    assert f"latest start {waiting['metadata']['annotations'][keys.RELEASE_BY]}" in (
        our_check(waiting) or {}
    ).get("message", "")
    admitted = wait_workload(
        api,
        namespace,
        "nightly",
        lambda w: condition(w, "Admitted") is not None,
        "admitted at its latest start",
        timeout_s=(release_by - datetime.now(UTC)).total_seconds() + 120,
    )
    ready = our_check(admitted)
    assert ready is not None
    assert ready["state"] == "Ready"
    ready_at = when(ready["lastTransitionTime"])
    assert release_by <= ready_at <= release_by + timedelta(seconds=10)
    assert admitted["metadata"]["annotations"][keys.RELEASE_REASON] == "deadline"
    assert reconciler.metric("greenlight_kueue_check_ready_total", reason="deadline") == 1.0


def queued_jobset(name: str, **annotations: str) -> dict[str, Any]:
    """A JobSet of two replicated Jobs (2 + 1 pods) in LocalQueue ``lq``."""
    pod = queued_job(name)["spec"]["template"]
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: "lq"}, "annotations": annotations},
        "spec": {
            "replicatedJobs": [
                {
                    "name": role,
                    "replicas": replicas,
                    "template": {"spec": {"parallelism": 1, "completions": 1, "template": pod}},
                }
                for role, replicas in (("workers", 2), ("driver", 1))
            ]
        },
    }


def test_a_kueue_jobset_is_held_as_one_workload_until_its_window(
    cluster: Cluster, make_namespace: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cluster.api
    custom = client.CustomObjectsApi(api)
    namespace = make_namespace(opted_in=False)
    queue_for(api, namespace)
    for key, value in KUEUE_SETTINGS.items():
        monkeypatch.setenv(key, value)
    cluster.reconciler()
    wait_until(lambda: check_active(api), timeout_s=60, what="greenlight-carbon to be Active")
    inputs = {keys.MAX_DELAY: "10m", keys.EXPECTED_DURATION: "30s", keys.ZONE: ZONE}
    custom.create_namespaced_custom_object(
        "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets", queued_jobset("sweep", **inputs)
    )
    held = wait_workload(
        api,
        namespace,
        "sweep",
        lambda w: "held for a cleaner window" in ((our_check(w) or {}).get("message") or ""),
        "greenlight's check Pending with its release time",
        timeout_s=120,
        kind="JobSet",
    )
    seen_at = datetime.now(UTC)
    release_at = when(held["metadata"]["annotations"][keys.RELEASE_AT])
    # One Workload for the gang: a pod set per replicated Job, three pods in all.
    assert sorted(p["count"] for p in held["spec"]["podSets"]) == [1, 2]
    if seen_at < release_at:
        assert condition(held, "Admitted") is None
        sweep = custom.get_namespaced_custom_object(
            "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets", "sweep"
        )
        assert sweep["spec"]["suspend"] is True
    admitted = wait_workload(
        api,
        namespace,
        "sweep",
        lambda w: condition(w, "Admitted") is not None,
        "admitted",
        timeout_s=(release_at - datetime.now(UTC)).total_seconds() + 120,
        kind="JobSet",
    )
    admitted_at = condition(admitted, "Admitted")
    assert admitted_at is not None
    assert when(admitted_at["lastTransitionTime"]) >= release_at
    assert admitted["metadata"]["annotations"][keys.RELEASE_REASON] == "window"
    wait_until(
        lambda: (
            custom.get_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets", "sweep"
            )["spec"]["suspend"]
            is False
        ),
        timeout_s=60,
        what="Kueue to resume the JobSet",
    )

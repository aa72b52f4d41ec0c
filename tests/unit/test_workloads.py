"""The workload kinds: the resources of the whole gang, the suspend path, and the rule that a
known kind's children are never judged on their own."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from webhook.admission.classify import never_defer
from webhook.admission.review import diff_patch
from webhook.core.annotations import Inputs
from webhook.core.resources import JobSpecError
from webhook.workloads.base import RunStatus, Workload, is_suspended, set_suspend, suspend_diff
from webhook.workloads.job import JOB
from webhook.workloads.jobset import JOBSET
from webhook.workloads.kinds import BY_KIND, WORKLOADS, workload_for, workload_parent
from webhook.workloads.kubeflow import PYTORCHJOB
from webhook.workloads.rayjob import RAYJOB
from webhook.workloads.trainjob import TRAINJOB


def pod(gpus: int = 0, cpu: str = "1", memory: str = "1Gi", product: str | None = None) -> Any:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
            }
        ]
    }
    if product:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {"spec": spec}


def jobset(*replicated: tuple[str, int, int, int]) -> dict[str, Any]:
    """(name, replicas, parallelism, gpus per pod) per replicated Job."""
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "train", "namespace": "ml"},
        "spec": {
            "replicatedJobs": [
                {
                    "name": name,
                    "replicas": replicas,
                    "template": {"spec": {"parallelism": parallelism, "template": pod(gpus)}},
                }
                for name, replicas, parallelism, gpus in replicated
            ]
        },
    }


def pytorchjob(master_gpus: int, workers: int, worker_gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "ddp", "namespace": "ml"},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "template": pod(master_gpus, product="NVIDIA-H100-80GB-HBM3"),
                },
                "Worker": {
                    "replicas": workers,
                    "template": pod(worker_gpus, product="NVIDIA-H100-80GB-HBM3"),
                },
            }
        },
    }


def rayjob(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "tune", "namespace": "ml"},
        "spec": {
            "entrypoint": "python tune.py",
            "rayClusterSpec": {
                "headGroupSpec": {"template": pod(0, cpu="2")},
                "workerGroupSpecs": groups,
            },
        },
    }


def test_a_jobset_counts_every_replica_of_every_replicated_job() -> None:
    resources = JOBSET.resources(jobset(("driver", 1, 1, 0), ("workers", 2, 2, 4)))
    assert resources.pods == 1 + 2 * 2
    assert resources.gpu_count == 2 * 2 * 4
    assert resources.cpu_cores == 5.0


def test_a_pytorchjob_counts_master_and_workers_and_names_the_gpu_model() -> None:
    resources = PYTORCHJOB.resources(pytorchjob(master_gpus=8, workers=3, worker_gpus=8))
    assert (resources.pods, resources.gpu_count) == (4, 32)
    assert resources.gpu_product == "NVIDIA-H100-80GB-HBM3"
    assert resources.gpu_product_source is not None
    assert resources.gpu_product_source.startswith("spec.pytorchReplicaSpecs.")


def test_a_rayjob_counts_the_head_and_each_worker_group_by_replicas_and_hosts() -> None:
    resources = RAYJOB.resources(
        rayjob(
            [
                {"groupName": "gpu", "replicas": 2, "numOfHosts": 2, "template": pod(4)},
                {"groupName": "cpu", "template": pod(0)},  # replicas defaults to 0
            ]
        )
    )
    assert (resources.pods, resources.gpu_count) == (1 + 4, 16)


def test_a_rayjob_on_an_existing_cluster_cannot_be_estimated() -> None:
    job = rayjob([])
    job["spec"]["clusterSelector"] = {"ray.io/cluster": "shared"}
    with pytest.raises(JobSpecError, match=r"spec\.clusterSelector"):
        RAYJOB.resources(job)


def test_a_trainjob_counts_its_nodes_and_asks_for_resources_the_runtime_would_give() -> None:
    job: dict[str, Any] = {
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 4, "resourcesPerNode": {"limits": {"nvidia.com/gpu": 8}}},
        }
    }
    resources = TRAINJOB.resources(job)
    assert (resources.pods, resources.gpu_count) == (4, 32)
    del job["spec"]["trainer"]["resourcesPerNode"]
    with pytest.raises(JobSpecError, match=r"spec\.trainer\.resourcesPerNode: missing"):
        TRAINJOB.resources(job)


@pytest.mark.parametrize(
    ("workload", "obj", "field"),
    [
        pytest.param(
            JOBSET, {"spec": {"replicatedJobs": []}}, r"spec\.replicatedJobs", id="jobset-empty"
        ),
        pytest.param(
            JOBSET,
            {"spec": {"replicatedJobs": [{"name": "w", "replicas": -1, "template": {}}]}},
            r"spec\.replicatedJobs\[0\]\.replicas",
            id="jobset-negative-replicas",
        ),
        pytest.param(
            PYTORCHJOB,
            {
                "spec": {
                    "pytorchReplicaSpecs": {"Worker": {"template": {"spec": {"containers": "x"}}}}
                }
            },
            r"spec\.pytorchReplicaSpecs\.Worker\.template\.spec\.containers",
            id="pytorch-containers-not-a-list",
        ),
        pytest.param(
            RAYJOB,
            {"spec": {"rayClusterSpec": {"headGroupSpec": {"template": pod(cpu="lots")}}}},
            r"spec\.rayClusterSpec\.headGroupSpec\.template\.spec\.containers\[0\]\.resources\.requests\[cpu\]",
            id="ray-bad-quantity",
        ),
        pytest.param(
            TRAINJOB,
            {"spec": {"trainer": {"resourcesPerNode": {"limits": {"nvidia.com/gpu": "0.5"}}}}},
            r"spec\.trainer\.resourcesPerNode: nvidia\.com/gpu must be a whole number",
            id="trainjob-fractional-gpu",
        ),
    ],
)
def test_a_malformed_workload_names_the_field(workload: Workload, obj: Any, field: str) -> None:
    with pytest.raises(JobSpecError, match=field):
        workload.resources(obj)


def test_a_kubeflow_job_is_suspended_through_its_run_policy() -> None:
    job = pytorchjob(1, 1, 1)
    assert not is_suspended(PYTORCHJOB, job)
    change = suspend_diff(PYTORCHJOB, job)
    assert change is not None
    suspended = jsonpatch.apply_patch(job, diff_patch(*change))
    assert suspended["spec"]["runPolicy"] == {"suspend": True}
    assert suspended["spec"]["pytorchReplicaSpecs"] == job["spec"]["pytorchReplicaSpecs"]
    assert is_suspended(PYTORCHJOB, suspended)
    assert suspend_diff(PYTORCHJOB, suspended) is None
    assert set_suspend(PYTORCHJOB, False) == {"spec": {"runPolicy": {"suspend": False}}}


def test_an_existing_run_policy_keeps_its_other_fields() -> None:
    job = pytorchjob(1, 1, 1)
    job["spec"]["runPolicy"] = {"cleanPodPolicy": "None", "suspend": False}
    change = suspend_diff(PYTORCHJOB, job)
    assert change is not None
    suspended = jsonpatch.apply_patch(job, diff_patch(*change))
    assert suspended["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "suspend": True}


def test_every_kind_is_registered_once_with_its_plural() -> None:
    assert len(BY_KIND) == len(WORKLOADS)
    assert workload_for(JOB.gvk) is JOB
    assert {w.plural for w in WORKLOADS} >= {
        "jobs",
        "jobsets",
        "pytorchjobs",
        "trainjobs",
        "rayjobs",
    }


def owned_job(api_version: str, kind: str, *, controller: bool = True) -> dict[str, Any]:
    owner: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "name": "parent", "uid": "u"}
    if controller:
        owner["controller"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "child", "namespace": "ml", "ownerReferences": [owner]},
        "spec": {"template": pod()},
    }


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("jobset.x-k8s.io/v1alpha2", "JobSet"),
        ("kubeflow.org/v1", "PyTorchJob"),
        ("ray.io/v1", "RayJob"),
        ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
    ],
)
def test_a_child_of_a_known_workload_is_never_judged_on_its_own(
    api_version: str, kind: str
) -> None:
    job = owned_job(api_version, kind)
    assert workload_parent(job) is not None
    skip = never_defer(job, Inputs(), Inputs())
    assert skip is not None
    assert skip.code == "owned-by-workload"
    assert kind in skip.reason


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(owned_job("apps/v1", "ReplicaSet"), id="unknown-owner"),
        pytest.param(
            owned_job("jobset.x-k8s.io/v1alpha2", "JobSet", controller=False), id="not-controller"
        ),
    ],
)
def test_other_owners_leave_the_job_to_the_usual_rules(job: dict[str, Any]) -> None:
    assert workload_parent(job) is None
    assert never_defer(job, Inputs(), Inputs()) is None


T_START, T_END = "2025-06-02T12:00:00Z", "2025-06-02T13:00:00Z"


def _condition(kind: str, status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "lastTransitionTime": T_END}


@pytest.mark.parametrize(
    ("workload", "status", "expected"),
    [
        pytest.param(
            JOB,
            {"startTime": T_START, "completionTime": T_END, "conditions": [_condition("Complete")]},
            RunStatus(T_START, T_END, "Complete"),
            id="job-complete",
        ),
        pytest.param(
            JOB,
            {"startTime": T_START, "conditions": [_condition("Failed")]},
            RunStatus(T_START, T_END, "Failed"),
            id="job-failed",
        ),
        pytest.param(JOB, {"startTime": T_START}, RunStatus(T_START), id="job-running"),
        pytest.param(
            JOBSET,
            {"conditions": [_condition("Completed")]},
            RunStatus(None, T_END, "Complete"),
            id="jobset-completed",
        ),
        pytest.param(
            JOBSET,
            {"conditions": [_condition("Completed", "False"), _condition("Suspended")]},
            RunStatus(),
            id="jobset-not-finished",
        ),
        pytest.param(
            PYTORCHJOB,
            {
                "startTime": T_START,
                "completionTime": T_END,
                "conditions": [_condition("Running", "False"), _condition("Succeeded")],
            },
            RunStatus(T_START, T_END, "Complete"),
            id="pytorchjob-succeeded",
        ),
        pytest.param(
            TRAINJOB,
            {"conditions": [_condition("Failed")]},
            RunStatus(None, T_END, "Failed"),
            id="trainjob-failed",
        ),
        pytest.param(
            RAYJOB,
            {"startTime": T_START, "endTime": T_END, "jobDeploymentStatus": "Complete"},
            RunStatus(T_START, T_END, "Complete"),
            id="rayjob-complete",
        ),
        pytest.param(
            RAYJOB,
            {"startTime": T_START, "endTime": T_END, "jobDeploymentStatus": "Running"},
            RunStatus(T_START),
            id="rayjob-running",
        ),
        pytest.param(RAYJOB, "not a status", RunStatus(), id="rayjob-malformed"),
        pytest.param(JOBSET, {"conditions": "nope"}, RunStatus(), id="jobset-malformed"),
    ],
)
def test_each_kind_reads_how_far_its_run_has_got(
    workload: Workload, status: Any, expected: RunStatus
) -> None:
    assert workload.run_status({"status": status}) == expected

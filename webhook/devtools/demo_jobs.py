"""What ``greenlight demo`` creates: the published experiment's four daily training Jobs.

The seed experiment (ResNet50 on CIFAR-100, 30 epochs, one RTX 3090, ~57 min and ~0.475 kWh a
run, CAISO grid) ran four CronJobs a day at 03:55, 10:19, 17:41 and 23:12 Los Angeles time. The
demo submits the same four Jobs at once into an opted-in namespace on the US-CAL-CISO grid and
lets greenlight judge them against the replayed grid of this hour of the week.
"""

from __future__ import annotations

from typing import Any

from webhook.core import annotations as keys
from webhook.devtools.localcluster import OPT_IN_LABEL, FakeNode
from webhook.workloads.pods import GPU_PRODUCT_LABEL, GPU_RESOURCE

NAMESPACE = "ml-training"
ZONE = "US-CAL-CISO"
RTX_3090 = "NVIDIA-GeForce-RTX-3090"
GPU_NODE = FakeNode(name="kwok-rtx3090-0", gpus=4, gpu_product=RTX_3090)
JOB_NAMES = (
    "resnet50-training-automation",
    "resnet50-training-morning",
    "resnet50-training-last-thing",
    "resnet50-training-midnight",
)


def _annotation(key: str) -> str:
    """A kubectl JSONPath to an annotation (dots in the key escaped)."""
    escaped = key.replace(".", "\\.")
    return f".metadata.annotations.{escaped}"


# `kubectl get jobs` columns showing greenlight's decision on each Job.
COLUMNS = {
    "NAME": ".metadata.name",
    "SUSPENDED": ".spec.suspend",
    "DECISION": _annotation(keys.DECISION),
    "RELEASE-AT": _annotation(keys.RELEASE_AT),
    "NOW-G/KWH": _annotation(keys.INTENSITY_NOW),
    "PLANNED-G/KWH": _annotation(keys.INTENSITY_PLANNED),
    "SAVINGS-%": _annotation(keys.SAVINGS_PCT),
    "RELEASED": _annotation(keys.RELEASE_REASON),
}


def custom_columns() -> str:
    return ",".join(f"{name}:{path}" for name, path in COLUMNS.items())


def namespace_manifest() -> dict[str, Any]:
    """The opted-in namespace; its annotations are the defaults for every Job in it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {OPT_IN_LABEL: "true"},
            "annotations": {keys.ZONE: ZONE, keys.MAX_DELAY: "24h"},
        },
    }


def training_job(name: str) -> dict[str, Any]:
    """One run of the experiment: one RTX 3090, 57 minutes, a training workload."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": "resnet50-training"},
            "annotations": {
                keys.EXPECTED_DURATION: "57m",
                keys.WORKLOAD: "training",
            },
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "resnet50-training"}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {GPU_PRODUCT_LABEL: RTX_3090},
                    "containers": [
                        {
                            "name": "train",
                            "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
                            "command": ["python", "train.py", "--model=resnet50", "--epochs=30"],
                            "resources": {
                                "requests": {"cpu": "4", "memory": "16Gi", GPU_RESOURCE: "1"},
                                "limits": {GPU_RESOURCE: "1"},
                            },
                        }
                    ],
                },
            },
        },
    }


def demo_jobs() -> list[dict[str, Any]]:
    return [training_job(name) for name in JOB_NAMES]


# --- With the workload controllers (hack/build-controllers.sh): a gang and a Kueue queue ------

JOBSET_NAME = "resnet50-ddp-sweep"
QUEUED_JOB_NAME = "resnet50-training-queued"
ADMISSION_CHECK = "greenlight-carbon"
CLUSTER_QUEUE = "ml-training"
LOCAL_QUEUE = "training"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# `kubectl get jobsets` columns: the gang's one decision.
JOBSET_COLUMNS = {
    "NAME": ".metadata.name",
    "SUSPENDED": ".spec.suspend",
    "DECISION": _annotation(keys.DECISION),
    "RELEASE-AT": _annotation(keys.RELEASE_AT),
    "ENERGY-KWH": _annotation(keys.ENERGY_KWH),
    "SAVINGS-%": _annotation(keys.SAVINGS_PCT),
}


def jobset_columns() -> str:
    return ",".join(f"{name}:{path}" for name, path in JOBSET_COLUMNS.items())


def training_jobset() -> dict[str, Any]:
    """The experiment's run as a data-parallel gang: two replicated Jobs (a leader and three
    workers) of one RTX 3090 each, judged and released as one."""
    pod = training_job(JOBSET_NAME)["spec"]["template"]
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": JOBSET_NAME,
            "namespace": NAMESPACE,
            "annotations": {keys.EXPECTED_DURATION: "57m", keys.WORKLOAD: "training"},
        },
        "spec": {
            "replicatedJobs": [
                {
                    "name": role,
                    "replicas": replicas,
                    "template": {"spec": {"backoffLimit": 0, "template": pod}},
                }
                for role, replicas in (("leader", 1), ("workers", 3))
            ]
        },
    }


def queued_training_job() -> dict[str, Any]:
    """One run of the experiment queued through Kueue: greenlight's AdmissionCheck holds it."""
    job = training_job(QUEUED_JOB_NAME)
    job["metadata"]["labels"][KUEUE_QUEUE_LABEL] = LOCAL_QUEUE
    return job


def kueue_objects() -> list[dict[str, Any]]:
    """A ResourceFlavor, greenlight's AdmissionCheck, a ClusterQueue that uses it (quota for the
    demo's GPUs) and a LocalQueue in the demo namespace."""
    api = "kueue.x-k8s.io/v1beta2"
    resources = [
        {"name": "cpu", "nominalQuota": "64"},
        {"name": "memory", "nominalQuota": "256Gi"},
        {"name": GPU_RESOURCE, "nominalQuota": str(GPU_NODE.gpus)},
    ]
    return [
        {"apiVersion": api, "kind": "ResourceFlavor", "metadata": {"name": "default-flavor"}},
        {
            "apiVersion": api,
            "kind": "AdmissionCheck",
            "metadata": {"name": ADMISSION_CHECK},
            "spec": {"controllerName": "greenlight.dev/carbon"},
        },
        {
            "apiVersion": api,
            "kind": "ClusterQueue",
            "metadata": {"name": CLUSTER_QUEUE},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": [r["name"] for r in resources],
                        "flavors": [{"name": "default-flavor", "resources": resources}],
                    }
                ],
                "admissionChecksStrategy": {"admissionChecks": [{"name": ADMISSION_CHECK}]},
            },
        },
        {
            "apiVersion": api,
            "kind": "LocalQueue",
            "metadata": {"name": LOCAL_QUEUE, "namespace": NAMESPACE},
            "spec": {"clusterQueue": CLUSTER_QUEUE},
        },
    ]

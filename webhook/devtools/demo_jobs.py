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

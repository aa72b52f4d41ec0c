"""TrainJob (``trainer.kubeflow.org/v1alpha1``, Kubeflow Trainer): held by ``spec.suspend``.

The TrainJob's own spec names its size: ``spec.trainer.numNodes`` nodes (default 1), each with
``spec.trainer.resourcesPerNode``. Those override the referenced TrainingRuntime, which the
webhook does not read (no API call on the request path): a TrainJob that leaves its resources to
the runtime cannot be estimated, and runs at once with a reason that says so. The JobSet the
Trainer controller creates from it is a child, never judged on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.resources import GangResources, JobResources, JobSpecError
from webhook.workloads.base import GroupVersionKind, RunStatus, condition_status
from webhook.workloads.pods import count, mapping, requirements_resources


class TrainJobWorkload:
    """``trainer.kubeflow.org/v1alpha1`` TrainJob."""

    gvk = GroupVersionKind("trainer.kubeflow.org", "v1alpha1", "TrainJob")
    plural = "trainjobs"
    suspend_path = ("spec", "suspend")

    def resources(self, obj: Mapping[str, Any]) -> GangResources:
        spec = mapping(mapping(obj, "trainjob").get("spec"), "spec", required=True)
        trainer = mapping(spec.get("trainer"), "spec.trainer")
        if trainer.get("resourcesPerNode") is None:
            raise JobSpecError(
                "spec.trainer.resourcesPerNode: missing; the resources come from the "
                "TrainingRuntime, which greenlight does not read at admission (name them in "
                "spec.trainer.resourcesPerNode to have the TrainJob judged)"
            )
        nodes = count(trainer.get("numNodes"), "spec.trainer.numNodes")
        pod = requirements_resources(trainer["resourcesPerNode"], "spec.trainer.resourcesPerNode")
        role = JobResources(
            gpus_per_pod=pod.gpus,
            cpu_cores_per_pod=pod.cpu_cores,
            memory_bytes_per_pod=pod.memory_bytes,
            pods=1 if nodes is None else nodes,
            gpu_product=None,
            gpu_product_source=None,
        )
        return GangResources((("spec.trainer", role),))

    def run_status(self, obj: Mapping[str, Any]) -> RunStatus:
        """The ``Complete`` or ``Failed`` condition (no start time: counted from release)."""
        return condition_status(obj, {"Complete": "Complete", "Failed": "Failed"})


TRAINJOB = TrainJobWorkload()

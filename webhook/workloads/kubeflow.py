"""Kubeflow training operator v1 jobs (``kubeflow.org/v1``): PyTorchJob, TFJob, MPIJob,
XGBoostJob, MXJob and PaddleJob (the CRDs of training operator v1.8.1).

They share one shape: a map of replica types (``Master``, ``Worker``, ``PS``, ``Launcher`` ...)
to ``{replicas, template}`` under a kind-specific field, and ``spec.runPolicy.suspend``
(training operator >= 1.7). Every replica of every type counts: the operator starts them
together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.resources import GangResources, JobResources, JobSpecError
from webhook.workloads.base import GroupVersionKind, RunStatus, condition_status
from webhook.workloads.pods import count, mapping, pod_template_resources

GROUP = "kubeflow.org"
VERSION = "v1"


@dataclass(frozen=True)
class KubeflowJobWorkload:
    """One training-operator kind; ``replica_specs`` names its map of replica types."""

    kind: str
    plural: str
    replica_specs: str
    suspend_path: tuple[str, ...] = ("spec", "runPolicy", "suspend")

    @property
    def gvk(self) -> GroupVersionKind:
        return GroupVersionKind(GROUP, VERSION, self.kind)

    def resources(self, obj: Mapping[str, Any]) -> GangResources:
        spec = mapping(mapping(obj, self.kind).get("spec"), "spec", required=True)
        base = f"spec.{self.replica_specs}"
        specs = mapping(spec.get(self.replica_specs), base, required=True)
        if not specs:
            raise JobSpecError(f"{base}: needs at least one replica type")
        roles: list[tuple[str, JobResources]] = []
        for replica_type, item in specs.items():
            path = f"{base}.{replica_type}"
            entry = mapping(item, path)
            replicas = count(entry.get("replicas"), f"{path}.replicas")
            pod = pod_template_resources(entry.get("template"), f"{path}.template")
            roles.append(
                (
                    path,
                    JobResources(
                        gpus_per_pod=pod.gpus,
                        cpu_cores_per_pod=pod.cpu_cores,
                        memory_bytes_per_pod=pod.memory_bytes,
                        pods=1 if replicas is None else replicas,
                        gpu_product=pod.gpu_product,
                        gpu_product_source=pod.gpu_product_source,
                    ),
                )
            )
        return GangResources(tuple(roles))

    def run_status(self, obj: Mapping[str, Any]) -> RunStatus:
        """``status.startTime`` and the ``Succeeded`` or ``Failed`` condition."""
        return condition_status(obj, {"Succeeded": "Complete", "Failed": "Failed"})


PYTORCHJOB = KubeflowJobWorkload("PyTorchJob", "pytorchjobs", "pytorchReplicaSpecs")
TFJOB = KubeflowJobWorkload("TFJob", "tfjobs", "tfReplicaSpecs")
MPIJOB = KubeflowJobWorkload("MPIJob", "mpijobs", "mpiReplicaSpecs")
XGBOOSTJOB = KubeflowJobWorkload("XGBoostJob", "xgboostjobs", "xgbReplicaSpecs")
MXJOB = KubeflowJobWorkload("MXJob", "mxjobs", "mxReplicaSpecs")
PADDLEJOB = KubeflowJobWorkload("PaddleJob", "paddlejobs", "paddleReplicaSpecs")
KUBEFLOW_V1 = (PYTORCHJOB, TFJOB, MPIJOB, XGBOOSTJOB, MXJOB, PADDLEJOB)

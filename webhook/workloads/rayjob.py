"""RayJob (``ray.io/v1``, KubeRay): a Ray cluster created for one job, held by ``spec.suspend``.

The cluster's pods count: one head pod, and for each worker group ``replicas`` (CRD default 0)
x ``numOfHosts`` (default 1) pods. A RayJob that runs on an existing cluster
(``spec.clusterSelector``) has no cluster of its own to hold back: KubeRay refuses
``suspend`` there, so such a RayJob cannot be estimated (it runs at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.resources import GangResources, JobResources, JobSpecError
from webhook.workloads import base
from webhook.workloads.base import GroupVersionKind, RunStatus
from webhook.workloads.pods import count, is_list, kind_of, mapping, pod_template_resources


def _pods(template: object, path: str, pods: int) -> JobResources:
    pod = pod_template_resources(template, path)
    return JobResources(
        gpus_per_pod=pod.gpus,
        cpu_cores_per_pod=pod.cpu_cores,
        memory_bytes_per_pod=pod.memory_bytes,
        pods=pods,
        gpu_product=pod.gpu_product,
        gpu_product_source=pod.gpu_product_source,
    )


class RayJobWorkload:
    """``ray.io/v1`` RayJob."""

    gvk = GroupVersionKind("ray.io", "v1", "RayJob")
    plural = "rayjobs"
    suspend_path = ("spec", "suspend")

    def resources(self, obj: Mapping[str, Any]) -> GangResources:
        spec = mapping(mapping(obj, "rayjob").get("spec"), "spec", required=True)
        if mapping(spec.get("clusterSelector"), "spec.clusterSelector"):
            raise JobSpecError(
                "spec.clusterSelector: the RayJob runs on an existing RayCluster, which "
                "greenlight cannot hold back"
            )
        base = "spec.rayClusterSpec"
        cluster = mapping(spec.get("rayClusterSpec"), base, required=True)
        head = mapping(cluster.get("headGroupSpec"), f"{base}.headGroupSpec", required=True)
        roles = [
            (
                f"{base}.headGroupSpec",
                _pods(head.get("template"), f"{base}.headGroupSpec.template", 1),
            )
        ]
        groups = cluster.get("workerGroupSpecs")
        if groups is not None and not is_list(groups):
            raise JobSpecError(f"{base}.workerGroupSpecs: expected a list, got {kind_of(groups)}")
        for index, item in enumerate(groups or []):
            path = f"{base}.workerGroupSpecs[{index}]"
            group = mapping(item, path)
            replicas = count(group.get("replicas"), f"{path}.replicas") or 0
            hosts = count(group.get("numOfHosts"), f"{path}.numOfHosts")
            pods = replicas * (1 if hosts is None else hosts)
            roles.append((path, _pods(group.get("template"), f"{path}.template", pods)))
        return GangResources(tuple(roles))

    def run_status(self, obj: Mapping[str, Any]) -> RunStatus:
        """``status.startTime``/``endTime`` and ``jobDeploymentStatus`` ``Complete`` or
        ``Failed`` (KubeRay has no finished condition in v1.5)."""
        status = base.mapping(obj.get("status"))
        deployment = status.get("jobDeploymentStatus")
        outcome = deployment if deployment in ("Complete", "Failed") else None
        return RunStatus(
            status.get("startTime"),
            status.get("endTime") if outcome else None,
            outcome if isinstance(outcome, str) else None,
        )


RAYJOB = RayJobWorkload()

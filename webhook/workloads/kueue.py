"""A Kueue ``Workload`` (``kueue.x-k8s.io``, v1beta1 or v1beta2): what Kueue admits as one unit.

Kueue writes the pods of the job it queues (a Job, a JobSet, ...) into ``spec.podSets``: each
an already-defaulted pod template and a ``count`` of pods that run at once. Their sum is the
energy of the whole gang, the same number greenlight computes from the job itself. A Workload
is never suspended by greenlight: it is held by its AdmissionCheck (``webhook.reconciler
.kueue_check``), so this module only reads it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.resources import GangResources, JobResources, JobSpecError
from webhook.workloads.pods import count, is_list, kind_of, mapping, pod_template_resources

GROUP = "kueue.x-k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
"""The Workload API versions greenlight reads, preferred first (Kueue v0.17 serves both)."""


def podset_resources(workload: Mapping[str, Any]) -> GangResources:
    """The resources of every pod set of a Workload (``JobSpecError`` names a bad field)."""
    spec = mapping(mapping(workload, "workload").get("spec"), "spec", required=True)
    podsets = spec.get("podSets")
    if not is_list(podsets) or not podsets:
        raise JobSpecError(f"spec.podSets: expected a non-empty list, got {kind_of(podsets)}")
    roles: list[tuple[str, JobResources]] = []
    for index, item in enumerate(podsets):
        path = f"spec.podSets[{index}]"
        entry = mapping(item, path)
        pods = count(entry.get("count"), f"{path}.count")
        if pods is None:
            raise JobSpecError(f"{path}.count: missing")
        pod = pod_template_resources(entry.get("template"), f"{path}.template")
        name = entry.get("name")
        role = f"{path}({name})" if isinstance(name, str) and name else path
        roles.append(
            (
                role,
                JobResources(
                    gpus_per_pod=pod.gpus,
                    cpu_cores_per_pod=pod.cpu_cores,
                    memory_bytes_per_pod=pod.memory_bytes,
                    pods=pods,
                    gpu_product=pod.gpu_product,
                    gpu_product_source=pod.gpu_product_source,
                ),
            )
        )
    return GangResources(tuple(roles))

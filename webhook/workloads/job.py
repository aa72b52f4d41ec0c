"""The ``batch/v1`` Job: what greenlight reads from one, and how it suspends and releases it.

Pure: the input is the Job as a plain dict (the ``object`` of an AdmissionReview). Pods running
at once = ``parallelism`` (default 1), capped by ``completions`` when that is smaller. The energy
model treats the Job's duration as the wall time during which that many pods run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.resources import JobResources
from webhook.workloads.base import GroupVersionKind, RunStatus, condition_status
from webhook.workloads.pods import count, mapping, pod_template_resources


class JobWorkload:
    """``batch/v1`` Job: one pod template run by ``parallelism`` pods at once."""

    gvk = GroupVersionKind("batch", "v1", "Job")
    plural = "jobs"
    suspend_path = ("spec", "suspend")

    def resources(self, obj: Mapping[str, Any]) -> JobResources:
        return job_resources(obj)

    def run_status(self, obj: Mapping[str, Any]) -> RunStatus:
        """``status.startTime`` (reset when a suspended Job is resumed) and the ``Complete``
        or ``Failed`` condition."""
        return condition_status(obj, {"Complete": "Complete", "Failed": "Failed"})


JOB = JobWorkload()
"""The one ``batch/v1`` Job implementation of ``webhook.workloads.base.Workload``."""


def job_resources(job: Mapping[str, Any]) -> JobResources:
    """Read a Job (dict) into ``JobResources``; ``JobSpecError`` names any malformed field."""
    root = mapping(job, "job")
    return job_spec_resources(root.get("spec"), "spec")


def job_spec_resources(spec: object, base: str) -> JobResources:
    """The resources of a ``JobSpec`` at field path ``base`` (``spec`` for a Job; a JobSet's
    ``spec.replicatedJobs[0].template.spec``)."""
    spec_map = mapping(spec, base, required=True)
    pod = pod_template_resources(spec_map.get("template"), f"{base}.template")
    return JobResources(
        gpus_per_pod=pod.gpus,
        cpu_cores_per_pod=pod.cpu_cores,
        memory_bytes_per_pod=pod.memory_bytes,
        pods=_concurrent_pods(spec_map, base),
        gpu_product=pod.gpu_product,
        gpu_product_source=pod.gpu_product_source,
    )


def _concurrent_pods(spec: Mapping[str, Any], base: str) -> int:
    parallelism = count(spec.get("parallelism"), f"{base}.parallelism")
    completions = count(spec.get("completions"), f"{base}.completions")
    if parallelism is None:
        parallelism = 1
    if completions is not None and completions < parallelism:
        return completions
    return parallelism

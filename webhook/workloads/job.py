"""The ``batch/v1`` Job: what greenlight reads from one, and how it suspends and releases it.

Pure: the input is the Job as a plain dict (the ``object`` of an AdmissionReview). Pods running
at once = ``parallelism`` (default 1), capped by ``completions`` when that is smaller. The energy
model treats the Job's duration as the wall time during which that many pods run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.resources import JobResources, JobSpecError
from webhook.workloads.base import GroupVersionKind
from webhook.workloads.pods import mapping, pod_template_resources


class JobWorkload:
    """``batch/v1`` Job: one pod template run by ``parallelism`` pods at once."""

    gvk = GroupVersionKind("batch", "v1", "Job")
    plural = "jobs"
    suspend_path = ("spec", "suspend")

    def resources(self, obj: Mapping[str, Any]) -> JobResources:
        return job_resources(obj)


JOB = JobWorkload()
"""The one ``batch/v1`` Job implementation of ``webhook.workloads.base.Workload``."""


def job_resources(job: Mapping[str, Any]) -> JobResources:
    """Read a Job (dict) into ``JobResources``; ``JobSpecError`` names any malformed field."""
    root = mapping(job, "job")
    spec = mapping(root.get("spec"), "spec", required=True)
    pod = pod_template_resources(spec.get("template"), "spec.template")
    return JobResources(
        gpus_per_pod=pod.gpus,
        cpu_cores_per_pod=pod.cpu_cores,
        memory_bytes_per_pod=pod.memory_bytes,
        pods=_concurrent_pods(spec),
        gpu_product=pod.gpu_product,
        gpu_product_source=pod.gpu_product_source,
    )


def _concurrent_pods(spec: Mapping[str, Any]) -> int:
    parallelism = _count(spec.get("parallelism"), "spec.parallelism")
    completions = _count(spec.get("completions"), "spec.completions")
    if parallelism is None:
        parallelism = 1
    if completions is not None and completions < parallelism:
        return completions
    return parallelism


def _count(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise JobSpecError(f"{field}: {value!r} is not a non-negative integer")
    return value

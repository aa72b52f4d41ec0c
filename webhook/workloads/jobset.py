"""JobSet (``jobset.x-k8s.io/v1alpha2``): a gang of Jobs that starts in one window.

Every replicated Job's pods count (``replicas`` copies of its Job template, each running
``parallelism`` pods capped by ``completions``). The JobSet controller resumes the child Jobs
of any JobSet that is not suspended, so a JobSet is held back by its own ``spec.suspend`` and
its child Jobs are never judged on their own (``webhook.workloads.kinds``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from webhook.core.resources import GangResources, JobResources, JobSpecError
from webhook.workloads.base import GroupVersionKind, RunStatus, condition_status
from webhook.workloads.job import job_spec_resources
from webhook.workloads.pods import count, is_list, kind_of, mapping


class JobSetWorkload:
    """``jobset.x-k8s.io/v1alpha2`` JobSet."""

    gvk = GroupVersionKind("jobset.x-k8s.io", "v1alpha2", "JobSet")
    plural = "jobsets"
    suspend_path = ("spec", "suspend")

    def resources(self, obj: Mapping[str, Any]) -> GangResources:
        spec = mapping(mapping(obj, "jobset").get("spec"), "spec", required=True)
        replicated = spec.get("replicatedJobs")
        if not is_list(replicated) or not replicated:
            raise JobSpecError(
                f"spec.replicatedJobs: expected a non-empty list, got {kind_of(replicated)}"
            )
        roles: list[tuple[str, JobResources]] = []
        for index, item in enumerate(replicated):
            path = f"spec.replicatedJobs[{index}]"
            entry = mapping(item, path)
            replicas = count(entry.get("replicas"), f"{path}.replicas")
            template = mapping(entry.get("template"), f"{path}.template", required=True)
            job = job_spec_resources(template.get("spec"), f"{path}.template.spec")
            copies = 1 if replicas is None else replicas
            name = entry.get("name")
            role = f"{path}({name})" if isinstance(name, str) and name else path
            roles.append((role, dataclasses.replace(job, pods=job.pods * copies)))
        return GangResources(tuple(roles))

    def run_status(self, obj: Mapping[str, Any]) -> RunStatus:
        """The ``Completed`` or ``Failed`` condition. A JobSet records no start time: the
        reconciler counts the run from its release."""
        return condition_status(obj, {"Completed": "Complete", "Failed": "Failed"})


JOBSET = JobSetWorkload()

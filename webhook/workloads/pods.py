"""A pod template's resources as the scheduler counts them: the part every workload kind shares.

Per pod, each resource is the pod's *effective request* as the Kubernetes scheduler computes it:
``max(sum over app containers and sidecars, max over init containers of (its request + the
sidecars started before it))`` where a container's request is its ``requests`` entry, or its
``limits`` entry when no request is set (Kubernetes' own defaulting). For ``nvidia.com/gpu`` the
larger of request and limit counts (the API requires them equal; an estimate should not
undercount). Pod overhead (RuntimeClass) is not in a pod template and is not counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeGuard

from webhook.core.resources import JobSpecError, parse_quantity, quantity_or_error

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""Node label set by NVIDIA GPU feature discovery, e.g. ``NVIDIA-A100-SXM4-80GB``."""
GPU_PRODUCT_LABELS: tuple[str, ...] = (
    GPU_PRODUCT_LABEL,
    "cloud.google.com/gke-accelerator",  # GKE, e.g. nvidia-tesla-t4, nvidia-a100-80gb
    "karpenter.k8s.aws/instance-gpu-name",  # Karpenter on AWS, e.g. a10g, t4
)
"""Node labels naming the GPU model, in the order they are looked for."""

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PodResources:
    """One pod's effective requests and the GPU model its template asks for."""

    gpus: int
    cpu_cores: float
    memory_bytes: int
    gpu_product: str | None
    gpu_product_source: str | None


def pod_template_resources(template: object, base: str) -> PodResources:
    """The resources of one pod of ``template`` (a ``PodTemplateSpec`` at field path ``base``,
    e.g. ``spec.template``); ``JobSpecError`` names any malformed field."""
    template_map = mapping(template, base, required=True)
    pod = mapping(template_map.get("spec"), f"{base}.spec", required=True)
    base = f"{base}.spec"
    containers = _containers(pod.get("containers"), f"{base}.containers", required=True)
    init_containers = _containers(pod.get("initContainers"), f"{base}.initContainers")
    gpus = _effective(containers, init_containers, GPU_RESOURCE, gpu=True)
    if gpus != gpus.to_integral_value():
        raise JobSpecError(f"{base}: {GPU_RESOURCE} must be a whole number of GPUs, got {gpus}")
    cpu = _effective(containers, init_containers, "cpu", gpu=False)
    memory = _effective(containers, init_containers, "memory", gpu=False)
    product, source = _gpu_product(pod, base)
    return PodResources(
        gpus=int(gpus),
        cpu_cores=float(cpu),
        memory_bytes=math.ceil(memory),
        gpu_product=product,
        gpu_product_source=source,
    )


@dataclass(frozen=True, slots=True)
class _Container:
    resources_path: str
    """Field path of the container's ResourceRequirements, for errors."""
    requests: Mapping[str, Any]
    limits: Mapping[str, Any]
    sidecar: bool

    def request(self, resource: str, *, gpu: bool) -> Decimal:
        request = self.requests.get(resource)
        limit = self.limits.get(resource)
        # Field paths are built only for an error: this runs for every resource of every
        # container of every admitted Job.
        requested = None if request is None else self._quantity(request, "requests", resource)
        limited = None if limit is None else self._quantity(limit, "limits", resource)
        if gpu and requested is not None and limited is not None:
            return max(requested, limited)
        if requested is not None:
            return requested
        return limited if limited is not None else _ZERO

    def _quantity(self, value: object, kind: str, resource: str) -> Decimal:
        if isinstance(value, str):
            quantity = quantity_or_error(value)
            if not isinstance(quantity, str):
                return quantity
        return parse_quantity(value, field=f"{self.resources_path}.{kind}[{resource}]")


def _containers(value: object, field: str, *, required: bool = False) -> list[_Container]:
    if value is None and not required:
        return []
    if not is_list(value):
        raise JobSpecError(f"{field}: expected a list of containers, got {kind_of(value)}")
    if required and not value:
        raise JobSpecError(f"{field}: a pod needs at least one container")
    result = []
    for index, item in enumerate(value):
        path = f"{field}[{index}]"
        container = mapping(item, path)
        resources = mapping(container.get("resources"), path, ".resources")
        requests = mapping(resources.get("requests"), path, ".resources.requests")
        limits = mapping(resources.get("limits"), path, ".resources.limits")
        sidecar = container.get("restartPolicy") == "Always"
        result.append(_Container(f"{path}.resources", requests, limits, sidecar))
    return result


def _effective(
    containers: list[_Container], init_containers: list[_Container], resource: str, *, gpu: bool
) -> Decimal:
    """The pod's effective request for ``resource`` (sidecar-aware, KEP-753)."""
    sidecars = _ZERO
    init_peak = _ZERO
    for container in init_containers:
        request = container.request(resource, gpu=gpu)
        if container.sidecar:
            sidecars += request
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + request)
    app = _ZERO
    for container in containers:
        app += container.request(resource, gpu=gpu)
    app += sidecars
    return max(app, init_peak)


def _gpu_product(pod: Mapping[str, Any], base: str) -> tuple[str | None, str | None]:
    """The GPU model from ``nodeSelector``, else the first ``In`` value of a required node
    affinity term on one of ``GPU_PRODUCT_LABELS``."""
    selector = mapping(pod.get("nodeSelector"), base, ".nodeSelector")
    for label in GPU_PRODUCT_LABELS:
        value = selector.get(label)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise JobSpecError(f"{base}.nodeSelector[{label}]: {value!r} is not a label value")
            return value, f"nodeSelector[{label}]"

    affinity = mapping(pod.get("affinity"), base, ".affinity")
    node_affinity = mapping(affinity.get("nodeAffinity"), base, ".affinity.nodeAffinity")
    if not node_affinity:
        return None, None
    field = f"{base}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    required = mapping(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"), field)
    terms = required.get("nodeSelectorTerms") or []
    if not is_list(terms):
        raise JobSpecError(f"{field}.nodeSelectorTerms: expected a list, got {kind_of(terms)}")
    for label in GPU_PRODUCT_LABELS:
        for term_index, term in enumerate(terms):
            term_path = f"{field}.nodeSelectorTerms[{term_index}]"
            expressions = mapping(term, term_path).get("matchExpressions") or []
            if not is_list(expressions):
                raise JobSpecError(
                    f"{term_path}.matchExpressions: expected a list, got {kind_of(expressions)}"
                )
            for index, item in enumerate(expressions):
                path = f"{term_path}.matchExpressions[{index}]"
                expression = mapping(item, path)
                if expression.get("key") != label or expression.get("operator") != "In":
                    continue
                values = expression.get("values")
                if (
                    not is_list(values)
                    or not values
                    or not all(isinstance(v, str) and v for v in values)
                ):
                    raise JobSpecError(f"{path}.values: expected a list of label values")
                return values[0], f"nodeAffinity[{label} In]"
    return None, None


def mapping(
    value: object, field: str, suffix: str = "", *, required: bool = False
) -> Mapping[str, Any]:
    """``value`` as a mapping (None: empty); the error names ``field + suffix``, joined only
    when there is an error."""
    if type(value) is dict:  # JSON-decoded objects: skip the slower abstract-class check
        return value
    if value is None:
        if required:
            raise JobSpecError(f"{field}{suffix}: missing")
        return {}
    if not isinstance(value, Mapping):
        raise JobSpecError(f"{field}{suffix}: expected a mapping, got {kind_of(value)}")
    return value


def is_list(value: object) -> TypeGuard[Sequence[Any]]:
    """A JSON array (or another sequence that is not a string)."""
    if type(value) is list:
        return True
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def kind_of(value: object) -> str:
    return "null" if value is None else type(value).__name__


def count(value: object, field: str) -> int | None:
    """A non-negative integer field (None when absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise JobSpecError(f"{field}: {value!r} is not a non-negative integer")
    return value


def requirements_resources(resources: object, path: str) -> PodResources:
    """One pod's resources from a bare ``ResourceRequirements`` at ``path`` (e.g. a TrainJob's
    ``spec.trainer.resourcesPerNode``): requests, else limits; for GPUs the larger."""
    requirements = mapping(resources, path)
    container = _Container(
        path,
        mapping(requirements.get("requests"), path, ".requests"),
        mapping(requirements.get("limits"), path, ".limits"),
        sidecar=False,
    )
    gpus = container.request(GPU_RESOURCE, gpu=True)
    if gpus != gpus.to_integral_value():
        raise JobSpecError(f"{path}: {GPU_RESOURCE} must be a whole number of GPUs, got {gpus}")
    return PodResources(
        gpus=int(gpus),
        cpu_cores=float(container.request("cpu", gpu=False)),
        memory_bytes=math.ceil(container.request("memory", gpu=False)),
        gpu_product=None,
        gpu_product_source=None,
    )

"""What the energy model needs from a batch/v1 Job: GPUs, CPU, memory and the GPU product.

Pure: the input is the Job as a plain dict (the ``object`` of an AdmissionReview). Structural
problems (a list where a map belongs, a bad quantity) raise ``JobSpecError`` naming the field
path and the value, never a ``KeyError``/``TypeError``.

Per pod, each resource is the pod's *effective request* as the Kubernetes scheduler computes it:
``max(sum over app containers and sidecars, max over init containers of (its request + the
sidecars started before it))`` where a container's request is its ``requests`` entry, or its
``limits`` entry when no request is set (Kubernetes' own defaulting). For ``nvidia.com/gpu`` the
larger of request and limit counts (the API requires them equal; an estimate should not
undercount). Pod overhead (RuntimeClass) is not in a Job template and is not counted.

Pods running at once = ``parallelism`` (default 1), capped by ``completions`` when that is
smaller. The energy model treats the Job's duration as the wall time during which that many pods
run.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeGuard

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""Node label set by NVIDIA GPU feature discovery, e.g. ``NVIDIA-A100-SXM4-80GB``."""
GPU_PRODUCT_LABELS: tuple[str, ...] = (
    GPU_PRODUCT_LABEL,
    "cloud.google.com/gke-accelerator",  # GKE, e.g. nvidia-tesla-t4, nvidia-a100-80gb
    "karpenter.k8s.aws/instance-gpu-name",  # Karpenter on AWS, e.g. a10g, t4
)
"""Node labels naming the GPU model, in the order they are looked for."""

BYTES_PER_GIB = 1024**3

QUANTITY_FORM = "a Kubernetes quantity such as '500m', '2', '1.5', '1Gi', '512M' or '1e3'"
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?"
)
_SUFFIX_MULTIPLIER: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
}


_ZERO = Decimal(0)


class JobSpecError(ValueError):
    """A Job whose structure or quantities cannot be read; the message names the field."""


def parse_quantity(value: object, *, field: str = "quantity") -> Decimal:
    """A Kubernetes resource quantity as an exact decimal: ``"500m"`` -> 0.5, ``"1Gi"`` ->
    1073741824, ``"1e3"`` -> 1000. Follows apimachinery's grammar (binary suffixes
    Ki..Ei, decimal n u m k M G T P E, or an exponent); numbers (YAML ``2``) are accepted too.
    Negative quantities are refused: no resource request can be negative."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise JobSpecError(f"{field}: {value!r} is not {QUANTITY_FORM}")
    # The same few quantities ("1", "16Gi") come in every admission request: parse each once,
    # whatever field it is in (the field only names a bad value in the error).
    quantity = _parse_quantity(value)
    if isinstance(quantity, str):
        raise JobSpecError(f"{field}: {value!r} {quantity}")
    return quantity


@functools.lru_cache(maxsize=1024)
def _parse_quantity(value: str | int | float) -> Decimal | str:
    """The quantity, or what is wrong with it (to be prefixed with the field and value)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"is not {QUANTITY_FORM}"
    text = str(value).strip() if isinstance(value, str) else repr(value)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return f"is not {QUANTITY_FORM}"
    number = Decimal(match["number"])  # the pattern admits only plain decimal numbers
    suffix = match["suffix"] or ""
    if len(suffix) > 1 and suffix[0] in "eE":  # an exponent; a lone "E" is exa
        quantity = number.scaleb(int(suffix[1:]))
    else:
        quantity = number * _SUFFIX_MULTIPLIER[suffix]
    if quantity < 0:
        return "is negative"
    return quantity


@dataclass(frozen=True, slots=True)
class JobResources:
    """Resources of a Job, per pod and for the pods that run at once."""

    gpus_per_pod: int
    cpu_cores_per_pod: float
    memory_bytes_per_pod: int
    pods: int
    """Pods running at once: parallelism (default 1), capped by completions."""
    gpu_product: str | None
    """The GPU model the pod template asks for through a node label, as written there."""
    gpu_product_source: str | None
    """Where ``gpu_product`` came from, e.g. ``nodeSelector[nvidia.com/gpu.product]``."""

    @property
    def gpu_count(self) -> int:
        return self.gpus_per_pod * self.pods

    @property
    def cpu_cores(self) -> float:
        return self.cpu_cores_per_pod * self.pods

    @property
    def memory_bytes(self) -> int:
        return self.memory_bytes_per_pod * self.pods

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / BYTES_PER_GIB


def job_resources(job: Mapping[str, Any]) -> JobResources:
    """Read a Job (dict) into ``JobResources``; ``JobSpecError`` names any malformed field."""
    root = _mapping(job, "job")
    spec = _mapping(root.get("spec"), "spec", required=True)
    template = _mapping(spec.get("template"), "spec.template", required=True)
    pod = _mapping(template.get("spec"), "spec.template.spec", required=True)
    pods = _concurrent_pods(spec)

    base = "spec.template.spec"
    containers = _containers(pod.get("containers"), f"{base}.containers", required=True)
    init_containers = _containers(pod.get("initContainers"), f"{base}.initContainers")
    gpus = _effective(containers, init_containers, GPU_RESOURCE, gpu=True)
    if gpus != gpus.to_integral_value():
        raise JobSpecError(f"{base}: {GPU_RESOURCE} must be a whole number of GPUs, got {gpus}")
    cpu = _effective(containers, init_containers, "cpu", gpu=False)
    memory = _effective(containers, init_containers, "memory", gpu=False)
    product, source = _gpu_product(pod, base)
    return JobResources(
        gpus_per_pod=int(gpus),
        cpu_cores_per_pod=float(cpu),
        memory_bytes_per_pod=math.ceil(memory),
        pods=pods,
        gpu_product=product,
        gpu_product_source=source,
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


@dataclass(frozen=True, slots=True)
class _Container:
    path: str
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
            quantity = _parse_quantity(value)
            if not isinstance(quantity, str):
                return quantity
        return parse_quantity(value, field=f"{self.path}.resources.{kind}[{resource}]")


def _containers(value: object, field: str, *, required: bool = False) -> list[_Container]:
    if value is None and not required:
        return []
    if not _is_list(value):
        raise JobSpecError(f"{field}: expected a list of containers, got {_kind(value)}")
    if required and not value:
        raise JobSpecError(f"{field}: a pod needs at least one container")
    result = []
    for index, item in enumerate(value):
        path = f"{field}[{index}]"
        container = _mapping(item, path)
        resources = _mapping(container.get("resources"), path, ".resources")
        requests = _mapping(resources.get("requests"), path, ".resources.requests")
        limits = _mapping(resources.get("limits"), path, ".resources.limits")
        sidecar = container.get("restartPolicy") == "Always"
        result.append(_Container(path, requests, limits, sidecar))
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
    selector = _mapping(pod.get("nodeSelector"), base, ".nodeSelector")
    for label in GPU_PRODUCT_LABELS:
        value = selector.get(label)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise JobSpecError(f"{base}.nodeSelector[{label}]: {value!r} is not a label value")
            return value, f"nodeSelector[{label}]"

    affinity = _mapping(pod.get("affinity"), base, ".affinity")
    node_affinity = _mapping(affinity.get("nodeAffinity"), base, ".affinity.nodeAffinity")
    if not node_affinity:
        return None, None
    field = f"{base}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    required = _mapping(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"), field)
    terms = required.get("nodeSelectorTerms") or []
    if not _is_list(terms):
        raise JobSpecError(f"{field}.nodeSelectorTerms: expected a list, got {_kind(terms)}")
    for label in GPU_PRODUCT_LABELS:
        for term_index, term in enumerate(terms):
            term_path = f"{field}.nodeSelectorTerms[{term_index}]"
            expressions = _mapping(term, term_path).get("matchExpressions") or []
            if not _is_list(expressions):
                raise JobSpecError(
                    f"{term_path}.matchExpressions: expected a list, got {_kind(expressions)}"
                )
            for index, item in enumerate(expressions):
                path = f"{term_path}.matchExpressions[{index}]"
                expression = _mapping(item, path)
                if expression.get("key") != label or expression.get("operator") != "In":
                    continue
                values = expression.get("values")
                if (
                    not _is_list(values)
                    or not values
                    or not all(isinstance(v, str) and v for v in values)
                ):
                    raise JobSpecError(f"{path}.values: expected a list of label values")
                return values[0], f"nodeAffinity[{label} In]"
    return None, None


def _mapping(
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
        raise JobSpecError(f"{field}{suffix}: expected a mapping, got {_kind(value)}")
    return value


def _is_list(value: object) -> TypeGuard[Sequence[Any]]:
    """A JSON array (or another sequence that is not a string)."""
    if type(value) is list:
        return True
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__

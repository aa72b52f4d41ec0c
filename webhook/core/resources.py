"""Resources of a workload as the energy model reads them, and Kubernetes quantities.

Pure. ``JobResources`` is what every workload kind reduces to (``webhook.workloads``);
``parse_quantity`` follows apimachinery's grammar. Structural problems raise ``JobSpecError``
naming the field path and the value, never a ``KeyError``/``TypeError``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from decimal import Decimal

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
    quantity = quantity_or_error(value)
    if isinstance(quantity, str):
        raise JobSpecError(f"{field}: {value!r} {quantity}")
    return quantity


@functools.lru_cache(maxsize=1024)
def quantity_or_error(value: str | int | float) -> Decimal | str:
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


@dataclass(frozen=True, slots=True)
class GangResources:
    """Resources of a workload whose pods differ by role (a JobSet's replicated Jobs, a
    PyTorchJob's Master and Workers, a RayJob's head and worker groups): the sum over every
    role, which all run at once (a gang starts in one window)."""

    roles: tuple[tuple[str, JobResources], ...]
    """Each role's name (field path) and its resources, in the order of the spec."""

    @property
    def pods(self) -> int:
        return sum(part.pods for _, part in self.roles)

    @property
    def gpu_count(self) -> int:
        return sum(part.gpu_count for _, part in self.roles)

    @property
    def cpu_cores(self) -> float:
        return sum(part.cpu_cores for _, part in self.roles)

    @property
    def memory_bytes(self) -> int:
        return sum(part.memory_bytes for _, part in self.roles)

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / BYTES_PER_GIB

    @property
    def gpu_product(self) -> str | None:
        """The GPU model of the role with the most GPUs that names one."""
        named = [part for _, part in self.roles if part.gpu_product and part.gpu_count]
        return max(named, key=lambda part: part.gpu_count).gpu_product if named else None

    @property
    def gpu_product_source(self) -> str | None:
        named = [(role, part) for role, part in self.roles if part.gpu_product and part.gpu_count]
        if not named:
            return None
        role, part = max(named, key=lambda item: item[1].gpu_count)
        return f"{role}: {part.gpu_product_source}"


WorkloadResources = JobResources | GangResources
"""What every workload kind reduces to for the energy model."""

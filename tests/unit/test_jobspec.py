"""Reading a Job's GPUs, CPU, memory, pod count and GPU product (plain dicts, as admitted)."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from webhook.core.resources import BYTES_PER_GIB, JobSpecError, parse_quantity
from webhook.workloads.job import job_resources


def container(
    requests: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "main", "image": "busybox", "resources": resources, **extra}


def job(
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    parallelism: int | None = None,
    completions: int | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": list(containers) or [container()]}
    if init is not None:
        pod["initContainers"] = init
    if node_selector is not None:
        pod["nodeSelector"] = node_selector
    if affinity is not None:
        pod["affinity"] = affinity
    spec: dict[str, Any] = {"template": {"spec": pod}}
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if completions is not None:
        spec["completions"] = completions
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": spec}


def required_affinity(*expressions: dict[str, Any]) -> dict[str, Any]:
    terms = [{"matchExpressions": list(expressions)}]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }


# --- Quantities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("500m", Decimal("0.5"), id="millicores"),
        pytest.param("2", Decimal(2), id="integer"),
        pytest.param("1.5", Decimal("1.5"), id="decimal"),
        pytest.param("1Gi", Decimal(1024**3), id="gibibyte"),
        pytest.param("1.5Gi", Decimal(3 * 1024**3 // 2), id="fractional-gibibyte"),
        pytest.param("512M", Decimal(512 * 10**6), id="megabyte"),
        pytest.param("100k", Decimal(100_000), id="kilo"),
        pytest.param("1Ki", Decimal(1024), id="kibibyte"),
        pytest.param("1e3", Decimal(1000), id="exponent"),
        pytest.param("1E3", Decimal(1000), id="upper-exponent"),
        pytest.param("25e-2", Decimal("0.25"), id="negative-exponent"),
        pytest.param("1E", Decimal(10**18), id="exa"),
        pytest.param("+1", Decimal(1), id="plus-sign"),
        pytest.param(".5", Decimal("0.5"), id="leading-dot"),
        pytest.param(2, Decimal(2), id="yaml-int"),
        pytest.param(0.25, Decimal("0.25"), id="yaml-float"),
    ],
)
def test_kubernetes_quantities_parse_exactly(value: object, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1K", id="upper-case-kilo"),
        pytest.param("1GB", id="gigabyte-with-b"),
        pytest.param("1ki", id="lower-case-binary"),
        pytest.param("abc", id="letters"),
        pytest.param("", id="empty"),
        pytest.param("1.2.3", id="two-dots"),
        pytest.param("1_000", id="underscore"),
        pytest.param("NaN", id="nan"),
        pytest.param("Infinity", id="infinity"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param(float("nan"), id="float-nan"),
    ],
)
def test_malformed_quantities_are_refused_with_the_accepted_form(value: object) -> None:
    with pytest.raises(JobSpecError, match=r"limits\[cpu\]: .* is not a Kubernetes quantity"):
        parse_quantity(value, field="limits[cpu]")


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(JobSpecError, match="negative"):
        parse_quantity("-1")


# --- GPUs and pods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "gpus_per_pod", "pods"),
    [
        pytest.param(job(container(limits={"nvidia.com/gpu": "1"})), 1, 1, id="limit-only"),
        pytest.param(job(container(requests={"nvidia.com/gpu": 2})), 2, 1, id="request-only"),
        pytest.param(
            job(container({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"})), 2, 1,
            id="larger-limit-wins",
        ),
        pytest.param(
            job(container(limits={"nvidia.com/gpu": 1}), container(limits={"nvidia.com/gpu": 2})),
            3, 1, id="summed-over-containers",
        ),
        pytest.param(job(container()), 0, 1, id="no-gpus"),
        pytest.param(job(container(limits={"nvidia.com/gpu": 1}), parallelism=4), 1, 4,
                     id="parallelism"),
        pytest.param(job(container(limits={"nvidia.com/gpu": 1}), parallelism=4, completions=2),
                     1, 2, id="capped-by-completions"),
        pytest.param(job(container(limits={"nvidia.com/gpu": 1}), parallelism=4, completions=10),
                     1, 4, id="more-completions-than-parallelism"),
        pytest.param(job(container(limits={"nvidia.com/gpu": 1}), completions=5), 1, 1,
                     id="default-parallelism"),
        pytest.param(job(container(limits={"nvidia.com/gpu": 1}), parallelism=0), 1, 0,
                     id="paused"),
    ],
)  # fmt: skip
def test_gpus_come_from_requests_or_limits_times_running_pods(
    spec: dict[str, Any], gpus_per_pod: int, pods: int
) -> None:
    resources = job_resources(spec)
    assert (resources.gpus_per_pod, resources.pods) == (gpus_per_pod, pods)
    assert resources.gpu_count == gpus_per_pod * pods


def test_cpu_and_memory_come_from_requests_summed_over_containers_and_pods() -> None:
    spec = job(
        container({"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"}),
        container({"cpu": "1.5", "memory": "512Mi"}),
        parallelism=3,
    )
    resources = job_resources(spec)
    assert resources.cpu_cores_per_pod == 2.0
    assert resources.memory_bytes_per_pod == 1536 * 1024**2
    assert resources.cpu_cores == 6.0
    assert resources.memory_gib == pytest.approx(4.5)


def test_a_limit_stands_in_for_a_missing_request_as_kubernetes_defaults_it() -> None:
    resources = job_resources(job(container(limits={"cpu": "4", "memory": "8Gi"})))
    assert resources.cpu_cores_per_pod == 4.0
    assert resources.memory_bytes_per_pod == 8 * BYTES_PER_GIB


@pytest.mark.parametrize(
    ("init", "app_cpu", "expected"),
    [
        pytest.param([container({"cpu": "4"})], "1", 4.0, id="init-larger-than-app"),
        pytest.param([container({"cpu": "500m"})], "1", 1.0, id="app-larger-than-init"),
        pytest.param([container({"cpu": "1"}, restartPolicy="Always")], "1", 2.0,
                     id="sidecar-adds-to-app"),
        pytest.param([container({"cpu": "1"}, restartPolicy="Always"), container({"cpu": "3"})],
                     "1", 4.0, id="init-after-sidecar-adds-the-sidecar"),
        pytest.param([container({"cpu": "3"}), container({"cpu": "1"}, restartPolicy="Always")],
                     "1", 3.0, id="init-before-sidecar-alone"),
    ],
)  # fmt: skip
def test_init_containers_follow_the_effective_request_rule(
    init: list[dict[str, Any]], app_cpu: str, expected: float
) -> None:
    resources = job_resources(job(container({"cpu": app_cpu}), init=init))
    assert resources.cpu_cores_per_pod == expected


def test_gpus_of_an_init_container_count_when_larger() -> None:
    spec = job(
        container(limits={"nvidia.com/gpu": 1}), init=[container(limits={"nvidia.com/gpu": 2})]
    )
    assert job_resources(spec).gpus_per_pod == 2


# --- GPU product -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "product", "source"),
    [
        pytest.param(
            job(node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}),
            "NVIDIA-A100-SXM4-80GB", "nodeSelector[nvidia.com/gpu.product]", id="node-selector",
        ),
        pytest.param(
            job(affinity=required_affinity(
                {"key": "nvidia.com/gpu.product", "operator": "In",
                 "values": ["Tesla-T4", "NVIDIA-L4"]}
            )),
            "Tesla-T4", "nodeAffinity[nvidia.com/gpu.product In]", id="affinity-first-in-value",
        ),
        pytest.param(
            job(affinity=required_affinity(
                {"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": ["Tesla-T4"]}
            )),
            None, None, id="affinity-not-in-ignored",
        ),
        pytest.param(
            job(node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"}),
            "nvidia-l4", "nodeSelector[cloud.google.com/gke-accelerator]", id="gke-label",
        ),
        pytest.param(
            job(
                node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                affinity=required_affinity(
                    {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["Tesla-T4"]}
                ),
            ),
            "NVIDIA-H100-80GB-HBM3", "nodeSelector[nvidia.com/gpu.product]",
            id="node-selector-before-affinity",
        ),
        pytest.param(job(node_selector={"kubernetes.io/os": "linux"}), None, None, id="none"),
    ],
)  # fmt: skip
def test_gpu_product_comes_from_node_selector_or_required_affinity(
    spec: dict[str, Any], product: str | None, source: str | None
) -> None:
    resources = job_resources(spec)
    assert (resources.gpu_product, resources.gpu_product_source) == (product, source)


# --- Malformed Jobs --------------------------------------------------------------------------


def broken(path: list[str | int], value: Any) -> dict[str, Any]:
    """A valid GPU Job with the value at ``path`` replaced."""
    spec = job(
        container({"cpu": "1"}, {"nvidia.com/gpu": 1}),
        affinity=required_affinity(
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["Tesla-T4"]}
        ),
    )
    target: Any = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return spec


POD: list[str | int] = ["spec", "template", "spec"]
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
TERM: list[str | int] = [*POD, "affinity", "nodeAffinity", REQUIRED, "nodeSelectorTerms", 0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(broken(["spec"], None), r"^spec: missing", id="no-spec"),
        pytest.param(broken(["spec", "template"], []),
                     "spec.template: expected a mapping, got list", id="template-list"),
        pytest.param(broken([*POD, "containers"], {}), "containers: expected a list",
                     id="containers-map"),
        pytest.param(broken([*POD, "containers"], []), "at least one container",
                     id="no-containers"),
        pytest.param(broken([*POD, "containers", 0, "resources", "requests"], ["cpu"]),
                     r"containers\[0\].resources.requests: expected a mapping", id="requests-list"),
        pytest.param(broken([*POD, "containers", 0, "resources", "requests", "cpu"], "1 core"),
                     r"containers\[0\].resources.requests\[cpu\]: '1 core' is not", id="bad-cpu"),
        pytest.param(broken([*POD, "containers", 0, "resources", "limits", "nvidia.com/gpu"],
                            "1.5"), "whole number of GPUs", id="half-gpu"),
        pytest.param(broken(["spec", "parallelism"], "2"), "spec.parallelism: '2' is not",
                     id="parallelism-string"),
        pytest.param(broken(["spec", "completions"], -1), "spec.completions: -1 is not",
                     id="negative-completions"),
        pytest.param(broken([*TERM, "matchExpressions", 0, "values"], []),
                     r"matchExpressions\[0\].values: expected a list", id="empty-values"),
        pytest.param(broken([*TERM, "matchExpressions"], "x"), "matchExpressions: expected a list",
                     id="expressions-string"),
        pytest.param(broken([*POD, "nodeSelector"], {"nvidia.com/gpu.product": 3}),
                     r"nodeSelector\[nvidia.com/gpu.product\]: 3 is not a label value",
                     id="selector-number"),
    ],
)  # fmt: skip
def test_malformed_jobs_raise_an_error_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        job_resources(spec)


def test_a_job_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(JobSpecError, match="job: expected a mapping, got list"):
        job_resources([])  # type: ignore[arg-type]


def test_the_same_bad_quantity_is_reported_in_each_field_it_appears_in() -> None:
    # Quantities are parsed once per value whatever their field: the error must still name
    # the field of the Job at hand.
    in_requests = job(container(requests={"cpu": "lots"}))
    in_limits = job(container(limits={"memory": "lots"}))
    with pytest.raises(JobSpecError, match=r"requests\[cpu\]: 'lots' is not"):
        job_resources(in_requests)
    with pytest.raises(JobSpecError, match=r"limits\[memory\]: 'lots' is not"):
        job_resources(in_limits)


def _frozen(value: Any) -> Any:
    """``value`` with every dict a read-only mapping and every list a tuple."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def test_mappings_and_sequences_other_than_dicts_and_lists_read_the_same() -> None:
    spec = job(
        container(requests={"cpu": "2", "nvidia.com/gpu": "1"}, limits={"memory": "4Gi"}),
        init=[container(requests={"cpu": "1"}, restartPolicy="Always")],
        parallelism=2,
        affinity=required_affinity(
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100"]}
        ),
    )
    assert job_resources(_frozen(spec)) == job_resources(spec)

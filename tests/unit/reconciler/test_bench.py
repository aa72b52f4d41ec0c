from __future__ import annotations

import math

import pytest

from webhook.devtools.reconcile_bench import percentile, request_counts


def line(value: int, **labels: str) -> str:
    common = {"component": "apiserver", "dry_run": "", "scope": "resource", "version": "v1"}
    body = ",".join(f'{k}="{v}"' for k, v in sorted({**common, **labels}.items()))
    return f"apiserver_request_total{{{body}}} {value}"


JOBS = {"group": "batch", "resource": "jobs"}
METRICS = "\n".join(
    [
        "# TYPE apiserver_request_total counter",
        line(7, code="200", subresource="", verb="PATCH", **JOBS),
        line(2, code="409", subresource="", verb="PATCH", **JOBS),
        line(5, code="200", subresource="status", verb="PUT", **JOBS),
        line(3, code="201", group="", resource="events", subresource="", verb="POST"),
        'apiserver_request_duration_seconds_count{verb="PATCH"} 99',
    ]
)


def test_apiserver_requests_are_summed_by_verb_resource_and_subresource() -> None:
    assert request_counts(METRICS) == {
        ("PATCH", "jobs", ""): 9.0,
        ("PUT", "jobs", "status"): 5.0,
        ("POST", "events", ""): 3.0,
    }


@pytest.mark.parametrize(
    ("pct", "expected"),
    [
        pytest.param(50, 50.0, id="p50"),
        pytest.param(99, 99.0, id="p99"),
        pytest.param(100, 100.0, id="max"),
    ],
)
def test_percentiles_are_nearest_rank(pct: float, expected: float) -> None:
    assert percentile([float(v) for v in range(100, 0, -1)], pct) == expected


def test_the_percentile_of_nothing_is_not_a_number() -> None:
    assert math.isnan(percentile([], 99))

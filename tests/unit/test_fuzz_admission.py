"""Fuzzing /mutate and /validate: any body gets 200 or 400, never a 5xx, and no request makes a
handler fail (fail-open would hide a crash, so it is counted and must stay zero)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reviews import job, review

from webhook.admission.server import create_app
from webhook.config.settings import Settings
from webhook.core import annotations as keys
from webhook.telemetry.metrics import Metrics

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
annotation_values = st.sampled_from(
    ["", "0", "-1h", "24h", "1h30m", "true", "observe", "1e400", "2025-06-01T00:00:00Z", "%", "NaN"]
) | st.text(max_size=20)
greenlight_annotations = st.dictionaries(
    st.sampled_from(
        [*keys.INPUT_KEYS, *keys.WEBHOOK_OUTPUT_KEYS, "greenlight.dev/x", "helm.sh/hook"]
    ),
    annotation_values,
    max_size=6,
)
quantities = st.sampled_from(["1", "0", "500m", "1Gi", "-1", "1e3", "x", "0.5"]) | json_scalars


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    obj = job(
        annotations=draw(greenlight_annotations),
        suspend=draw(st.none() | st.booleans()),
        gpus=draw(st.integers(0, 8)),
        parallelism=draw(st.none() | st.integers(0, 100)),
        owner_kind=draw(st.none() | st.sampled_from(["CronJob", "Workflow"])),
    )
    resources = obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    resources["requests"]["cpu"] = draw(quantities)
    resources["requests"]["memory"] = draw(quantities)
    broken = draw(st.none() | st.sampled_from(["metadata", "spec", "template", "containers"]))
    replacement = draw(json_values)
    if broken in ("metadata", "spec"):
        obj[broken] = replacement
    elif broken == "template":
        obj["spec"]["template"] = replacement
    elif broken == "containers":
        obj["spec"]["template"]["spec"]["containers"] = replacement
    return obj


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[TestClient, Metrics]]:
    metrics = Metrics()
    with TestClient(create_app(Settings(), metrics=metrics)) as client:
        refresher = client.app.state.refresher  # type: ignore[attr-defined]
        client.portal.call(refresher.first_round.wait)  # type: ignore[union-attr]
        yield client, metrics


def _post(served: tuple[TestClient, Metrics], endpoint: str, content: bytes) -> int:
    client, metrics = served
    status: int = client.post(endpoint, content=content).status_code
    assert status in (200, 400)
    assert metrics.registry.get_sample_value(
        "greenlight_fail_open_total", {"endpoint": endpoint.strip("/")}
    ) in (None, 0.0)
    return status


@pytest.mark.parametrize("endpoint", ["/mutate", "/validate"])
@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(served: tuple[TestClient, Metrics], endpoint: str, raw: bytes) -> None:
    _post(served, endpoint, raw)


@pytest.mark.parametrize("endpoint", ["/mutate", "/validate"])
@FUZZ
@given(value=json_values)
def test_arbitrary_json(served: tuple[TestClient, Metrics], endpoint: str, value: Any) -> None:
    _post(served, endpoint, json.dumps(value).encode())


@pytest.mark.parametrize("endpoint", ["/mutate", "/validate"])
@FUZZ
@given(
    obj=jobs(),
    old=st.none() | jobs(),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", ""]),
    dry_run=st.booleans(),
    request_noise=st.dictionaries(
        st.sampled_from(["kind", "userInfo", "namespace", "name", "dryRun", "subResource"]),
        json_values,
        max_size=2,
    ),
)
def test_reviews_with_fuzzed_jobs(
    served: tuple[TestClient, Metrics],
    endpoint: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    operation: str,
    dry_run: bool,
    request_noise: dict[str, Any],
) -> None:
    value = review(obj, operation=operation, old=old, dry_run=dry_run)
    value["request"].update(request_noise)
    status = _post(served, endpoint, json.dumps(value).encode())
    if operation:
        assert status == 200

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from reviews import body, job, review

from webhook.admission import certs
from webhook.admission.review import MAX_BODY_BYTES
from webhook.admission.server import create_app
from webhook.admission.tls import ReloadingTLS
from webhook.config.settings import Settings, WebhookSettings
from webhook.core import annotations as keys
from webhook.core.forecast import ForecastResult
from webhook.telemetry.metrics import Metrics


class BrokenForecasts:
    """A forecast source whose memory read fails: an internal error on the request path."""

    async def refresh(self, zone: str) -> object:
        return None

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        raise RuntimeError("corrupted forecast state")


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as test_client:
        refresher = test_client.app.state.refresher  # type: ignore[attr-defined]
        test_client.portal.call(refresher.first_round.wait)  # type: ignore[union-attr]
        yield test_client


def _response(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)["response"]
    return value


def _patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = orjson.loads(base64.b64decode(response["patch"]))
    return ops


def test_mutate_judges_a_job_on_the_embedded_defaults(client: TestClient) -> None:
    reply = client.post("/mutate", content=body(review(job())))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    response = _response(reply.content)
    assert response["allowed"] is True
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    added = next(op for op in _patch(response) if op["path"] == "/metadata/annotations")
    assert added["value"][keys.DECISION] in {"deferred", "run-now"}
    assert added["value"][keys.PROVIDER] == "replay"
    assert added["value"][keys.FORECAST_SOURCE] == "provider"


def test_mutate_fetches_a_zone_not_fetched_yet_before_judging_the_job() -> None:
    settings = Settings(webhook=WebhookSettings(on_demand_fetch_timeout_s=25))
    with TestClient(create_app(settings)) as test_client:
        refresher = test_client.app.state.refresher  # type: ignore[attr-defined]
        test_client.portal.call(refresher.first_round.wait)  # type: ignore[union-attr]
        assert not refresher.fetched("GB")
        reply = test_client.post(
            "/mutate", content=body(review(job(annotations={keys.ZONE: "GB"})))
        )
        added = next(
            op for op in _patch(_response(reply.content)) if op["path"] == "/metadata/annotations"
        )
        assert added["value"][keys.REASON_CODE] != "no-forecast", added["value"][keys.REASON]
        assert added["value"][keys.PLANNED_ZONE] == "GB"
        assert refresher.fetched("GB")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"<xml/>", "not JSON", id="not-json"),
        pytest.param(b'{"apiVersion": "v1", "kind": "Pod"}', "apiVersion", id="wrong-kind"),
        pytest.param(body({**review(job()), "request": {"object": {}}}), "no uid", id="no-uid"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/mutate", "/validate"])
def test_a_malformed_review_is_http_400_with_the_reason(
    client: TestClient, endpoint: str, raw: bytes, message: str
) -> None:
    reply = client.post(endpoint, content=raw)
    assert reply.status_code == 400
    assert message in reply.json()["error"]


def test_a_body_declared_over_3_mib_is_refused_before_reading(client: TestClient) -> None:
    reply = client.post(
        "/mutate", content=b"{}", headers={"content-length": str(MAX_BODY_BYTES + 1)}
    )
    assert reply.status_code == 400
    assert "limit" in reply.json()["error"]


def test_validate_denies_with_one_message(client: TestClient) -> None:
    bad = job(annotations={keys.MAX_DELAY: "a while", keys.ZONE: "DE DE"})
    response = _response(client.post("/validate", content=body(review(bad))).content)
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    assert keys.MAX_DELAY in response["status"]["message"]
    assert keys.ZONE in response["status"]["message"]


def test_an_internal_error_fails_open_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    app = create_app(Settings(), forecasts=BrokenForecasts(), metrics=metrics)
    caplog.set_level(logging.ERROR, logger="webhook.admission.server")
    with TestClient(app) as client:
        reply = client.post("/mutate", content=body(review(job())))
    assert reply.status_code == 200
    response = _response(reply.content)
    assert response["allowed"] is True
    assert "patch" not in response
    assert (
        metrics.registry.get_sample_value("greenlight_fail_open_total", {"endpoint": "mutate"}) == 1
    )
    assert "fail open" in caplog.text
    assert "corrupted forecast state" in caplog.text


def test_metrics_count_requests_by_endpoint_and_outcome(client: TestClient) -> None:
    client.post("/mutate", content=body(review(job())))
    client.post("/mutate", content=b"nope")
    text = client.get("/metrics").text
    assert 'greenlight_admission_requests_total{endpoint="mutate",outcome="patched"} 1.0' in text
    assert 'greenlight_admission_requests_total{endpoint="mutate",outcome="malformed"} 1.0' in text
    assert "greenlight_admission_duration_seconds_bucket" in text
    assert 'greenlight_forecast_age_seconds{zone="DE"}' in text
    assert "greenlight_decisions_total" in text


def test_healthz_is_always_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_waits_for_certificates_and_the_first_forecast_refresh(
    client: TestClient, tmp_path: Path
) -> None:
    reply = client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"] == {"certificates": False, "forecasts": True}

    certs.ensure_cert_dir(tmp_path, dns_names=["localhost"], now=datetime.now(UTC))
    tls = ReloadingTLS(tmp_path / certs.TLS_CERT_FILE, tmp_path / certs.TLS_KEY_FILE)
    with TestClient(create_app(Settings(), tls=tls)) as ready_client:
        refresher = ready_client.app.state.refresher  # type: ignore[attr-defined]
        ready_client.portal.call(refresher.first_round.wait)  # type: ignore[union-attr]
        assert ready_client.get("/readyz").status_code == 200

"""The admission webhook on the real apiserver: ``greenlight serve`` as a process on this host,
registered the way the chart registers it (opt-in label, kube-system excluded, fail open).

Forecasts come from a replay file written for the test in which the grid is dirty now and
clean five to nine hours from now, so every Job the webhook may defer is deferred.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_jobs import plain_job
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.core import annotations as keys
from webhook.devtools.localcluster import LocalControlPlane, free_port, wait_until

HOUR_S = 3600
WEEK_S = 7 * 24 * HOUR_S
MONDAY_OFFSET_S = 4 * 24 * HOUR_S  # the epoch was a Thursday
ZONE = "E2E"


def _write_replay_file(path: Path, now: datetime) -> None:
    """Two weeks of hourly data (Electricity Maps export format) from a Monday: 500 g/kWh,
    except 50 g/kWh five to nine hours (hour of week) after ``now``."""
    hour_of_week_now = int((now.timestamp() - MONDAY_OFFSET_S) % WEEK_S) // HOUR_S
    start = datetime(2023, 3, 6, tzinfo=UTC)  # a Monday
    lines = [
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
        "Data Source,Data Estimated,Data Estimation Method"
    ]
    for hour in range(2 * 168):
        clean = (hour % 168 - hour_of_week_now) % 168 in range(5, 9)
        value = 50.0 if clean else 500.0
        moment = start + timedelta(hours=hour)
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S},Testland,Testland,{ZONE},{value},{value},50,50,test,false,"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Webhook:
    base_url: str
    ca_bundle: str
    ca_file: Path
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(
            f"{self.base_url}{path}", verify=ssl.create_default_context(cafile=self.ca_file)
        )

    def metrics(self) -> str:
        return self.get("/metrics").text

    def decisions(self) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("greenlight_decisions_total"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


def _start_webhook(plane: LocalControlPlane, workdir: Path) -> Webhook:
    cert_dir = workdir / "certs"
    ca_bundle = plane.issue_serving_certs(cert_dir)
    replay = workdir / "replay.csv"
    _write_replay_file(replay, datetime.now(UTC))
    port = free_port()
    env = {
        **os.environ,
        "GREENLIGHT_REPLAY": json.dumps(
            {"files": {ZONE: str(replay)}, "embedded": False, "forecast_error_pct": 0}
        ),
        "GREENLIGHT_WEBHOOK__ZONE": ZONE,
    }
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cert-dir",
            str(cert_dir),
            "--kubeconfig",
            str(plane.kubeconfig),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    webhook = Webhook(f"https://127.0.0.1:{port}", ca_bundle, cert_dir / "ca.crt", process)

    def alive() -> None:
        if process.poll() is not None:
            raise AssertionError(
                f"greenlight serve exited: {(workdir / 'serve.log').read_text()[-2000:]}"
            )

    wait_until(
        lambda: webhook.get("/readyz").status_code == 200,
        timeout_s=60,
        what="greenlight serve to become ready",
        still_possible=alive,
    )
    return webhook


@pytest.fixture
def webhook(
    control_plane: LocalControlPlane,
    register_webhook: Callable[..., Any],
    tmp_path: Path,
) -> Iterator[Webhook]:
    server = _start_webhook(control_plane, tmp_path)
    try:
        register_webhook(server.base_url, server.ca_bundle)
        yield server
    finally:
        server.stop()


def _batch(kube_api: client.ApiClient) -> Any:
    """The batch API, its models handled as plain data."""
    return client.BatchV1Api(kube_api)


def _name() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


def _greenlight_annotations(job: Any) -> dict[str, str]:
    return {k: v for k, v in (job.metadata.annotations or {}).items() if keys.is_greenlight_key(k)}


def test_a_job_in_an_opted_in_namespace_is_stored_suspended_with_its_plan(
    webhook: Webhook, make_namespace: Callable[..., str], kube_api: client.ApiClient
) -> None:
    namespace = make_namespace(opted_in=True)
    batch = _batch(kube_api)
    batch.create_namespaced_job(namespace, plain_job("train", {keys.EXPECTED_DURATION: "2h"}))

    stored = batch.read_namespaced_job("train", namespace)
    annotations = stored.metadata.annotations
    assert stored.spec.suspend is True
    assert annotations[keys.DECISION] == "deferred"
    assert annotations[keys.REASON_CODE] == "window"
    for key in (
        keys.RELEASE_AT,
        keys.RELEASE_BY,
        keys.ADMITTED_AT,
        keys.INTENSITY_NOW,
        keys.INTENSITY_PLANNED,
        keys.ENERGY_KWH,
        keys.EMISSIONS_NOW_G,
        keys.EMISSIONS_PLANNED_G,
        keys.SAVINGS_G,
        keys.SAVINGS_PCT,
        keys.PROVIDER,
        keys.FORECAST_AGE_S,
    ):
        assert annotations.get(key), key
    assert annotations[keys.INTENSITY_NOW] == "500.0"
    assert annotations[keys.INTENSITY_PLANNED] == "50.0"
    assert annotations[keys.PLANNED_ZONE] == ZONE
    release_at = datetime.fromisoformat(annotations[keys.RELEASE_AT])
    assert timedelta(hours=3) < release_at - datetime.now(UTC) < timedelta(hours=9)


def test_jobs_outside_opted_in_namespaces_are_untouched(
    webhook: Webhook, make_namespace: Callable[..., str], kube_api: client.ApiClient
) -> None:
    batch = _batch(kube_api)
    plain = make_namespace(opted_in=False)
    name = _name()
    batch.create_namespaced_job(plain, plain_job(name))
    stored = batch.read_namespaced_job(name, plain)
    assert _greenlight_annotations(stored) == {}
    assert stored.spec.suspend is False

    system = _name()
    batch.create_namespaced_job("kube-system", plain_job(system))
    try:
        stored = batch.read_namespaced_job(system, "kube-system")
        assert _greenlight_annotations(stored) == {}
        assert stored.spec.suspend is False
    finally:
        batch.delete_namespaced_job(system, "kube-system")


def test_a_server_dry_run_returns_the_mutation_and_leaves_no_trace(
    webhook: Webhook,
    make_namespace: Callable[..., str],
    control_plane: LocalControlPlane,
    kube_api: client.ApiClient,
) -> None:
    namespace = make_namespace(opted_in=True)
    decisions_before = webhook.decisions()
    result = control_plane.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        "--dry-run=server",
        "-o",
        "json",
        stdin=json.dumps(plain_job("dry")),
    )
    returned = json.loads(result.stdout)
    assert returned["spec"]["suspend"] is True
    assert returned["metadata"]["annotations"][keys.DECISION] == "deferred"

    with pytest.raises(ApiException) as missing:
        _batch(kube_api).read_namespaced_job("dry", namespace)
    assert missing.value.status == 404
    assert webhook.decisions() == decisions_before


def test_a_bad_annotation_is_refused_with_the_webhooks_message(
    webhook: Webhook, make_namespace: Callable[..., str], kube_api: client.ApiClient
) -> None:
    namespace = make_namespace(opted_in=True)
    bad = plain_job(_name(), {keys.MAX_DELAY: "2 days", keys.MODE: "sometimes"})
    with pytest.raises(ApiException) as refused:
        _batch(kube_api).create_namespaced_job(namespace, bad)
    message = str(refused.value.body)
    assert "greenlight: 2 problems" in message
    assert keys.MAX_DELAY in message
    assert keys.MODE in message


def test_users_may_release_early_but_not_edit_greenlights_annotations(
    webhook: Webhook, make_namespace: Callable[..., str], kube_api: client.ApiClient
) -> None:
    namespace = make_namespace(opted_in=True)
    batch = _batch(kube_api)
    name = _name()
    batch.create_namespaced_job(namespace, plain_job(name))

    with pytest.raises(ApiException) as refused:
        batch.patch_namespaced_job(
            name,
            namespace,
            {"metadata": {"annotations": {keys.RELEASE_AT: "2020-01-01T00:00:00Z"}}},
        )
    assert "written by greenlight only" in str(refused.value.body)

    batch.patch_namespaced_job(name, namespace, {"spec": {"suspend": False}})
    assert batch.read_namespaced_job(name, namespace).spec.suspend is False


def test_a_namespace_default_reaches_jobs_through_the_watch(
    webhook: Webhook, make_namespace: Callable[..., str], kube_api: client.ApiClient
) -> None:
    namespace = make_namespace(opted_in=True, annotations={keys.MODE: "observe"})
    batch = _batch(kube_api)

    def observed() -> bool:
        job = batch.create_namespaced_job(namespace, plain_job(_name()), dry_run="All")
        return bool(job.metadata.annotations.get(keys.DECISION) == "observed")

    wait_until(observed, timeout_s=30, what="the namespace default to reach the webhook")
    name = _name()
    batch.create_namespaced_job(namespace, plain_job(name))
    stored = batch.read_namespaced_job(name, namespace)
    assert stored.metadata.annotations[keys.DECISION] == "observed"
    assert stored.spec.suspend is False


def test_with_the_webhook_stopped_jobs_are_still_created(
    webhook: Webhook, make_namespace: Callable[..., str], kube_api: client.ApiClient
) -> None:
    namespace = make_namespace(opted_in=True)
    webhook.stop()
    name = _name()
    _batch(kube_api).create_namespaced_job(namespace, plain_job(name))
    stored = _batch(kube_api).read_namespaced_job(name, namespace)
    assert _greenlight_annotations(stored) == {}

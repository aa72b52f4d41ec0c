"""End-to-end fixtures: a real etcd + kube-apiserver for the session, and on demand the Job
controller, the scheduler and kwok with fake CPU and GPU nodes.

Fixtures (all built on ``webhook.devtools.localcluster.LocalControlPlane``):

- ``control_plane`` (session): etcd + kube-apiserver, RBAC on, admin kubeconfig
  (``control_plane.kubeconfig``, ``.server_url``, ``.kubectl(...)``, ``.environ()``,
  ``.issue_serving_certs(dir)`` -> caBundle for a server on this host).
- ``workloads_plane`` (session): the same plane plus kube-controller-manager, kube-scheduler and
  kwok with the nodes ``kwok-cpu-0`` and ``kwok-gpu-0`` (8 ``nvidia.com/gpu``, label
  ``nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB``): Job pods get scheduled, run and complete.
- ``kube_api`` (session): a ``kubernetes.client.ApiClient`` for the admin.
- ``make_namespace`` (function): ``make_namespace(opted_in=True, labels=..., annotations=...)``
  -> a fresh namespace name (``greenlight.dev/enabled=true`` when opted in).
- ``jobsets`` (session): the real JobSet controller, its CRD and webhooks
  (webhook/devtools/controllers.py).
- ``register_webhook`` (function): ``register_webhook(base_url, ca_bundle, effective=...)``
  registers greenlight's mutating and validating configurations the way the Helm chart does
  (``webhook.devtools.localcluster.host_webhook_configurations``), but with
  ``clientConfig.url`` (the server runs on this host), waits until the mutation shows and
  removes both configurations after the test.

A missing binary fails the run with the command that builds it; nothing is skipped.
``GREENLIGHT_E2E_LOGS=DIR`` keeps the session plane's component logs in DIR.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from webhook.devtools.controllers import jobset_controller
from webhook.devtools.localcluster import (
    OPT_IN_LABEL,
    WEBHOOK_CONFIGURATION_NAME,
    LocalClusterSettings,
    LocalControlPlane,
    MissingBinaryError,
    host_webhook_configurations,
    wait_until,
)

DECISION_ANNOTATION = "greenlight.dev/decision"
PROBE_NAMESPACE = "greenlight-e2e-probe"
# Set to a directory to keep the session control plane's component logs after the run.
KEEP_LOGS_ENV = "GREENLIGHT_E2E_LOGS"

_E2E_DIR = Path(__file__).parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report ends with the logs of the processes it started (a fixture value
    with ``failure_logs()``): CI keeps only what pytest prints."""
    report = yield
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            failure_logs = getattr(value, "failure_logs", None)
            if callable(failure_logs):
                report.sections.extend(failure_logs())
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[LocalControlPlane]:
    plane = LocalControlPlane(LocalClusterSettings())
    missing = _missing_binary(plane.start)
    if missing:
        pytest.fail(f"the end-to-end tests need the local control plane: {missing}", pytrace=False)
    try:
        yield plane
    finally:
        keep_logs = os.environ.get(KEEP_LOGS_ENV)
        if keep_logs:
            shutil.copytree(plane.workdir / "logs", Path(keep_logs), dirs_exist_ok=True)
        plane.stop()


@pytest.fixture(scope="session")
def workloads_plane(control_plane: LocalControlPlane) -> LocalControlPlane:
    missing = _missing_binary(control_plane.start_workloads)
    if missing:
        pytest.fail(f"the Job end-to-end tests need kwok and friends: {missing}", pytrace=False)
    return control_plane


@pytest.fixture(scope="session")
def jobsets(
    workloads_plane: LocalControlPlane, kube_api: client.ApiClient, tmp_path_factory: Any
) -> Iterator[None]:
    """The real JobSet controller (and its CRD and webhooks) for the rest of the session."""
    with jobset_controller(workloads_plane, kube_api, tmp_path_factory.mktemp("jobset")):
        yield


def _missing_binary(start: Callable[[], object]) -> str:
    """Run ``start``; the message of a MissingBinaryError, '' when it started. (The failure is
    reported outside the ``except`` so that pytest shows the message, not a chained trace.)"""
    try:
        start()
    except MissingBinaryError as e:
        return str(e)
    return ""


@pytest.fixture(scope="session")
def kube_api(control_plane: LocalControlPlane) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def make_namespace(kube_api: client.ApiClient) -> Iterator[Callable[..., str]]:
    core = client.CoreV1Api(kube_api)
    created: list[str] = []

    def make(
        opted_in: bool = True,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> str:
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        all_labels = {**({OPT_IN_LABEL: "true"} if opted_in else {}), **(labels or {})}
        core.create_namespace(
            {"metadata": {"name": name, "labels": all_labels, "annotations": annotations or {}}}
        )
        created.append(name)
        return name

    yield make
    for name in created:
        # Namespaces are only emptied by the namespace controller (workloads_plane); without
        # it they stay Terminating, which harms nothing in a throwaway cluster.
        try:
            core.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


def probe_job(name: str = "greenlight-probe") -> dict[str, Any]:
    """A minimal Job, for dry-run probes."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            }
        },
    }


@dataclass(frozen=True)
class WebhookRegistration:
    """What ``register_webhook`` applied."""

    name: str
    mutating: dict[str, Any]
    validating: dict[str, Any]
    probe_namespace: str


@pytest.fixture
def register_webhook(
    control_plane: LocalControlPlane, kube_api: client.ApiClient
) -> Iterator[Callable[..., WebhookRegistration]]:
    core = client.CoreV1Api(kube_api)
    batch = client.BatchV1Api(kube_api)
    registered: list[str] = []

    def mutation_shows() -> bool:
        job = batch.create_namespaced_job(PROBE_NAMESPACE, probe_job(), dry_run="All")
        return DECISION_ANNOTATION in (job.metadata.annotations or {})

    def register(
        base_url: str,
        ca_bundle: str,
        *,
        name: str = WEBHOOK_CONFIGURATION_NAME,
        effective: Callable[[], bool] | None = None,
        timeout_s: float = 60.0,
    ) -> WebhookRegistration:
        """Register greenlight's webhooks at ``base_url`` (e.g. ``https://127.0.0.1:8443``) with
        kubectl, as ``greenlight demo`` does, and poll until ``effective()`` (default: a dry-run
        Job in an opted-in probe namespace comes back with a ``greenlight.dev/decision``
        annotation)."""
        try:
            core.create_namespace(
                {"metadata": {"name": PROBE_NAMESPACE, "labels": {OPT_IN_LABEL: "true"}}}
            )
        except ApiException as e:
            if e.status != 409:
                raise
        registered.append(name)
        control_plane.register_host_webhook(base_url, ca_bundle, name=name)
        wait_until(
            effective or mutation_shows,
            timeout_s=timeout_s,
            what=f"the webhook at {base_url} to take effect",
        )
        mutating, validating = host_webhook_configurations(base_url, ca_bundle, name=name)
        return WebhookRegistration(name, mutating, validating, PROBE_NAMESPACE)

    yield register
    for name in registered:
        control_plane.unregister_host_webhook(name)

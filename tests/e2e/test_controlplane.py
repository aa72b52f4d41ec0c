"""The local control plane itself: the apiserver with RBAC, Jobs running to completion on kwok's
nodes, a webhook on this host registered by URL, and a teardown that leaves nothing behind."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from webhook.devtools import localcluster
from webhook.devtools.localcluster import (
    GPU_NODE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    OPT_IN_LABEL,
    LocalClusterSettings,
    LocalControlPlane,
    MissingBinaryError,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)

DECISION_ANNOTATION = "greenlight.dev/decision"


def job(name: str, *, gpus: int = 0, gpu_product: str | None = None) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox"}],
    }
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod_spec}},
    }
    if gpus:
        pod_spec["containers"][0]["resources"] = {"limits": {GPU_RESOURCE: str(gpus)}}
    if gpu_product:
        pod_spec["nodeSelector"] = {GPU_PRODUCT_LABEL: gpu_product}
    return manifest


def test_apiserver_reports_its_stamped_version(control_plane: LocalControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"] == version["clientVersion"]["gitVersion"]


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        pytest.param(None, "yes", id="admin-client-cert"),
        pytest.param("system:serviceaccount:default:nobody", "no", id="unbound-service-account"),
    ],
)
def test_rbac_decides_who_may_create_jobs(
    control_plane: LocalControlPlane, user: str | None, allowed: str
) -> None:
    args = ["auth", "can-i", "create", "jobs", "-n", "default"]
    if user:
        args.append(f"--as={user}")
    assert control_plane.kubectl(*args, check=False).stdout.strip() == allowed


def test_python_client_talks_to_the_apiserver_as_admin(kube_api: client.ApiClient) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(kube_api).list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_gpu_job_runs_to_completion_on_the_gpu_node(
    workloads_plane: LocalControlPlane,
    kube_api: client.ApiClient,
    make_namespace: Callable[..., str],
) -> None:
    namespace = make_namespace(opted_in=False)
    manifest = job("train", gpus=1, gpu_product=GPU_NODE.gpu_product)
    workloads_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    workloads_plane.kubectl(
        "wait", "-n", namespace, "--for=condition=Complete", "job/train", "--timeout=120s",
        timeout_s=130,
    )  # fmt: skip
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector="job-name=train"
    )
    assert [(p.spec.node_name, p.status.phase) for p in pods.items] == [
        (GPU_NODE.name, "Succeeded")
    ]


def test_job_asking_for_more_gpus_than_any_node_has_stays_unschedulable(
    workloads_plane: LocalControlPlane,
    kube_api: client.ApiClient,
    make_namespace: Callable[..., str],
) -> None:
    namespace = make_namespace(opted_in=False)
    too_many = GPU_NODE.gpus + 1
    client.BatchV1Api(kube_api).create_namespaced_job(namespace, job("greedy", gpus=too_many))
    core = client.CoreV1Api(kube_api)

    def unschedulable_reason() -> str:
        for pod in core.list_namespaced_pod(namespace, label_selector="job-name=greedy").items:
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return str(condition.message)
        return ""

    message = wait_until(unschedulable_reason, timeout_s=60, what="the scheduler to give up")
    assert f"Insufficient {GPU_RESOURCE}" in message


class _ProbeAdmission(BaseHTTPRequestHandler):
    """Allows every Job and, on /mutate, adds the decision annotation greenlight would add."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        if urlsplit(self.path).path == "/mutate":
            annotations = review["request"]["object"]["metadata"].get("annotations")
            patch = (
                [{"op": "add", "path": "/metadata/annotations", "value": {}}]
                if annotations is None
                else []
            )
            patch.append(
                {
                    "op": "add",
                    "path": "/metadata/annotations/" + DECISION_ANNOTATION.replace("/", "~1"),
                    "value": "probe",
                }
            )
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        body = json.dumps({**review, "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def probe_webhook(
    control_plane: LocalControlPlane, tmp_path: Path
) -> Iterator[tuple[str, str, ThreadingHTTPServer]]:
    """An HTTPS admission server on 127.0.0.1: (base URL, caBundle, server)."""
    ca_bundle = control_plane.issue_serving_certs(tmp_path / "certs")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "certs" / "tls.crt", tmp_path / "certs" / "tls.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProbeAdmission)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca_bundle, server
    server.shutdown()
    server.server_close()
    thread.join()


def test_webhook_on_this_host_judges_only_jobs_in_opted_in_namespaces_and_fails_open(
    kube_api: client.ApiClient,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., object],
    probe_webhook: tuple[str, str, ThreadingHTTPServer],
) -> None:
    base_url, ca_bundle, server = probe_webhook
    register_webhook(base_url, ca_bundle)
    batch = client.BatchV1Api(kube_api)
    opted_in, unlabelled = make_namespace(opted_in=True), make_namespace(opted_in=False)
    client.CoreV1Api(kube_api).patch_namespace(
        "kube-system", {"metadata": {"labels": {OPT_IN_LABEL: "true"}}}
    )
    try:
        decisions = {
            namespace: (
                batch.create_namespaced_job(namespace, job("probe"), dry_run="All").metadata
            ).annotations
            or {}
            for namespace in (opted_in, unlabelled, "kube-system")
        }
    finally:
        client.CoreV1Api(kube_api).patch_namespace(
            "kube-system", {"metadata": {"labels": {OPT_IN_LABEL: None}}}
        )
    assert decisions[opted_in].get(DECISION_ANNOTATION) == "probe"
    assert DECISION_ANNOTATION not in decisions[unlabelled]
    assert DECISION_ANNOTATION not in decisions["kube-system"]

    server.shutdown()
    server.server_close()
    created = batch.create_namespaced_job(opted_in, job("while-webhook-down"))
    assert DECISION_ANNOTATION not in (created.metadata.annotations or {})


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_teardown_leaves_no_process_and_no_temp_dir_even_when_the_body_fails() -> None:
    plane = LocalControlPlane(LocalClusterSettings())
    pids: dict[str, int] = {}

    def failing_test_body() -> None:
        with plane:
            plane.start_workloads()
            pids.update(plane.pids)
            assert all(_group_exists(pid) for pid in pids.values())
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_test_body()
    assert set(pids) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    assert [name for name, pid in pids.items() if _group_exists(pid)] == []
    assert not plane.workdir.exists()
    assert not plane.running


def test_missing_binary_names_it_and_the_build_command(tmp_path: Path) -> None:
    plane = LocalControlPlane(LocalClusterSettings(bin_dir=tmp_path))
    with pytest.raises(MissingBinaryError, match=r"etcd not found .*hack/build-control-plane\.sh"):
        plane.start()
    assert not plane.workdir.exists()


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


_OWNER_SCRIPT = """
import sys
from webhook.devtools.localcluster import LocalControlPlane
plane = LocalControlPlane().start()
plane.start_workloads()
print(" ".join(str(pid) for pid in plane.pids.values()), plane.workdir, flush=True)
sys.stdin.read()
"""


def test_components_die_with_a_killed_owner_and_the_next_plane_removes_its_workdir(
    control_plane: LocalControlPlane,
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=control_plane.environ(),
        text=True,
    ) as owner:
        assert owner.stdout is not None
        *pids, workdir = owner.stdout.readline().split()
        owner.kill()
    wait_until(
        lambda: all(_dead(int(pid)) for pid in pids),
        timeout_s=30,
        what="the components of a SIGKILLed owner to die",
    )
    assert Path(workdir).exists()
    LocalControlPlane().stop()
    assert not Path(workdir).exists()


def test_a_port_taken_before_etcd_binds_it_is_retried_on_fresh_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_free_port = localcluster.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(
            localcluster, "free_port", lambda: next(ports, None) or real_free_port()
        )
        with LocalControlPlane(LocalClusterSettings()) as plane:
            assert plane.etcd_port != taken.getsockname()[1]
            assert "address already in use" in plane.log_tail("etcd", lines=200)
            assert plane.kubectl("get", "--raw=/readyz").stdout == "ok"

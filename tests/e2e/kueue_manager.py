"""The real Kueue manager (v0.17.0, built by hack/build-controllers.sh) on the local control plane.

Started as docs/dev/controllers.md says: Kueue's CRDs applied server-side, internal cert
management off (its rotator issues for a Service name a URL on 127.0.0.1 can never match), the
metrics cert directory given through the build's ``KUEUE_METRICS_CERT_DIR`` patch, the
VisibilityOnDemand gate off (its API server would exit the process), only the ``batch/job``
framework, and only the webhooks Kueue serves for it registered with the apiserver by URL, with
a namespaceSelector that keeps kube-system and kueue-system out (all upstream hooks fail closed).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client

from webhook.devtools.localcluster import LocalControlPlane, free_port, wait_until

CONTROLLERS = Path(
    os.environ.get("GREENLIGHT_CONTROLLERS_DIR", "~/.cache/greenlight/tools/controllers")
).expanduser()
MUTATING = ("mclusterqueue.kb.io", "mresourceflavor.kb.io", "mworkload.kb.io", "mjob.kb.io")
VALIDATING = (
    "vclusterqueue.kb.io",
    "vcohort.kb.io",
    "vresourceflavor.kb.io",
    "vworkload.kb.io",
    "vjob.kb.io",
)
JOB_HOOKS = ("mjob.kb.io", "vjob.kb.io")
OUTSIDE = {
    "matchExpressions": [
        {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["kube-system", "kueue-system"],
        }
    ]
}


def _hooks(kind: str, names: tuple[str, ...], port: int, ca_bundle: str) -> dict[str, Any]:
    documents = list(yaml.safe_load_all((CONTROLLERS / "webhooks" / "kueue.yaml").read_text()))
    upstream = next(d for d in documents if d and d.get("kind") == kind)
    hooks = []
    for hook in upstream["webhooks"]:
        if hook["name"] not in names:
            continue
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
        if hook["name"] in JOB_HOOKS:
            hook["namespaceSelector"] = OUTSIDE
        hooks.append(hook)
    prefix = "mutating" if kind.startswith("Mutating") else "validating"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": f"kueue-{prefix}-webhook-configuration"},
        "webhooks": hooks,
    }


@contextmanager
def kueue_manager(
    plane: LocalControlPlane, api: client.ApiClient, workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Install Kueue's CRDs and webhooks and run its manager until the block ends."""
    binary = CONTROLLERS / "kueue"
    if not binary.exists():
        raise AssertionError(f"no Kueue manager at {binary}: run hack/build-controllers.sh")
    plane.kubectl("apply", "--server-side", "-f", f"{CONTROLLERS / 'crds' / 'kueue'}/")
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": "kueue-system"}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    ca_bundle = plane.issue_serving_certs(certs)
    port, health = free_port(), free_port()
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"port": port, "host": "127.0.0.1", "certDir": str(certs)},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }
    config_path = workdir / "kueue-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "kueue.log"
    process = subprocess.Popen(
        [str(binary), f"--kubeconfig={plane.kubeconfig}", f"--config={config_path}"],
        env={**os.environ, "KUEUE_METRICS_CERT_DIR": str(certs)},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    admission = client.AdmissionregistrationV1Api(api)
    try:

        def alive() -> None:
            if process.poll() is not None:
                raise AssertionError(f"kueue exited: {log_path.read_text()[-3000:]}")

        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=2).status_code == 200,
            timeout_s=120,
            what="the Kueue manager to be ready",
            still_possible=alive,
        )
        mutating = _hooks("MutatingWebhookConfiguration", MUTATING, port, ca_bundle)
        validating = _hooks("ValidatingWebhookConfiguration", VALIDATING, port, ca_bundle)
        admission.create_mutating_webhook_configuration(mutating)
        admission.create_validating_webhook_configuration(validating)
        yield process
    finally:
        for name, delete in (
            (
                "kueue-mutating-webhook-configuration",
                admission.delete_mutating_webhook_configuration,
            ),
            (
                "kueue-validating-webhook-configuration",
                admission.delete_validating_webhook_configuration,
            ),
        ):
            try:
                delete(name)
            except client.ApiException as e:
                if e.status != 404:
                    raise
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

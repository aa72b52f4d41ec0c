"""The real Kueue manager (v0.17.0, built by hack/build-controllers.sh) on the local control plane.

Started as docs/dev/controllers.md says: Kueue's CRDs applied server-side, internal cert
management off (its rotator issues for a Service name a URL on 127.0.0.1 can never match), the
metrics cert directory given through the build's ``KUEUE_METRICS_CERT_DIR`` patch, the
VisibilityOnDemand gate off (its API server would exit the process), the ``batch/job`` and
``jobset.x-k8s.io/jobset`` frameworks (the JobSet CRD is installed first), and only the
webhooks Kueue serves for them registered with the apiserver by URL, with a namespaceSelector
that keeps kube-system and kueue-system out (all upstream hooks fail closed).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from controllers import binary, controller, install_crds, url_hooks
from kubernetes import client

from webhook.devtools.localcluster import LocalControlPlane, free_port

MUTATING = (
    "mclusterqueue.kb.io",
    "mresourceflavor.kb.io",
    "mworkload.kb.io",
    "mjob.kb.io",
    "mjobset.kb.io",
)
VALIDATING = (
    "vclusterqueue.kb.io",
    "vcohort.kb.io",
    "vresourceflavor.kb.io",
    "vworkload.kb.io",
    "vjob.kb.io",
    "vjobset.kb.io",
)
OUTSIDE = {
    "namespaceSelector": {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "kueue-system"],
            }
        ]
    }
}
JOB_HOOKS = {
    name: OUTSIDE for name in ("mjob.kb.io", "vjob.kb.io", "mjobset.kb.io", "vjobset.kb.io")
}


@contextmanager
def kueue_manager(
    plane: LocalControlPlane, api: client.ApiClient, workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Install Kueue's CRDs and webhooks and run its manager until the block ends (the JobSet
    CRD must be installed: Kueue manages JobSets too)."""
    manager = binary("kueue")
    install_crds(plane, "kueue")
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
        "integrations": {"frameworks": ["batch/job", "jobset.x-k8s.io/jobset"]},
        "featureGates": {"VisibilityOnDemand": False},
    }
    config_path = workdir / "kueue-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    webhooks = [
        url_hooks("kueue", kind, names, port, ca_bundle, selectors=JOB_HOOKS)
        for kind, names in (
            ("MutatingWebhookConfiguration", MUTATING),
            ("ValidatingWebhookConfiguration", VALIDATING),
        )
    ]
    with controller(
        api,
        "kueue",
        [str(manager), f"--kubeconfig={plane.kubeconfig}", f"--config={config_path}"],
        log_path=workdir / "kueue.log",
        health_port=health,
        webhooks=webhooks,
        env={"KUEUE_METRICS_CERT_DIR": str(certs)},
    ) as process:
        yield process

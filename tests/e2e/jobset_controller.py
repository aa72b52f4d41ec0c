"""The real JobSet controller (v0.10.1, built by hack/build-controllers.sh) on the local control
plane, as docs/dev/controllers.md describes: its CRD applied server-side, internal cert
management off, a serving cert for 127.0.0.1, and its four webhooks registered by URL (the pod
hooks only for pods of a JobSet, as upstream's kustomize patch says: they fail closed).
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

JOBSET_PODS = {
    "objectSelector": {
        "matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]
    }
}
POD_HOOKS = {"mpod.kb.io": JOBSET_PODS, "vpod.kb.io": JOBSET_PODS}


@contextmanager
def jobset_controller(
    plane: LocalControlPlane, api: client.ApiClient, workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Install the JobSet CRD and webhooks and run its controller until the block ends."""
    manager = binary("jobset")
    install_crds(plane, "jobset")
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    ca_bundle = plane.issue_serving_certs(certs)
    port, health = free_port(), free_port()
    config = {
        "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"port": port, "host": "127.0.0.1", "certDir": str(certs)},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
    }
    config_path = workdir / "jobset-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    webhooks = [
        url_hooks(
            "jobset",
            "MutatingWebhookConfiguration",
            ("mjobset.kb.io", "mpod.kb.io"),
            port,
            ca_bundle,
            selectors=POD_HOOKS,
        ),
        url_hooks(
            "jobset",
            "ValidatingWebhookConfiguration",
            ("vjobset.kb.io", "vpod.kb.io"),
            port,
            ca_bundle,
            selectors=POD_HOOKS,
        ),
    ]
    with controller(
        api,
        "jobset",
        [
            str(manager),
            f"--kubeconfig={plane.kubeconfig}",
            f"--config={config_path}",
            "--zap-devel=false",
        ],
        log_path=workdir / "jobset.log",
        health_port=health,
        webhooks=webhooks,
    ) as process:
        yield process

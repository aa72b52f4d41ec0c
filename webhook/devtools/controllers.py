"""Upstream workload controllers on the local control plane: the JobSet controller and the
Kueue manager, built from source by hack/build-controllers.sh (cached outside the clone,
``GREENLIGHT_CONTROLLERS_DIR``), started as docs/dev/controllers.md describes.

Common to both: CRDs applied server-side (they are over the client-side size limit), a serving
cert from the cluster CA for 127.0.0.1, the process until its /readyz answers, then only the
webhooks it serves registered with the apiserver by URL (upstream they name a Service), under
names that cannot collide between controllers. Everything is undone when the block ends.

- JobSet (v0.10.1): internal cert management off; its four webhooks, the pod hooks only for pods
  of a JobSet, as upstream's kustomize patch says (they fail closed).
- Kueue (v0.17.0): internal cert management off (its rotator issues for a Service name a URL on
  127.0.0.1 can never match), the metrics cert directory given through the build's
  ``KUEUE_METRICS_CERT_DIR`` patch, the VisibilityOnDemand gate off (its API server would exit
  the process), the ``batch/job`` and ``jobset.x-k8s.io/jobset`` frameworks (start the JobSet
  controller first: its CRD must be there), and only those webhooks, with a namespaceSelector
  that keeps kube-system and kueue-system out (all upstream hooks fail closed).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
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
"""Where hack/build-controllers.sh puts the binaries, CRDs and upstream webhook manifests."""


def binary(name: str) -> Path:
    path = CONTROLLERS / name
    if not path.exists():
        raise AssertionError(f"no {name} controller at {path}: run hack/build-controllers.sh")
    return path


def install_crds(plane: LocalControlPlane, component: str) -> None:
    """Apply ``component``'s CRDs (server-side: they are over the client-side size limit)."""
    plane.kubectl("apply", "--server-side", "-f", f"{CONTROLLERS / 'crds' / component}/")
    # Right after the apply a CRD may have no conditions yet, which `kubectl wait` refuses.
    wait_until(
        lambda: (
            plane.kubectl(
                "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s", check=False
            ).returncode
            == 0
        ),
        timeout_s=120,
        what=f"the {component} CRDs to be established",
    )


def url_hooks(
    component: str,
    kind: str,
    names: Sequence[str],
    port: int,
    ca_bundle: str,
    *,
    selectors: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The upstream ``kind`` configuration of ``component`` with only the hooks ``names``,
    each pointed at ``https://127.0.0.1:port<path>``; ``selectors`` maps a hook name to the
    selectors (``namespaceSelector``, ``objectSelector``) to give it, as the upstream
    kustomize patches do. Named ``<component>-mutating|validating-webhook-configuration``."""
    documents = yaml.safe_load_all((CONTROLLERS / "webhooks" / f"{component}.yaml").read_text())
    upstream = next(d for d in documents if d and d.get("kind") == kind)
    hooks = []
    for hook in upstream["webhooks"]:
        if hook["name"] not in names:
            continue
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
        hook.update((selectors or {}).get(hook["name"], {}))
        hooks.append(hook)
    missing = set(names) - {hook["name"] for hook in hooks}
    if missing:
        raise AssertionError(f"{component} has no webhooks {sorted(missing)} in its manifests")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": configuration_name(component, kind)},
        "webhooks": hooks,
    }


def configuration_name(component: str, kind: str) -> str:
    prefix = "mutating" if kind.startswith("Mutating") else "validating"
    return f"{component}-{prefix}-webhook-configuration"


@contextmanager
def controller(
    api: client.ApiClient,
    component: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    health_port: int,
    webhooks: Sequence[dict[str, Any]] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; register ``webhooks`` once it is ready."""
    process = subprocess.Popen(  # noqa: S603 (a controller binary this harness built)
        list(argv),
        env={**os.environ, **(env or {})},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    admission: Any = client.AdmissionregistrationV1Api(api)
    registered: list[dict[str, Any]] = []
    try:

        def alive() -> None:
            if process.poll() is not None:
                raise AssertionError(f"{component} exited: {log_path.read_text()[-3000:]}")

        wait_until(
            lambda: (
                httpx.get(f"http://127.0.0.1:{health_port}/readyz", timeout=2).status_code == 200
            ),
            timeout_s=120,
            what=f"the {component} controller to be ready",
            still_possible=alive,
        )
        for configuration in webhooks:
            if configuration["kind"] == "MutatingWebhookConfiguration":
                admission.create_mutating_webhook_configuration(configuration)
            else:
                admission.create_validating_webhook_configuration(configuration)
            registered.append(configuration)
        yield process
    finally:
        for configuration in registered:
            name = configuration["metadata"]["name"]
            delete = (
                admission.delete_mutating_webhook_configuration
                if configuration["kind"] == "MutatingWebhookConfiguration"
                else admission.delete_validating_webhook_configuration
            )
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


# --- JobSet ----------------------------------------------------------------------------------

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


# --- Kueue -----------------------------------------------------------------------------------

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
    core: Any = client.CoreV1Api(api)
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

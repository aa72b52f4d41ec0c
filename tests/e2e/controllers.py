"""Run an upstream workload controller (built by hack/build-controllers.sh) on the local control
plane, as docs/dev/controllers.md describes: CRDs applied server-side, a serving cert from the
cluster CA for 127.0.0.1, the controller's process until its /readyz answers, then only the
webhooks it serves registered with the apiserver by URL (upstream they name a Service), under
names that cannot collide between controllers. Everything is undone when the block ends.
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

from webhook.devtools.localcluster import LocalControlPlane, wait_until

CONTROLLERS = Path(
    os.environ.get("GREENLIGHT_CONTROLLERS_DIR", "~/.cache/greenlight/tools/controllers")
).expanduser()


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
    process = subprocess.Popen(
        list(argv),
        env={**os.environ, **(env or {})},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    admission = client.AdmissionregistrationV1Api(api)
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

"""The chart on the real apiserver: manifests/ accepted by `kubectl apply --dry-run=server`; the
RBAC applied for real and checked with `kubectl auth can-i` as each service account (everything
the code calls, and a sample of what it must not do); and greenlight's own commands run with
those service accounts' tokens: bootstrap-certs, release-all and reconcile.

The RBAC tests render the chart as release ``gl-e2e`` in namespace ``gl-e2e-system`` so that
nothing collides with the ``greenlight`` webhook configurations other e2e tests register.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from webhook.core.provenance import load_keys
from webhook.devtools.localcluster import LocalControlPlane, free_port, resolve_bin_dir, wait_until
from webhook.workloads.job import JOB
from webhook.workloads.kinds import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "greenlight"
RELEASE = "gl-e2e"
NAMESPACE = "gl-e2e-system"
FULLNAME = "gl-e2e-greenlight"
WEBHOOK_SA = f"{FULLNAME}-webhook"
RECONCILER_SA = f"{FULLNAME}-reconciler"
UNINSTALL_SA = f"{FULLNAME}-uninstall"
TLS_SECRET = f"{FULLNAME}-webhook-tls"
Doc = dict[str, Any]


def kubectl_json(plane: LocalControlPlane, *args: str) -> Doc:
    result: Doc = json.loads(plane.kubectl(*args, "-o", "json").stdout)
    return result


def apply(plane: LocalControlPlane, docs: list[Doc], *extra: str) -> str:
    items = {"apiVersion": "v1", "kind": "List", "items": docs}
    return plane.kubectl("apply", *extra, "-f", "-", stdin=json.dumps(items)).stdout


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    """The chart with hooks, as release gl-e2e in gl-e2e-system (ServiceMonitor and
    NetworkPolicy on, so the server validates them too... except the ServiceMonitor, whose CRD
    this cluster lacks)."""
    helm = resolve_bin_dir() / "helm"
    result = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            "v1.35.4",
            "--set",
            "networkPolicy.enabled=true",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def of_kind(docs: list[Doc], *kinds: str) -> list[Doc]:
    return [d for d in docs if d["kind"] in kinds]


@pytest.fixture(scope="module")
def installed_rbac(control_plane: LocalControlPlane, rendered: list[Doc]) -> Iterator[None]:
    """Namespace, service accounts and RBAC of the chart (hooks included), applied for real."""
    control_plane.kubectl("create", "namespace", NAMESPACE)
    rbac = of_kind(
        rendered, "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"
    )
    apply(control_plane, rbac)
    yield
    for doc in of_kind(rendered, "ClusterRole", "ClusterRoleBinding"):
        control_plane.kubectl(
            "delete", "--ignore-not-found", doc["kind"].lower(), doc["metadata"]["name"]
        )


# --- the rendered manifests are valid for the apiserver ---------------------------------------


@pytest.mark.parametrize("name", ["greenlight.yaml", "uninstall.yaml"])
def test_plain_manifests_are_accepted_by_server_side_dry_run(
    control_plane: LocalControlPlane, name: str
) -> None:
    # Namespaced objects of a server-side dry run need their namespace to exist.
    control_plane.kubectl("create", "namespace", "greenlight", check=False)
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", str(ROOT / "manifests" / name)
    )
    assert "(server dry run)" in result.stdout
    assert "error" not in result.stdout.lower()


def test_every_rendered_object_is_accepted_by_server_side_dry_run(
    control_plane: LocalControlPlane, installed_rbac: None, rendered: list[Doc]
) -> None:
    docs = [d for d in rendered if d["kind"] != "ServiceMonitor"]
    output = apply(control_plane, docs, "--dry-run=server")
    assert output.count("(server dry run)") == len(docs)


# --- RBAC: exactly what the code calls --------------------------------------------------------

YES, NO = True, False
CAN_I: list[tuple[str, str, str, str | None, bool]] = [
    # webhook: namespace defaults (list + watch), certificates (its Secret, its configurations)
    (WEBHOOK_SA, "list", "namespaces", None, YES),
    (WEBHOOK_SA, "watch", "namespaces", None, YES),
    (WEBHOOK_SA, "get", f"secrets/{TLS_SECRET}", NAMESPACE, YES),
    (WEBHOOK_SA, "update", f"secrets/{TLS_SECRET}", NAMESPACE, YES),
    (WEBHOOK_SA, "get", f"mutatingwebhookconfigurations/{FULLNAME}", None, YES),
    (WEBHOOK_SA, "patch", f"mutatingwebhookconfigurations/{FULLNAME}", None, YES),
    (WEBHOOK_SA, "patch", f"validatingwebhookconfigurations/{FULLNAME}", None, YES),
    (WEBHOOK_SA, "get", "secrets/other", NAMESPACE, NO),
    (WEBHOOK_SA, "list", "secrets", NAMESPACE, NO),
    (WEBHOOK_SA, "create", "secrets", NAMESPACE, NO),
    (WEBHOOK_SA, "get", f"secrets/{TLS_SECRET}", "default", NO),
    (WEBHOOK_SA, "patch", "mutatingwebhookconfigurations/someone-else", None, NO),
    (WEBHOOK_SA, "delete", f"mutatingwebhookconfigurations/{FULLNAME}", None, NO),
    (WEBHOOK_SA, "create", "mutatingwebhookconfigurations", None, NO),
    (WEBHOOK_SA, "patch", "namespaces", None, NO),
    (WEBHOOK_SA, "list", "jobs.batch", "default", NO),
    # reconciler: Jobs, Events, its Lease and its history ConfigMap
    (RECONCILER_SA, "list", "jobs.batch", None, YES),
    (RECONCILER_SA, "watch", "jobs.batch", "default", YES),
    (RECONCILER_SA, "get", "jobs.batch", "default", YES),
    (RECONCILER_SA, "patch", "jobs.batch", "default", YES),
    (RECONCILER_SA, "create", "events", "default", YES),
    (RECONCILER_SA, "list", "events", None, YES),
    (RECONCILER_SA, "create", "leases.coordination.k8s.io", NAMESPACE, YES),
    (RECONCILER_SA, "get", f"leases.coordination.k8s.io/{RECONCILER_SA}", NAMESPACE, YES),
    (RECONCILER_SA, "update", f"leases.coordination.k8s.io/{RECONCILER_SA}", NAMESPACE, YES),
    (RECONCILER_SA, "create", "configmaps", NAMESPACE, YES),
    (RECONCILER_SA, "get", f"configmaps/{FULLNAME}-intensity-history", NAMESPACE, YES),
    (RECONCILER_SA, "update", f"configmaps/{FULLNAME}-intensity-history", NAMESPACE, YES),
    (RECONCILER_SA, "delete", "jobs.batch", "default", NO),
    (RECONCILER_SA, "create", "jobs.batch", "default", NO),
    (RECONCILER_SA, "update", "jobs.batch", "default", NO),
    (RECONCILER_SA, "patch", "jobs.batch#status", "default", NO),
    (RECONCILER_SA, "create", "pods", "default", NO),
    (RECONCILER_SA, "get", "secrets", NAMESPACE, NO),
    (RECONCILER_SA, "update", "leases.coordination.k8s.io/kube-scheduler", "kube-system", NO),
    (RECONCILER_SA, "update", "leases.coordination.k8s.io/other", NAMESPACE, NO),
    (RECONCILER_SA, "get", f"configmaps/{FULLNAME}-intensity-history", "default", NO),
    (RECONCILER_SA, "update", "configmaps/other", NAMESPACE, NO),
    (RECONCILER_SA, "delete", "events", "default", NO),
    (RECONCILER_SA, "list", "namespaces", None, NO),
    # uninstall hook: release Jobs, record Events, remove its own mutating configuration
    (UNINSTALL_SA, "list", "jobs.batch", None, YES),
    (UNINSTALL_SA, "get", "jobs.batch", "default", YES),
    (UNINSTALL_SA, "patch", "jobs.batch", "default", YES),
    (UNINSTALL_SA, "create", "events", "default", YES),
    (UNINSTALL_SA, "delete", f"mutatingwebhookconfigurations/{FULLNAME}", None, YES),
    (UNINSTALL_SA, "delete", "mutatingwebhookconfigurations/someone-else", None, NO),
    (UNINSTALL_SA, "delete", f"validatingwebhookconfigurations/{FULLNAME}", None, NO),
    (UNINSTALL_SA, "delete", "jobs.batch", "default", NO),
    (UNINSTALL_SA, "watch", "jobs.batch", None, NO),
    (UNINSTALL_SA, "get", "secrets", NAMESPACE, NO),
]  # fmt: skip


@pytest.mark.parametrize(
    ("account", "verb", "resource", "namespace", "allowed"),
    [
        pytest.param(*row, id=f"{row[0].removeprefix(FULLNAME + '-')}-{row[1]}-{row[2]}"
                     f"-{row[3] or 'cluster'}")
        for row in CAN_I
    ],
)  # fmt: skip
def test_service_account_can_do_what_the_code_needs_and_no_more(
    control_plane: LocalControlPlane,
    installed_rbac: None,
    account: str,
    verb: str,
    resource: str,
    namespace: str | None,
    allowed: bool,
) -> None:
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition("#")  # "jobs.batch#status"
    if subresource:
        scope.append(f"--subresource={subresource}")
    result = control_plane.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        *scope,
        f"--as=system:serviceaccount:{NAMESPACE}:{account}",
        check=False,
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    assert (answer == "yes") is allowed


# --- greenlight's commands, run with the service accounts' own tokens -------------------------


@pytest.fixture(scope="module")
def kubeconfig_for(
    control_plane: LocalControlPlane, installed_rbac: None, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """A kubeconfig holding a token of service account ``name`` (TokenRequest API)."""
    directory = tmp_path_factory.mktemp("tokens")

    def make(name: str) -> Path:
        token = control_plane.kubectl(
            "create", "token", name, "-n", NAMESPACE, "--duration=1h"
        ).stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": control_plane.server_url,
                        "certificate-authority-data": base64.b64encode(
                            control_plane.ca_cert_pem
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
            "current-context": name,
        }
        path = directory / f"{name}.kubeconfig"
        path.write_text(json.dumps(config))
        return path

    return make


def greenlight(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def webhook_configurations(
    control_plane: LocalControlPlane, rendered: list[Doc]
) -> Iterator[list[Doc]]:
    """The chart's two webhook configurations, applied for real (to a Service with no Pods:
    failurePolicy Ignore keeps every other test's Jobs flowing) and removed afterwards."""
    docs = of_kind(rendered, "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    apply(control_plane, docs)
    yield docs
    for doc in docs:
        control_plane.kubectl("delete", "--ignore-not-found", doc["kind"].lower(), FULLNAME)


def test_bootstrap_certs_as_the_webhook_account_fills_the_secret_and_injects_ca_bundle(
    control_plane: LocalControlPlane,
    rendered: list[Doc],
    kubeconfig_for: Callable[[str], Path],
    webhook_configurations: list[Doc],
) -> None:
    secret = next(
        d for d in rendered if d["kind"] == "Secret" and d["metadata"]["name"] == TLS_SECRET
    )
    apply(control_plane, [secret])
    args = (
        "bootstrap-certs",
        f"--kubeconfig={kubeconfig_for(WEBHOOK_SA)}",
        f"--namespace={NAMESPACE}",
        f"--secret={TLS_SECRET}",
        f"--service={WEBHOOK_SA}",
        f"--webhook-configuration={FULLNAME}",
        "--timeout=30",
    )
    first = greenlight(*args)
    assert first.returncode == 0, first.stderr
    assert "no certificates yet" in first.stdout

    stored = kubectl_json(control_plane, "get", "secret", TLS_SECRET, "-n", NAMESPACE)
    assert set(stored["data"]) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        configuration = kubectl_json(control_plane, "get", kind, FULLNAME)
        for hook in configuration["webhooks"]:
            assert hook["clientConfig"]["caBundle"] == stored["data"]["ca.crt"]

    again = greenlight(*args)
    assert again.returncode == 0, again.stderr
    assert "current certificates are valid" in again.stdout
    unchanged = kubectl_json(control_plane, "get", "secret", TLS_SECRET, "-n", NAMESPACE)
    assert unchanged["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


def job(name: str, *, suspend: bool, annotations: dict[str, str]) -> Doc:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "suspend": suspend,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            },
        },
    }


def deferred(release_by: str = "2099-01-01T00:00:00Z") -> dict[str, str]:
    """The annotations the webhook writes on a Job it defers (planned for 2026-01-01)."""
    return {
        "greenlight.dev/decision": "deferred",
        "greenlight.dev/admitted-at": "2025-12-31T23:00:00Z",
        "greenlight.dev/release-at": "2026-01-01T00:00:00Z",
        "greenlight.dev/release-by": release_by,
        "greenlight.dev/planned-zone": "DE",
        "greenlight.dev/planned-duration-s": "3600",
        "greenlight.dev/energy-kwh": "1.0",
    }


@pytest.fixture
def job_namespace(control_plane: LocalControlPlane) -> Iterator[str]:
    name = f"e2e-chart-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def test_release_all_as_the_uninstall_account_releases_every_held_job_and_no_other(
    control_plane: LocalControlPlane,
    kubeconfig_for: Callable[[str], Path],
    webhook_configurations: list[Doc],
    job_namespace: str,
) -> None:
    jobs = [
        job("held", suspend=True, annotations=deferred()),
        job("user-suspended", suspend=True, annotations={}),
        job(
            "released-before",
            suspend=True,
            annotations={**deferred(), "greenlight.dev/released-at": "2026-01-01T00:00:00Z"},
        ),
    ]
    control_plane.kubectl(
        "apply",
        "-n",
        job_namespace,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": jobs}),
    )
    result = greenlight(
        "release-all",
        f"--kubeconfig={kubeconfig_for(UNINSTALL_SA)}",
        f"--disable-webhook={FULLNAME}",
    )
    assert result.returncode == 0, result.stderr
    assert f"MutatingWebhookConfiguration {FULLNAME}: deleted" in result.stdout

    def get(name: str) -> Doc:
        return kubectl_json(control_plane, "get", "job", name, "-n", job_namespace)

    held = get("held")
    assert held["spec"]["suspend"] is False
    assert held["metadata"]["annotations"]["greenlight.dev/release-reason"] == "uninstall"
    assert get("user-suspended")["spec"]["suspend"] is True
    assert get("released-before")["spec"]["suspend"] is True
    events = kubectl_json(
        control_plane, "get", "events", "-n", job_namespace, "--field-selector=reason=Released"
    )["items"]
    assert [e["involvedObject"]["name"] for e in events] == ["held"]
    absent = control_plane.kubectl("get", "mutatingwebhookconfiguration", FULLNAME, check=False)
    assert absent.returncode != 0
    assert control_plane.kubectl("get", "validatingwebhookconfiguration", FULLNAME).returncode == 0


CONTROLLERS = Path(
    os.environ.get("GREENLIGHT_CONTROLLERS_DIR", "~/.cache/greenlight/tools/controllers")
).expanduser()


def test_release_all_releases_a_held_jobset_and_skips_kinds_without_their_crd(
    control_plane: LocalControlPlane,
    kubeconfig_for: Callable[[str], Path],
    job_namespace: str,
) -> None:
    """With only the JobSet CRD installed (no controller needed to read or patch one), the
    uninstall account resumes a deferred JobSet at spec.suspend, records its Released Event on
    the JobSet, and reports every enabled kind whose CRD is absent as skipped, not failed."""
    control_plane.kubectl("apply", "--server-side", "-f", f"{CONTROLLERS / 'crds' / 'jobset'}/")

    def established() -> bool:
        crd = kubectl_json(control_plane, "get", "crd", "jobsets.jobset.x-k8s.io")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_until(established, timeout_s=120, what="the JobSet CRD to be established")
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "b"}]}}
    jobset = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "held-gang", "annotations": deferred()},
        "spec": {
            "suspend": True,
            "replicatedJobs": [
                {"name": "workers", "replicas": 2, "template": {"spec": {"template": template}}}
            ],
        },
    }
    apply(control_plane, [jobset], "-n", job_namespace)
    served = {crd["metadata"]["name"] for crd in kubectl_json(control_plane, "get", "crd")["items"]}
    absent = [
        w.gvk.kind for w in WORKLOADS if w is not JOB and f"{w.plural}.{w.gvk.group}" not in served
    ]
    result = greenlight("release-all", f"--kubeconfig={kubeconfig_for(UNINSTALL_SA)}")
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stdout, result.stdout
    if absent:
        assert f"kinds not installed: {', '.join(absent)}" in result.stdout
    released = kubectl_json(control_plane, "get", "jobset", "held-gang", "-n", job_namespace)
    assert released["spec"]["suspend"] is False
    assert released["metadata"]["annotations"]["greenlight.dev/release-reason"] == "uninstall"
    events = kubectl_json(
        control_plane, "get", "events", "-n", job_namespace, "--field-selector=reason=Released"
    )["items"]
    assert [(e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in events] == [
        ("JobSet", "held-gang")
    ]


def test_release_all_with_the_signing_key_releases_signed_jobs_and_leaves_forged_ones(
    control_plane: LocalControlPlane,
    kubeconfig_for: Callable[[str], Path],
    job_namespace: str,
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("k" * 64 + "\n")
    genuine = {**deferred(), "greenlight.dev/admission-uid": "e2e-release-all"}
    genuine["greenlight.dev/signature"] = load_keys(key_file).sign(
        job_namespace, "signed", "", genuine
    )
    jobs = [
        job("signed", suspend=True, annotations=genuine),
        job("forged", suspend=True, annotations=deferred()),
    ]
    control_plane.kubectl(
        "apply",
        "-n",
        job_namespace,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": jobs}),
    )
    result = greenlight(
        "release-all",
        f"--kubeconfig={kubeconfig_for(UNINSTALL_SA)}",
        env={"GREENLIGHT_PROVENANCE__KEYS_FILE": str(key_file)},
    )
    assert result.returncode == 0, result.stderr

    def get(name: str) -> Doc:
        return kubectl_json(control_plane, "get", "job", name, "-n", job_namespace)

    assert get("signed")["spec"]["suspend"] is False
    forged = get("forged")
    assert forged["spec"]["suspend"] is True
    assert "greenlight.dev/released-at" not in forged["metadata"]["annotations"]


def test_reconcile_as_its_account_leads_and_releases_a_due_job(
    control_plane: LocalControlPlane,
    rendered: list[Doc],
    kubeconfig_for: Callable[[str], Path],
    job_namespace: str,
    tmp_path: Path,
) -> None:
    deployment = next(
        d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == RECONCILER_SA
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # The key the chart generated, where the Deployment mounts it (here: a file of the test's).
    (secret,) = (
        d for d in rendered if d["kind"] == "Secret" and "signing" in d["metadata"]["name"]
    )
    key_file = tmp_path / "keys"
    key_file.write_bytes(base64.b64decode(secret["data"]["keys"]))
    assert env["GREENLIGHT_PROVENANCE__KEYS_FILE"] == "/etc/greenlight/signing/keys"
    env["GREENLIGHT_PROVENANCE__KEYS_FILE"] = str(key_file)
    # Past its latest start: released now whatever a re-plan would prefer.
    plan = {**deferred("2026-01-01T01:00:00Z"), "greenlight.dev/admission-uid": "e2e-chart"}
    plan["greenlight.dev/signature"] = load_keys(key_file).sign(job_namespace, "due", "", plan)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook",
            "reconcile",
            f"--kubeconfig={kubeconfig_for(RECONCILER_SA)}",
            f"--metrics-port={port}",
            "--metrics-host=127.0.0.1",
            "--identity=e2e-chart",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    output = ""
    try:

        def alive() -> None:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"greenlight reconcile exited {process.returncode}:\n{output}")

        def ready() -> bool:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2, trust_env=False)
            return response.status_code == 200

        wait_until(ready, timeout_s=60, what="the reconciler's /readyz", still_possible=alive)
        lease = wait_until(
            lambda: (
                kubectl_json(control_plane, "get", "lease", RECONCILER_SA, "-n", NAMESPACE)[
                    "spec"
                ].get("holderIdentity")
                == "e2e-chart"
            ),
            timeout_s=60,
            what="the reconciler to hold its Lease",
            still_possible=alive,
        )
        assert lease
        control_plane.kubectl(
            "apply",
            "-n",
            job_namespace,
            "-f",
            "-",
            stdin=json.dumps(job("due", suspend=True, annotations=plan)),
        )
        released = wait_until(
            lambda: kubectl_json(control_plane, "get", "job", "due", "-n", job_namespace)[
                "metadata"
            ]["annotations"].get("greenlight.dev/released-at"),
            timeout_s=60,
            what="the reconciler to release a due Job",
            still_possible=alive,
        )
        assert released
    except Exception:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        print(output)  # the reconciler's log, for the failure report
        raise
    else:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    # RBAC refusals only: an Event in a namespace another test is deleting is refused too
    # (a ForgedDecision Warning on that test's unsigned Jobs), and is not about RBAC.
    refusals = [
        line for line in output.splitlines() if "because it is being terminated" not in line
    ]
    assert not [line for line in refusals if "Forbidden" in line or " 403" in line], output

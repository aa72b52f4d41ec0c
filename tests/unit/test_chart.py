"""The Helm chart (the single source of the install): lint, what it renders, what its schema
refuses, that manifests/ and the settings-derived parts are current, that the settings it
renders are the ones the code reads, and that the dashboard only queries exported metrics.

helm is the binary hack/build-control-plane.sh builds ($GREENLIGHT_K8S_BIN).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from webhook.admission.server import create_app
from webhook.config.settings import Settings, load_settings
from webhook.devtools.localcluster import (
    MissingBinaryError,
    host_webhook_configurations,
    resolve_bin_dir,
)
from webhook.telemetry.metrics import ReconcilerMetrics
from webhook.workloads.kinds import WORKLOADS, admission_rules

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "greenlight"
KUBE_VERSION = "v1.35.4"
NAMESPACE = "greenlight"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        path = resolve_bin_dir() / "helm"
    except MissingBinaryError as e:
        pytest.fail(f"the chart tests need helm: {e}", pytrace=False)
    if not path.is_file():
        pytest.fail(f"no helm at {path}: run hack/build-control-plane.sh", pytrace=False)
    return path


def run_helm(
    helm: Path, args: list[str], values: dict[str, Any] | None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    extra: list[str] = []
    if values is not None:
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        extra = ["-f", str(values_file)]
    return subprocess.run(
        [str(helm), *args, "--kube-version", KUBE_VERSION, *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def template(helm: Path, tmp_path: Path, values: dict[str, Any] | None = None) -> list[Doc]:
    result = run_helm(
        helm, ["template", "greenlight", str(CHART), "--namespace", NAMESPACE], values, tmp_path
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def pod_spec(docs: list[Doc], name: str) -> Doc:
    spec: Doc = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def default_docs(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    return template(helm, tmp_path_factory.mktemp("render"))


# --- lint and shape ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"certificates": {"mode": "cert-manager"}}, id="cert-manager"),
        pytest.param(
            {"provider": {"name": "electricitymaps", "electricityMapsApiKey": "k"}},
            id="electricitymaps",
        ),
        pytest.param(
            {
                "metrics": {
                    "serviceMonitor": {"enabled": True},
                    "prometheusRule": {"enabled": True},
                },
                "networkPolicy": {"enabled": True},
                "reconciler": {"enabled": False},
            },
            id="monitoring-and-policies",
        ),
    ],
)
def test_helm_lint_passes(helm: Path, tmp_path: Path, values: dict[str, Any]) -> None:
    result = run_helm(helm, ["lint", "--strict", str(CHART)], values, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_webhook_runs_highly_available_with_https_probes(default_docs: list[Doc]) -> None:
    deployment = find(default_docs, "Deployment", "greenlight-webhook")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = deployment["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(
        c["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "greenlight"
        for c in spec["topologySpreadConstraints"]
    )
    (container,) = spec["containers"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
    pdb = find(default_docs, "PodDisruptionBudget", "greenlight-webhook")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_reconciler_runs_two_replicas_with_leader_election(default_docs: list[Doc]) -> None:
    deployment = find(default_docs, "Deployment", "greenlight-reconciler")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "reconcile"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GREENLIGHT_RECONCILER__LEASE_NAME"] == "greenlight-reconciler"
    assert env["GREENLIGHT_RECONCILER__LEASE_NAMESPACE"] == NAMESPACE
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("name", ["greenlight-webhook", "greenlight-reconciler"])
def test_pods_meet_the_restricted_pod_security_standard(default_docs: list[Doc], name: str) -> None:
    spec = pod_spec(default_docs, name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "cpu" not in container["resources"].get("limits", {}), "no tight CPU limit"
        assert "cpu" in container["resources"]["requests"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts, "the only writable place"


def test_webhook_configurations_match_what_the_e2e_suite_registers(
    default_docs: list[Doc],
) -> None:
    """The chart and localcluster.host_webhook_configurations (used by every e2e test) agree
    on everything but how the server is reached."""
    expected = host_webhook_configurations("https://unused", "", excluded_namespaces=())
    for want in expected:
        got = find(default_docs, want["kind"], "greenlight")
        assert len(got["webhooks"]) == len(want["webhooks"])
        for hook, want_hook in zip(got["webhooks"], want["webhooks"], strict=True):
            assert hook["clientConfig"]["service"]["name"] == "greenlight-webhook"
            assert "caBundle" not in hook["clientConfig"], "bootstrap-certs owns caBundle"
            assert "objectSelector" not in hook
            selector = hook["namespaceSelector"]["matchExpressions"]
            assert selector[0] == want_hook["namespaceSelector"]["matchExpressions"][0]
            assert selector[1]["key"] == "kubernetes.io/metadata.name"
            assert selector[1]["values"] == ["kube-system", NAMESPACE]
            for key in ("name", "rules", "failurePolicy", "sideEffects", "timeoutSeconds"):
                assert hook[key] == want_hook[key], key
            assert hook["admissionReviewVersions"] == ["v1"]
            assert hook.get("reinvocationPolicy") == want_hook.get("reinvocationPolicy")


def test_chart_kind_table_is_the_codes_workload_kinds() -> None:
    """_helpers.tpl's greenlight.workloadKinds (the chart's one list of kinds) names every
    kind of webhook.workloads.kinds.WORKLOADS with its group, version and plural, in order."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    found = re.search(
        r'define "greenlight\.workloadKinds" -}}\n(.*?)\n{{- end }}', helpers, re.DOTALL
    )
    assert found, "no greenlight.workloadKinds in _helpers.tpl"
    assert yaml.safe_load(found.group(1)) == [
        {"kind": w.gvk.kind, "group": w.gvk.group, "version": w.gvk.version, "plural": w.plural}
        for w in WORKLOADS
    ]


def test_enabled_workloads_choose_the_webhook_rules_rbac_and_the_sweep(
    helm: Path, tmp_path: Path
) -> None:
    docs = template(helm, tmp_path, {"config": {"workloads": {"enabled": ["JobSet", "Job"]}}})
    enabled = [w for w in WORKLOADS if w.gvk.kind in ("Job", "JobSet")]
    assert [
        hook["rules"]
        for hook in find(docs, "MutatingWebhookConfiguration", "greenlight")["webhooks"]
    ] == [admission_rules(enabled, ["CREATE"])]
    assert [
        hook["rules"]
        for hook in find(docs, "ValidatingWebhookConfiguration", "greenlight")["webhooks"]
    ] == [admission_rules(enabled, ["CREATE", "UPDATE"])]
    assert admission_rules(enabled, ["CREATE"])[1]["resources"] == ["jobsets"]
    reconciler = rules(docs, "ClusterRole", "greenlight-reconciler")
    assert reconciler[:2] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "patch"]},
        {
            "apiGroups": ["jobset.x-k8s.io"],
            "resources": ["jobsets"],
            "verbs": ["get", "list", "watch", "patch"],
        },
    ]
    assert not any("kubeflow.org" in r["apiGroups"] for r in reconciler)
    assert rules(docs, "ClusterRole", "greenlight-uninstall")[:2] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "patch"]},
        {
            "apiGroups": ["jobset.x-k8s.io"],
            "resources": ["jobsets"],
            "verbs": ["get", "list", "patch"],
        },
    ]
    sweep = find(docs, "Job", "greenlight-uninstall")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in sweep["env"]}
    assert json.loads(env["GREENLIGHT_WORKLOADS__ENABLED"]) == ["JobSet", "Job"]
    for deployment in ("greenlight-webhook", "greenlight-reconciler"):
        variables = container_environment(docs, deployment)
        assert json.loads(variables["GREENLIGHT_WORKLOADS__ENABLED"]) == ["JobSet", "Job"]


def workload_rbac(workloads: Any, verbs: list[str]) -> list[Doc]:
    """RBAC rules on ``workloads``: one per API group, its plurals in the kinds' order."""
    by_group: dict[str, list[str]] = {}
    for w in workloads:
        by_group.setdefault(w.gvk.group, []).append(w.plural)
    return [
        {"apiGroups": [group], "resources": plurals, "verbs": verbs}
        for group, plurals in by_group.items()
    ]


# --- RBAC -------------------------------------------------------------------------------------


def rules(docs: list[Doc], kind: str, name: str) -> list[Doc]:
    found: list[Doc] = find(docs, kind, name)["rules"]
    return found


def test_rbac_grants_exactly_what_the_code_calls(default_docs: list[Doc]) -> None:
    assert rules(default_docs, "ClusterRole", "greenlight-webhook") == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            "resourceNames": ["greenlight"],
            "verbs": ["get", "patch"],
        },
    ]
    assert rules(default_docs, "Role", "greenlight-webhook") == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["greenlight-webhook-tls"],
            "verbs": ["get", "update"],
        }
    ]
    assert rules(default_docs, "ClusterRole", "greenlight-reconciler") == [
        *workload_rbac(WORKLOADS, ["get", "list", "watch", "patch"]),
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "list"]},
    ]
    assert rules(default_docs, "ClusterRole", "greenlight-uninstall") == [
        *workload_rbac(WORKLOADS, ["get", "list", "patch"]),
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": ["greenlight"],
            "verbs": ["delete"],
        },
    ]
    named = {
        (r["resources"][0], tuple(r.get("resourceNames", ())), tuple(r["verbs"]))
        for r in rules(default_docs, "Role", "greenlight-reconciler")
    }
    assert named == {
        ("leases", (), ("create",)),
        ("leases", ("greenlight-reconciler",), ("get", "update")),
        ("configmaps", (), ("create",)),
        ("configmaps", ("greenlight-intensity-history",), ("get", "update")),
    }


def test_cert_manager_mode_needs_no_certificate_rbac(helm: Path, tmp_path: Path) -> None:
    docs = template(helm, tmp_path, {"certificates": {"mode": "cert-manager"}})
    assert rules(docs, "ClusterRole", "greenlight-webhook") == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
    ]
    assert not [d for d in docs if d["kind"] == "Role" and "webhook" in d["metadata"]["name"]]
    assert "initContainers" not in pod_spec(docs, "greenlight-webhook")
    certificate = find(docs, "Certificate", "greenlight-webhook")
    assert certificate["spec"]["secretName"] == "greenlight-webhook-tls"
    assert "greenlight-webhook.greenlight.svc" in certificate["spec"]["dnsNames"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        annotations = find(docs, kind, "greenlight")["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == "greenlight/greenlight-webhook"


# --- the schema refuses bad values ------------------------------------------------------------


def values_at(dotted: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for "a.b"."""
    result: dict[str, Any] = {}
    node = result
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return result


BAD_VALUES = [
    ("wrong-type", "webhook.replicas", "two", "'/webhook/replicas': got string, want integer"),
    ("wrong-type-setting", "config.energy.pue", "high", "'/config/energy/pue': got string, want"),
    (
        "unknown-provider",
        "provider.name",
        "azure",
        "'/provider/name': value must be one of 'replay', 'electricitymaps'",
    ),
    ("negative-delay", "config.webhook.max_delay_s", -5, "minimum: got -5, want 0"),
    ("negative-duration", "config.webhook.max_delay_s", "-1h", "'-1h' does not match pattern"),
    ("pue-below-1", "config.energy.pue", 0.5, "'/config/energy/pue': minimum: got 0.5, want 1"),
    ("unknown-mode", "config.webhook.mode", "sometimes", "must be one of 'defer', 'observe'"),
    ("misspelt-setting", "config.webhook.max_delay", "1h", "properties 'max_delay' not allowed"),
    ("timeout-over-30", "webhook.timeoutSeconds", 31, "timeoutSeconds': maximum: got 31, want 30"),
    ("cert-mode", "certificates.mode", "manual", "must be one of 'bootstrap', 'cert-manager'"),
    (
        "key-missing",
        "provider.name",
        "electricitymaps",
        "provider.name=electricitymaps needs provider.electricityMapsApiKey or "
        "provider.existingSecret",
    ),
]


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [pytest.param(path, value, message, id=name) for name, path, value, message in BAD_VALUES],
)
def test_bad_values_are_refused_with_a_clear_message(
    helm: Path, tmp_path: Path, dotted: str, value: Any, message: str
) -> None:
    values = values_at(dotted, value)
    result = run_helm(helm, ["template", "greenlight", str(CHART)], values, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- generated and rendered files are current -------------------------------------------------


def test_manifests_equal_the_rendered_chart(helm: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "hack" / "render-manifests.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={"GREENLIGHT_K8S_BIN": str(helm.parent), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    for name in ("greenlight.yaml", "uninstall.yaml"):
        assert (ROOT / "manifests" / name).read_text() == (tmp_path / name).read_text(), (
            f"manifests/{name} drifted from the chart: run `make manifests`"
        )


def test_chart_values_schema_and_readme_reference_follow_the_settings_classes() -> None:
    script = ROOT / "hack" / "update-chart-config.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_plain_manifests_hold_no_helm_hook_and_create_the_namespace() -> None:
    docs = [
        d for d in yaml.safe_load_all((ROOT / "manifests" / "greenlight.yaml").read_text()) if d
    ]
    assert docs[0]["kind"] == "Namespace"
    assert not [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    hooks = [
        d for d in yaml.safe_load_all((ROOT / "manifests" / "uninstall.yaml").read_text()) if d
    ]
    job = next(d for d in hooks if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "release-all",
        "--reason=uninstall",
    ]


# --- the settings the chart renders are the ones the code reads -------------------------------


def container_environment(docs: list[Doc], deployment: str) -> dict[str, str]:
    """What the container's process sees: the settings ConfigMap (envFrom) + literal env."""
    config = find(docs, "ConfigMap", "greenlight-config")["data"]
    (container,) = pod_spec(docs, deployment)["containers"]
    literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return {**config, **literal}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("GREENLIGHT_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.parametrize("deployment", ["greenlight-webhook", "greenlight-reconciler"])
def test_default_chart_settings_are_the_product_defaults(
    default_docs: list[Doc], clean_environment: pytest.MonkeyPatch, deployment: str
) -> None:
    product = load_settings().model_dump(mode="json")
    rendered = settings_from(container_environment(default_docs, deployment), clean_environment)
    chart = rendered.model_dump(mode="json")
    assert chart["webhook"].pop("trusted_usernames") == [
        "system:serviceaccount:greenlight:greenlight-reconciler",
        "system:serviceaccount:greenlight:greenlight-uninstall",
    ]
    product["webhook"].pop("trusted_usernames")
    # The chart always signs: the key is the Secret it creates (templates/signing.yaml).
    assert chart.pop("provenance") == {"keys_file": "/etc/greenlight/signing/keys"}
    product.pop("provenance")
    for section in ("server", "reconciler"):
        chart.pop(section, None)
        product.pop(section, None)
    assert chart == product


def test_custom_values_reach_the_settings(
    helm: Path, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    values = {
        "provider": {"name": "electricitymaps", "existingSecret": "emaps"},
        "config": {
            "webhook": {"zone": "FR", "mode": "observe", "max_delay_s": "12h"},
            "planner": {"min_saving_pct": 12.5},
            "energy": {"pue": 1.2, "default_workload": "batch-inference"},
            "cost": {"kind": "flat", "flat_usd_per_kwh": 0.3},
            "providers": {"zones": {"on-prem": "DE"}, "cache": {"ttl_s": 600}},
            "reconciler": {"max_replans": 2, "replan_interval_s": "45m"},
        },
    }
    docs = template(helm, tmp_path, values)
    settings = settings_from(
        container_environment(docs, "greenlight-reconciler"), clean_environment
    )
    assert settings.webhook.zone == "FR"
    assert settings.webhook.mode == "observe"
    assert settings.webhook.max_delay_s == 12 * 3600
    assert settings.planner.min_saving_pct == 12.5
    assert settings.energy.pue == 1.2
    assert settings.energy.default_workload == "batch-inference"
    assert settings.cost.kind == "flat"
    assert settings.cost.flat_usd_per_kwh == 0.3
    assert settings.providers.provider == "electricitymaps"
    assert settings.providers.zones == {"on-prem": "DE"}
    assert settings.providers.cache.ttl_s == 600
    reconciler = settings.model_dump()["reconciler"]
    assert reconciler["max_replans"] == 2
    assert reconciler["replan_interval_s"] == 45 * 60
    (container,) = pod_spec(docs, "greenlight-webhook")["containers"]
    assert {"secretRef": {"name": "emaps"}} in container["envFrom"]
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "emaps"]


def test_provider_key_goes_into_a_secret_not_the_config(helm: Path, tmp_path: Path) -> None:
    docs = template(
        helm, tmp_path, {"provider": {"name": "electricitymaps", "electricityMapsApiKey": "s3cr3t"}}
    )
    secret = find(docs, "Secret", "greenlight-provider")
    assert secret["stringData"] == {"GREENLIGHT_ELECTRICITYMAPS_API_KEY": "s3cr3t"}
    assert "s3cr3t" not in json.dumps(find(docs, "ConfigMap", "greenlight-config"))
    (container,) = pod_spec(docs, "greenlight-webhook")["containers"]
    assert {"secretRef": {"name": "greenlight-provider"}} in container["envFrom"]


def test_gpu_profiles_are_mounted_and_named_in_the_settings(helm: Path, tmp_path: Path) -> None:
    csv = (ROOT / "webhook" / "data" / "gpu_power_profiles.csv").read_text().splitlines()
    docs = template(helm, tmp_path, {"gpuProfiles": "\n".join(csv[:2])})
    files = find(docs, "ConfigMap", "greenlight-config-files")["data"]
    assert files["gpu-profiles.csv"].splitlines() == csv[:2]
    env = container_environment(docs, "greenlight-webhook")
    assert env["GREENLIGHT_ENERGY__PROFILES_FILE"] == "/etc/greenlight/gpu-profiles.csv"


# --- the dashboard ----------------------------------------------------------------------------

_METRIC = re.compile(r"\bgreenlight_[a-z0-9_]+\b")


def exported_series(metrics: list[Metric]) -> set[str]:
    """The series names Prometheus stores for these metric families."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("_sum", "_count", ""),
    }
    return {m.name + suffix for m in metrics for suffix in suffixes[m.type]}


def test_dashboard_queries_only_metrics_the_code_exports() -> None:
    dashboard = json.loads((ROOT / "dashboards" / "greenlight.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queried = {name for expr in expressions for name in _METRIC.findall(expr)}
    webhook = create_app(Settings()).state.metrics.registry
    exported = exported_series([*webhook.collect(), *ReconcilerMetrics().registry.collect()])
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"not exported: {sorted(queried - exported)}"


def test_chart_ships_the_dashboard_file_for_grafanas_sidecar(default_docs: list[Doc]) -> None:
    config_map = find(default_docs, "ConfigMap", "greenlight-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["greenlight.json"])
    assert shipped == json.loads((ROOT / "dashboards" / "greenlight.json").read_text())


def test_prometheus_rule_is_the_plain_rules_file_and_off_by_default(
    helm: Path, tmp_path: Path, default_docs: list[Doc]
) -> None:
    assert not [d for d in default_docs if d["kind"] == "PrometheusRule"]
    docs = template(
        helm, tmp_path, {"metrics": {"prometheusRule": {"enabled": True, "labels": {"p": "x"}}}}
    )
    rule = find(docs, "PrometheusRule", "greenlight")
    assert rule["metadata"]["labels"]["p"] == "x"
    plain = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == plain
    alerts = {r["alert"] for group in plain["groups"] for r in group["rules"]}
    assert alerts >= {
        "GreenlightJobOverdue",
        "GreenlightProviderErrors",
        "GreenlightForecastStale",
        "GreenlightWebhookFailOpen",
        "GreenlightReconcilerNotLeading",
    }

"""The dashboard reads counters that exist before their first event, over Grafana's ranges."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from webhook.admission.server import create_app
from webhook.carbon.refresher import Refresher, WarmForecasts
from webhook.carbon.registry import build_forecast_source
from webhook.config.settings import Settings
from webhook.core.reasons import decision_reasons
from webhook.reconciler.decide import ReleaseReason
from webhook.telemetry.metrics import RECONCILER_API_REQUESTS, Metrics, ReconcilerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "dashboards" / "greenlight.json").read_text())
EXPRS = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]

# Started at 0 by the app that serves them (per endpoint, per wanted zone, per cost side):
# checked on a real app below, not on a bare Metrics.
BOUND_BY_THE_APP = {
    "greenlight_admission_requests_total",
    "greenlight_provider_errors_total",
    "greenlight_estimated_cost_usd_total",
    "greenlight_fail_open_total",
}


def test_every_increase_spans_a_grafana_range() -> None:
    windows = [w for e in EXPRS for w in re.findall(r"increase\([^\[]*\[([^\]]+)\]", e)]
    assert windows
    assert set(windows) <= {"$__rate_interval", "$__range"}, windows


def test_every_counter_the_dashboard_reads_exists_at_zero_before_its_first_event() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    reconciler = ReconcilerMetrics(registry)
    reconciler.start_at_zero(reason.value for reason in ReleaseReason)
    reconciler.namespace_seen("ml")
    samples = {sample.name: sample for family in registry.collect() for sample in family.samples}
    read = {
        name
        for e in EXPRS
        for name in re.findall(r"\b(greenlight_\w+_total)\b", e)
        if name not in BOUND_BY_THE_APP
    }
    assert len(read) >= 8
    for name in read:
        assert name in samples, f"{name} is not exported before its first event"
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name in read
    }
    assert all(v == 0 for v in values.values()), values
    releases = {
        dict(labels)["reason"] for name, labels in values if name.startswith("greenlight_releases")
    }
    assert releases == {reason.value for reason in ReleaseReason}
    assert ("greenlight_completed_deferred_jobs_total", (("namespace", "ml"),)) in values
    decisions = {
        (dict(labels)["decision"], dict(labels)["reason"])
        for name, labels in values
        if name == "greenlight_decisions_total"
    }
    assert decisions == {(d.value, c.value) for d, c in decision_reasons()}
    assert ("run-now", "no-forecast") in decisions


def test_the_admission_counters_exist_at_zero_once_the_app_is_built() -> None:
    metrics = Metrics()
    create_app(Settings(), metrics=metrics)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name in BOUND_BY_THE_APP
    }
    assert {name for name, _ in values} == BOUND_BY_THE_APP, values
    assert all(v == 0 for v in values.values()), values
    zone = Settings().webhook.zone
    assert ("greenlight_provider_errors_total", (("zone", zone),)) in values
    for endpoint in {dict(labels).get("endpoint") for _, labels in values} - {None}:
        for outcome in ("allowed", "patched", "denied", "malformed", "fail_open"):
            key = (("endpoint", endpoint), ("outcome", outcome))
            assert ("greenlight_admission_requests_total", key) in values
        assert ("greenlight_fail_open_total", (("endpoint", endpoint),)) in values
    for when in ("now", "planned"):
        assert ("greenlight_estimated_cost_usd_total", (("when", when),)) in values


def test_a_zone_wanted_later_exports_its_provider_errors_at_zero() -> None:
    metrics = Metrics()
    refresher = Refresher(
        WarmForecasts(build_forecast_source(Settings().providers)),
        ["DE"],
        interval_s=60,
        metrics=metrics,
    )
    refresher.want("FR")
    assert (
        metrics.registry.get_sample_value("greenlight_provider_errors_total", {"zone": "DE"}) == 0
    )
    assert (
        metrics.registry.get_sample_value("greenlight_provider_errors_total", {"zone": "FR"}) == 0
    )
    for result in ("ok", "failed", "timeout"):
        labels = {"zone": "FR", "result": result}
        assert metrics.registry.get_sample_value("greenlight_on_demand_fetches_total", labels) == 0


def test_every_request_the_reconciler_counts_is_started_at_zero() -> None:
    """Scan the controller's ``_count`` calls: a new one not in RECONCILER_API_REQUESTS would
    appear at 1 and hide its first request from increase()."""
    source = (ROOT / "webhook" / "reconciler" / "controller.py").read_text()
    calls = re.findall(r'self\._count\(\s*"([a-z-]+)",\s*"([a-z-]+)"(?:,\s*"([a-z-]+)")?\)', source)
    assert len(calls) >= 10
    counted = {(verb, resource or "jobs", outcome) for verb, outcome, resource in calls}
    assert counted <= set(RECONCILER_API_REQUESTS), counted - set(RECONCILER_API_REQUESTS)
    registry = CollectorRegistry()
    ReconcilerMetrics(registry).start_at_zero([])
    for verb, resource, outcome in counted:
        labels = {"verb": verb, "resource": resource, "outcome": outcome}
        value = registry.get_sample_value("greenlight_reconciler_api_requests_total", labels)
        assert value == 0, labels


def test_the_heatmap_reads_buckets_as_a_heatmap() -> None:
    heatmaps = [p for p in DASHBOARD["panels"] if p["type"] == "heatmap"]
    assert heatmaps
    assert all(t.get("format") == "heatmap" for p in heatmaps for t in p["targets"])


def test_namespace_and_zone_variables_filter_their_panels() -> None:
    names = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert {"namespace", "zone"} <= names
    for e in EXPRS:
        if "greenlight_completed_deferred_jobs_total" in e:
            assert 'namespace=~"$namespace"' in e
        if "greenlight_forecast_age_seconds" in e:
            assert 'zone=~"$zone"' in e

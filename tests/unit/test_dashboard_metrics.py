"""The dashboard reads counters that exist before their first event, over Grafana's ranges."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from webhook.reconciler.decide import ReleaseReason
from webhook.telemetry.metrics import Metrics, ReconcilerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "dashboards" / "greenlight.json").read_text())
EXPRS = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]

# Counters labelled by request content (decision and reason, zone, endpoint; the reconciler's
# verb x resource x outcome) are bound when first used; not yet started at zero (issue 16 left).
LABELLED_AT_ADMISSION = {
    "greenlight_reconciler_api_requests_total",
    "greenlight_decisions_total",
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
        if name not in LABELLED_AT_ADMISSION
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

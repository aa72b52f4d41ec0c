"""The webhook's Prometheus metrics, in a registry of their own (one per app, so tests are
isolated and two apps in one process do not collide). ``prometheus_client`` is imported here only.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from webhook.core.reasons import decision_reasons

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_FETCH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_DELAY_BUCKETS_S = (
    300,
    900,
    1800,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    24 * 3600,
    48 * 3600,
    7 * 86400,
)


class Metrics:
    """Every metric the webhook exports; ``render()`` is the ``/metrics`` body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "greenlight_admission_requests",
            "Admission requests by endpoint and outcome "
            "(allowed, patched, denied, malformed, fail_open).",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "greenlight_admission_duration_seconds",
            "Time to answer an admission request, decode to encode.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.decisions = Counter(
            "greenlight_decisions",
            "Judged Jobs by decision and reason code (dry runs excluded).",
            ["decision", "reason"],
            registry=r,
        )
        # Every pair at 0 before its first decision: a series that appears at 1 hides that
        # first decision from increase().
        for decision, code in decision_reasons():
            self.decisions.labels(decision=decision.value, reason=code.value)
        self.planned_delay = Histogram(
            "greenlight_planned_delay_seconds",
            "Delay between admission and the planned release of deferred Jobs.",
            buckets=_DELAY_BUCKETS_S,
            registry=r,
        )
        self.emissions_planned = Counter(
            "greenlight_estimated_emissions_grams",
            "Estimated emissions of judged Jobs as planned (g CO2eq).",
            registry=r,
        )
        self.savings = Counter(
            "greenlight_estimated_savings_grams",
            "Estimated emissions saved by deferral versus running at admission (g CO2eq).",
            registry=r,
        )
        self.intensity = Gauge(
            "greenlight_intensity_g_per_kwh",
            "Carbon intensity of each zone in use: now and as forecast some hours ahead "
            "(the forecast the next decision will use).",
            ["zone", "ahead"],
            registry=r,
        )
        self.cost = Counter(
            "greenlight_estimated_cost_usd",
            "Estimated electricity cost of judged Jobs, if run at admission ('now') and as "
            "planned ('planned'); only with a price configured.",
            ["when"],
            registry=r,
        )
        self.forecast_age = Gauge(
            "greenlight_forecast_age_seconds",
            "Age of the forecast data held for each zone.",
            ["zone"],
            registry=r,
        )
        self.provider_errors = Counter(
            "greenlight_provider_errors",
            "Failed forecast refreshes by zone.",
            ["zone"],
            registry=r,
        )
        self.on_demand_fetches = Counter(
            "greenlight_on_demand_fetches",
            "Forecast fetches admission waited for, for a zone not fetched yet, by zone and "
            "result (ok, failed, timeout); concurrent admissions share one fetch.",
            ["zone", "result"],
            registry=r,
        )
        self.on_demand_fetch_seconds = Histogram(
            "greenlight_on_demand_fetch_seconds",
            "Time admission waited for an on-demand forecast fetch (at most the timeout).",
            buckets=_FETCH_BUCKETS_S,
            registry=r,
        )
        self.fail_open = Counter(
            "greenlight_fail_open",
            "Admission requests allowed unchanged because of an internal error.",
            ["endpoint"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


_LATENESS_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0)


RECONCILER_API_REQUESTS = (
    ("patch", "jobs", "ok"),
    ("patch", "jobs", "conflict"),
    ("patch", "jobs", "not-found"),
    ("patch", "jobs", "error"),
    ("get", "jobs", "ok"),
    ("get", "jobs", "not-found"),
    ("get", "jobs", "error"),
    ("create", "events", "ok"),
    ("create", "events", "exists"),
    ("create", "events", "error"),
    ("list", "events", "ok"),
)
"""The (verb, resource, outcome) of every request the reconciler counts, started at 0."""


class ReconcilerMetrics:
    """Every metric the reconciler exports (in a registry of its own, or the webhook's when
    both run in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.overdue = Gauge(
            "greenlight_overdue_deferred_jobs",
            "Deferred Jobs still suspended past their release-by plus the grace (should be 0).",
            registry=r,
        )
        self.waiting = Gauge(
            "greenlight_deferred_jobs", "Deferred Jobs waiting for their release.", registry=r
        )
        self.tracked = Gauge(
            "greenlight_reconciler_tracked_jobs",
            "Jobs the reconciler keeps: waiting, or released and not yet accounted.",
            registry=r,
        )
        self.releases = Counter(
            "greenlight_releases", "Released Jobs by release reason.", ["reason"], registry=r
        )
        self.lateness = Histogram(
            "greenlight_release_lateness_seconds",
            "Time from a Job's release target to its release PATCH being accepted.",
            buckets=_LATENESS_BUCKETS_S,
            registry=r,
        )
        self.replans = Counter(
            "greenlight_replans",
            "Re-plans of waiting Jobs by outcome (moved, kept, released).",
            ["outcome"],
            registry=r,
        )
        self.api_requests = Counter(
            "greenlight_reconciler_api_requests",
            "Writes and reads the reconciler made, by verb and resource and outcome.",
            ["verb", "resource", "outcome"],
            registry=r,
        )
        self.unreadable = Counter(
            "greenlight_unreadable_jobs",
            "Versions of Jobs marked deferred that the reconciler could not read and set aside.",
            registry=r,
        )
        self.forged = Counter(
            "greenlight_forged_jobs",
            "Jobs marked deferred without a valid greenlight signature, ignored (once per uid).",
            registry=r,
        )
        self.events_dropped = Counter(
            "greenlight_reconciler_events_dropped",
            "Events not recorded because the event queue was full or the write failed.",
            registry=r,
        )
        self.leader = Gauge(
            "greenlight_reconciler_leader", "1 while this replica leads, else 0.", registry=r
        )
        self.synced = Gauge(
            "greenlight_reconciler_synced",
            "1 once the Job list has been read and every due Job dispatched.",
            registry=r,
        )
        self.relist_seconds = Gauge(
            "greenlight_reconciler_relist_seconds",
            "Duration of the last full list of Jobs (read, parse, schedule).",
            registry=r,
        )
        self.relists = Counter(
            "greenlight_reconciler_relists",
            "Full lists of Jobs by cause (start, gone, error).",
            ["cause"],
            registry=r,
        )
        self.actual_emissions = Counter(
            "greenlight_actual_emissions_grams",
            "Actual emissions of finished deferred Jobs (g CO2eq), by namespace.",
            ["namespace"],
            registry=r,
        )
        self.counterfactual_emissions = Counter(
            "greenlight_counterfactual_emissions_grams",
            "Emissions the same runs would have had at admission time (g CO2eq), by namespace; "
            "the saving is this minus greenlight_actual_emissions_grams.",
            ["namespace"],
            registry=r,
        )
        self.completed = Counter(
            "greenlight_completed_deferred_jobs",
            "Finished deferred Jobs accounted, by namespace.",
            ["namespace"],
            registry=r,
        )
        self.history_writes = Counter(
            "greenlight_history_writes",
            "Writes of the intensity-history ConfigMap by outcome.",
            ["outcome"],
            registry=r,
        )

    def finished_run(self, namespace: str, emissions_g: float, at_admission_g: float) -> None:
        """A deferred run (a Job, or a Workload held by the Kueue check) finished and was
        accounted: what it emitted, what it would have at admission, one more finished."""
        self.actual_emissions.labels(namespace=namespace).inc(max(emissions_g, 0.0))
        self.counterfactual_emissions.labels(namespace=namespace).inc(max(at_admission_g, 0.0))
        self.completed.labels(namespace=namespace).inc()

    def start_at_zero(self, release_reasons: Iterable[str]) -> None:
        """Export every known label value at 0 before its first event: a series that appears
        at 1 hides that first event from ``increase()``."""
        for reason in release_reasons:
            self.releases.labels(reason=reason)
        for outcome in ("moved", "kept", "released"):
            self.replans.labels(outcome=outcome)
        for cause in ("start", "gone", "error"):
            self.relists.labels(cause=cause)
        for outcome in ("ok", "conflict", "error"):
            self.history_writes.labels(outcome=outcome)
        for verb, resource, outcome in RECONCILER_API_REQUESTS:
            self.api_requests.labels(verb=verb, resource=resource, outcome=outcome)

    def namespace_seen(self, namespace: str) -> None:
        """Export a namespace's accounting counters at 0 when its first deferred Job is seen,
        long before the Job finishes and they first count."""
        self.actual_emissions.labels(namespace=namespace)
        self.counterfactual_emissions.labels(namespace=namespace)
        self.completed.labels(namespace=namespace)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class KueueCheckMetrics:
    """The Kueue AdmissionCheck's metrics (in the reconciler's registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.decisions = Counter(
            "greenlight_kueue_check_decisions",
            "Kueue Workloads judged by greenlight's AdmissionCheck, by decision and reason code.",
            ["decision", "reason"],
            registry=r,
        )
        self.ready = Counter(
            "greenlight_kueue_check_ready",
            "greenlight checks turned Ready (the Workload may be admitted), by release reason.",
            ["reason"],
            registry=r,
        )
        self.held = Gauge(
            "greenlight_kueue_check_held_workloads",
            "Kueue Workloads whose greenlight check is Pending.",
            registry=r,
        )
        self.planned_delay = Histogram(
            "greenlight_kueue_check_planned_delay_seconds",
            "Delay between a Workload's creation and its planned window.",
            buckets=_DELAY_BUCKETS_S,
            registry=r,
        )
        self.write_errors = Counter(
            "greenlight_kueue_check_write_errors",
            "Failed writes of a Workload's annotations or check status (retried).",
            registry=r,
        )
        for reason in ("window", "deadline", "not-deferred"):
            self.ready.labels(reason=reason)

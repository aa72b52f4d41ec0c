"""The webhook's Prometheus metrics, in a registry of their own (one per app, so tests are
isolated and two apps in one process do not collide). ``prometheus_client`` is imported here only.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
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
        self.fail_open = Counter(
            "greenlight_fail_open",
            "Admission requests allowed unchanged because of an internal error.",
            ["endpoint"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

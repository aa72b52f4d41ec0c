"""A real Prometheus scrapes ``greenlight serve`` and ``greenlight reconcile`` through a run, and
evaluates every query of the dashboards and every alert rule of the chart.

Prometheus is Debian's ``prometheus`` package (hack/install-prometheus.sh, which ``make test``
runs; ``$GREENLIGHT_PROMETHEUS_BIN`` names its directory, else PATH). It runs as a child process
with its own config and data directory on a loopback port, scraping every second: the webhook
over HTTPS (its CA), the reconciler over HTTP. A query fails the test when Prometheus answers an
error, or when it stays empty although every metric it reads was produced by the run.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_jobs import plain_job
from promql_sources import (
    DASHBOARDS,
    RULES_FILE,
    Query,
    dashboard_queries,
    rule_queries,
)

# The reconciler suite's Cluster (processes, replay forecasts) and its fixture.
from test_reconciler import (  # noqa: F401  (cluster is a fixture)
    SLOW,
    Cluster,
    cluster,
    deferred_job,
    released,
    signed,
)

from webhook.core import annotations as keys
from webhook.devtools.localcluster import free_port, wait_until

# What this run must produce: the scenario admits, defers, releases and accounts Jobs.
PRODUCED_BY_THE_RUN = {
    "greenlight_admission_requests_total",
    "greenlight_admission_duration_seconds_bucket",
    "greenlight_decisions_total",
    "greenlight_planned_delay_seconds_bucket",
    "greenlight_estimated_emissions_grams_total",
    "greenlight_estimated_savings_grams_total",
    "greenlight_intensity_g_per_kwh",
    "greenlight_forecast_age_seconds",
    "greenlight_deferred_jobs",
    "greenlight_overdue_deferred_jobs",
    "greenlight_reconciler_leader",
    "greenlight_reconciler_tracked_jobs",
    "greenlight_reconciler_synced",
    "greenlight_reconciler_relist_seconds",
    "greenlight_reconciler_api_requests_total",
    "greenlight_releases_total",
    "greenlight_release_lateness_seconds_bucket",
    "greenlight_actual_emissions_grams_total",
    "greenlight_counterfactual_emissions_grams_total",
    "greenlight_completed_deferred_jobs_total",
}
CEILING_S = 180  # for every produced query to answer (a busy 2-core machine: generous)


def binary(name: str) -> Path:
    directory = os.environ.get("GREENLIGHT_PROMETHEUS_BIN")
    found = str(Path(directory) / name) if directory else shutil.which(name)
    if not found or not Path(found).is_file():
        pytest.fail(
            f"no {name} ({'in ' + directory if directory else 'on PATH'}): run "
            "hack/install-prometheus.sh (make prometheus), which installs Debian's prometheus",
            pytrace=False,
        )
    return Path(found)


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus /api/v1/{path} {params}: {body}")
        return body["data"]

    def answer(self, query: Query) -> list[Any]:
        """What Grafana would get: the instant vector (a scalar counts as one answer) or the
        label values. A Prometheus error raises AssertionError naming the query."""
        try:
            if query.kind == "label_values":
                params = {"match[]": query.text} if query.text else {}
                values: list[Any] = self.api(f"label/{query.label}/values", **params)
                return values
            data = self.api("query", query=query.text)
        except AssertionError as e:
            raise AssertionError(f"{query.origin}: {query.text!r}: {e}") from None
        if data["resultType"] in ("scalar", "string"):
            return [data["result"]]
        result: list[Any] = data["result"]
        return result

    def produced(self) -> set[str]:
        data = self.api("label/__name__/values", **{"match[]": '{__name__=~"greenlight_.*"}'})
        return set(data)


@pytest.fixture
def prometheus_on(tmp_path: Path) -> Iterator[Callable[[str, Path, int], Prometheus]]:
    started: list[Prometheus] = []

    def start(webhook_target: str, webhook_ca: Path, reconciler_port: int) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [
                {
                    "job_name": "greenlight-webhook",
                    "scheme": "https",
                    "tls_config": {"ca_file": str(webhook_ca)},
                    "static_configs": [{"targets": [webhook_target]}],
                },
                {
                    "job_name": "greenlight-reconciler",
                    "static_configs": [{"targets": [f"127.0.0.1:{reconciler_port}"]}],
                },
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        check = subprocess.run(
            [str(binary("promtool")), "check", "config", str(config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        port = free_port()
        log_path = tmp_path / "prometheus.log"
        process = subprocess.Popen(
            [
                str(binary("prometheus")),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
        started.append(server)

        def alive() -> None:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {log_path.read_text()[-3000:]}")

        wait_until(
            lambda: httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200,
            timeout_s=60,
            what="Prometheus to become ready",
            still_possible=alive,
        )
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def promtool_check_metrics(text: str, what: str) -> None:
    result = subprocess.run(
        [str(binary("promtool")), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        f"promtool check metrics on {what}: {result.stdout}{result.stderr}"
    )


def test_rules_file_passes_promtool_check_rules() -> None:
    result = subprocess.run(
        [str(binary("promtool")), "check", "rules", str(RULES_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_queries())} rules found" in result.stdout


def test_prometheus_evaluates_every_dashboard_query_and_alert_rule(
    cluster: Cluster,  # noqa: F811  (the fixture imported above)
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
    prometheus_on: Callable[[str, Path, int], Prometheus],
) -> None:
    queries = [q for path in DASHBOARDS for q in dashboard_queries(path)]
    alerts = rule_queries()
    assert queries, f"no queries found in {DASHBOARDS}"
    namespace = make_namespace(opted_in=True)
    webhook = cluster.webhook(register_webhook)
    reconciler = cluster.reconciler()
    ca = cluster.workdir / "certs" / "ca.crt"
    prometheus = prometheus_on(f"127.0.0.1:{webhook.metrics_port}", ca, reconciler.metrics_port)
    wait_until(
        lambda: len([r for r in prometheus.answer(Query("up", "expr", "up == 1"))]) == 2,
        timeout_s=60,
        what="Prometheus to scrape both targets (up == 1)",
    )

    # Admitted through the webhook and deferred to the clean window hours ahead ...
    batch = cluster.batch
    batch.create_namespaced_job(
        namespace, plain_job("admitted", {keys.ZONE: SLOW, keys.EXPECTED_DURATION: "1h"})
    )
    assert cluster.job(namespace, "admitted").metadata.annotations[keys.DECISION] == "deferred"
    # ... and one planned a few seconds ahead, released and run to completion (accounted).
    batch.create_namespaced_job(
        namespace, signed(namespace, deferred_job("soon", release_in_s=3, release_by_in_s=300))
    )
    cluster.wait_job(namespace, "soon", released, "released")
    cluster.wait_job(
        namespace,
        "soon",
        lambda j: keys.ACTUAL_EMISSIONS_G in (j.metadata.annotations or {}),
        "accounted",
        timeout_s=120,
    )

    tls = ssl.create_default_context(cafile=str(ca))
    promtool_check_metrics(
        httpx.get(f"https://127.0.0.1:{webhook.metrics_port}/metrics", verify=tls).text,
        "the webhook's /metrics",
    )
    promtool_check_metrics(reconciler.metrics(), "the reconciler's /metrics")

    produced = wait_until(
        lambda: (names := prometheus.produced()) >= PRODUCED_BY_THE_RUN and names,
        timeout_s=CEILING_S,
        what=f"Prometheus to hold every series the run produces: {sorted(PRODUCED_BY_THE_RUN)}",
    )

    # Every query must evaluate; those reading only produced metrics must answer something
    # (rates need two samples in their window: poll, with one ceiling for all).
    must_answer = [q for q in queries if q.metrics() and q.metrics() <= produced]
    not_produced = [q for q in queries if q not in must_answer]
    for query in not_produced:
        prometheus.answer(query)  # still: no error
    print(f"{len(must_answer)} of {len(queries)} dashboard queries read produced metrics;")
    print("not produced in this run:", *(f"  {q.origin}: {q.text}" for q in not_produced), sep="\n")
    deadline = time.monotonic() + CEILING_S
    empty = must_answer
    while empty and time.monotonic() < deadline:
        empty = [q for q in empty if not prometheus.answer(q)]
        if empty:
            time.sleep(1)  # the scrape interval: the next sample
    assert not empty, "empty although the run produced their metrics:\n" + "\n".join(
        f"  {q.origin}: {q.text}" for q in empty
    )
    assert len(must_answer) >= len(queries) // 2, (
        f"only {len(must_answer)} of {len(queries)} dashboard queries read produced metrics; "
        f"not produced: {[q.text for q in not_produced]}"
    )

    # The alert rules: each evaluates without error, Prometheus loaded and evaluated every
    # rule healthily, and none fires (or is pending) in this healthy run.
    for alert in alerts:
        assert prometheus.answer(alert) == [], f"{alert.origin} would fire: {alert.text}"

    def evaluated_rules() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = len(rules) == len(alerts) and all(r["lastEvaluation"] > "2000" for r in rules)
        return rules if done else None

    rules = wait_until(evaluated_rules, timeout_s=60, what="Prometheus to evaluate every rule")
    assert [(r["name"], r["health"], r.get("lastError", "")) for r in rules] == [
        (q.origin.split(" ", 1)[1], "ok", "") for q in alerts
    ]
    assert [r["state"] for r in rules] == ["inactive"] * len(alerts)

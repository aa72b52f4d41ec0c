"""The reconciler on the real apiserver, with the Job controller and kwok running Job pods.

``greenlight reconcile`` runs as a process on this host (several, for the HA tests). Forecasts
come from replay files written for each test: zone E2E-SLOW is dirty now and clean five to nine
hours ahead (hourly steps); zone E2E-FAST has 30-second steps, dirty in the first half of every
minute and clean in the second. Jobs are created with the plan the webhook writes, or through
``greenlight serve`` itself where the test is about the two together. Exactly-once is checked on
the apiserver's own request counter: successful PATCHes of Jobs.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_jobs import plain_job
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.core import annotations as keys
from webhook.core.annotations import format_time
from webhook.core.provenance import SigningKeys
from webhook.devtools.localcluster import ADMIN_USER, LocalControlPlane, free_port, wait_until

HOUR_S = 3600
WEEK_S = 7 * 24 * HOUR_S
MONDAY_OFFSET_S = 4 * 24 * HOUR_S  # the epoch was a Thursday
SLOW = "E2E-SLOW"
FAST = "E2E-FAST"
NOWHERE = {"greenlight.e2e/no-such-node": "true"}  # pods stay Pending: no run, no accounting
CSV_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)


# --- forecasts --------------------------------------------------------------------------------


def _write_replay(
    path: Path, zone: str, step_s: int, steps: int, value: Callable[[int], float]
) -> None:
    start = datetime(2023, 3, 6, tzinfo=UTC)  # a Monday
    lines = [CSV_HEADER]
    for index in range(steps):
        moment = start + timedelta(seconds=index * step_s)
        v = value(int(moment.timestamp()))
        lines.append(f"{moment:%Y-%m-%d %H:%M:%S},Testland,Testland,{zone},{v},{v},50,50,t,false,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def replay_files(directory: Path) -> dict[str, str]:
    now = datetime.now(UTC)
    hour_of_week_now = int((now.timestamp() - MONDAY_OFFSET_S) % WEEK_S) // HOUR_S

    def slow(t: int) -> float:
        hour = int((t - MONDAY_OFFSET_S) % WEEK_S) // HOUR_S
        return 50.0 if (hour - hour_of_week_now) % 168 in range(5, 9) else 500.0

    def fast(t: int) -> float:
        return 50.0 if t % 60 >= 30 else 500.0

    files = {SLOW: directory / "slow.csv", FAST: directory / "fast.csv"}
    _write_replay(files[SLOW], SLOW, HOUR_S, 2 * 168, slow)
    _write_replay(files[FAST], FAST, 30, WEEK_S // 30, fast)
    return {zone: str(path) for zone, path in files.items()}


# --- the processes ----------------------------------------------------------------------------


def _metric(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    wanted = [f'{k}="{v}"' for k, v in (labels or {}).items()]
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if (head == name or head.startswith(name + "{")) and all(w in head for w in wanted):
            return float(value)
    return None


@dataclass
class Reconciler:
    identity: str
    process: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> float | None:
        return _metric(self.metrics(), name, labels)

    def leads(self) -> bool:
        return self.metric("greenlight_reconciler_leader") == 1.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    """The plane, the test's replay files, and what a test starts on it."""

    plane: LocalControlPlane
    api: client.ApiClient
    workdir: Path
    replay: dict[str, str]
    lease: str = field(default_factory=lambda: f"rc-{uuid.uuid4().hex[:8]}")
    started: list[Any] = field(default_factory=list)

    def failure_logs(self, tail: int = 3000) -> list[tuple[str, str]]:
        """The end of each greenlight process's log, for the report of a failed test."""
        return [
            (f"greenlight {process.identity} log ({process.log_path.name})", process.log()[-tail:])
            for process in self.started
        ]

    @property
    def batch(self) -> Any:
        return client.BatchV1Api(self.api)

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    def environ(self, **settings: str) -> dict[str, str]:
        key_file = self.workdir / "signing-keys"
        if not key_file.exists():
            key_file.write_bytes(SIGNING_KEY + b"\n")
        return {
            **os.environ,
            **self.plane.environ(),
            # Signed decisions, as the chart deploys them: Jobs this suite writes as the
            # webhook would are signed with the same key (``signed``).
            "GREENLIGHT_PROVENANCE__KEYS_FILE": str(key_file),
            "GREENLIGHT_REPLAY": json.dumps(
                {"files": self.replay, "embedded": False, "forecast_error_pct": 0}
            ),
            "GREENLIGHT_WEBHOOK__ZONE": SLOW,
            # Corrected forecasts are hourly: E2E-FAST's 30-second structure needs them raw.
            "GREENLIGHT_FORECAST": json.dumps({"correct_with_actuals": False}),
            **settings,
        }

    def reconciler(
        self, identity: str = "r1", *, provider_down: bool = False, **settings: str
    ) -> Reconciler:
        """Start ``greenlight reconcile`` and wait until it has listed the Jobs."""
        env = self.environ(
            GREENLIGHT_RECONCILER__LEASE_NAME=self.lease,
            GREENLIGHT_RECONCILER__HISTORY_CONFIGMAP=f"{self.lease}-history",
            GREENLIGHT_RECONCILER__LEASE_DURATION_S="4",
            GREENLIGHT_RECONCILER__RENEW_DEADLINE_S="3",
            GREENLIGHT_RECONCILER__RETRY_PERIOD_S="0.5",
            GREENLIGHT_RECONCILER__RELEASE_SPREAD_S="0",
            GREENLIGHT_RECONCILER__SWEEP_INTERVAL_S="2",
            GREENLIGHT_RECONCILER__HISTORY_FLUSH_S="2",
            **{f"GREENLIGHT_RECONCILER__{k.upper()}": v for k, v in settings.items()},
        )
        if provider_down:
            env["GREENLIGHT_REPLAY"] = json.dumps({"files": {}, "embedded": False})
        port = free_port()
        log_path = self.workdir / f"reconciler-{identity}-{len(self.started)}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webhook",
                "reconcile",
                "--kubeconfig",
                str(self.plane.kubeconfig),
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(port),
                "--identity",
                identity,
            ],
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        reconciler = Reconciler(identity, process, port, log_path)
        self.started.append(reconciler)

        def alive() -> None:
            if process.poll() is not None:
                raise AssertionError(f"greenlight reconcile exited: {reconciler.log()[-3000:]}")

        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
            timeout_s=60,
            what=f"reconciler {identity} to list the Jobs",
            still_possible=alive,
        )
        return reconciler

    def webhook(
        self, register: Callable[..., Any], *, zone: str = SLOW, with_reconciler: bool = False
    ) -> Reconciler:
        """Start ``greenlight serve`` (trusting the admin the reconcilers run as, its forecast
        for ``zone`` warm) and register it as the chart does."""
        cert_dir = self.workdir / "certs"
        ca_bundle = self.plane.issue_serving_certs(cert_dir)
        port = free_port()
        env = self.environ(
            GREENLIGHT_WEBHOOK__TRUSTED_USERNAMES=json.dumps(
                ["system:serviceaccount:greenlight:greenlight", ADMIN_USER]
            ),
            GREENLIGHT_WEBHOOK__MIN_WAIT_S="10",
            GREENLIGHT_WEBHOOK__ZONE=zone,
            GREENLIGHT_RECONCILER__LEASE_NAME=self.lease,
            GREENLIGHT_RECONCILER__RELEASE_SPREAD_S="0",
        )
        log_path = self.workdir / "serve.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webhook",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--cert-dir",
                str(cert_dir),
                "--kubeconfig",
                str(self.plane.kubeconfig),
                *(["--with-reconciler"] if with_reconciler else []),
            ],
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = Reconciler("webhook", process, port, log_path)  # same stop() semantics
        self.started.append(server)
        tls = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))

        def alive() -> None:
            if process.poll() is not None:
                raise AssertionError(f"greenlight serve exited: {log_path.read_text()[-3000:]}")

        wait_until(
            lambda: (
                httpx.get(f"https://127.0.0.1:{port}/readyz", verify=tls, timeout=2).status_code
                == 200
            ),
            timeout_s=60,
            what="greenlight serve to become ready",
            still_possible=alive,
        )
        register(f"https://127.0.0.1:{port}", ca_bundle)
        return server

    def job(self, namespace: str, name: str) -> Any:
        return self.batch.read_namespaced_job(name, namespace)

    def wait_job(
        self,
        namespace: str,
        name: str,
        condition: Callable[[Any], bool],
        what: str,
        timeout_s: float = 60,
    ) -> Any:
        return wait_until(
            lambda: (job := self.job(namespace, name)) is not None and condition(job) and job,
            timeout_s=timeout_s,
            what=f"job {namespace}/{name}: {what}",
        )

    def successful_job_patches(self) -> float:
        text = self.plane.kubectl("get", "--raw", "/metrics").stdout
        total = 0.0
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{") and all(
                label in line
                for label in (
                    'code="200"',
                    'resource="jobs"',
                    'subresource=""',
                    'verb="PATCH"',
                )
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def events(self, namespace: str, uid: str) -> list[Any]:
        listed = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.uid={uid}"
        )
        return list(listed.items)


@pytest.fixture
def cluster(
    workloads_plane: LocalControlPlane, kube_api: client.ApiClient, tmp_path: Path
) -> Iterator[Cluster]:
    core = client.CoreV1Api(kube_api)
    try:
        core.create_namespace({"metadata": {"name": "greenlight"}})
    except ApiException as e:
        if e.status != 409:
            raise
    state = Cluster(workloads_plane, kube_api, tmp_path, replay_files(tmp_path))
    try:
        yield state
    finally:
        for process in reversed(state.started):
            process.stop()


# --- Jobs -------------------------------------------------------------------------------------


SIGNING_KEY = secrets.token_hex(32).encode()


def signed(namespace: str, job: dict[str, Any]) -> dict[str, Any]:
    """``job`` with the signature the webhook would have written (the suite's key)."""
    metadata = job["metadata"]
    annotations = metadata["annotations"]
    annotations[keys.ADMISSION_UID] = f"e2e-{uuid.uuid4()}"
    annotations[keys.SIGNATURE] = SigningKeys((SIGNING_KEY,)).sign(
        namespace, metadata["name"], "", annotations
    )
    return job


def deferred_job(
    name: str,
    *,
    release_in_s: float,
    release_by_in_s: float,
    zone: str = SLOW,
    duration_s: int = 600,
    energy_kwh: float = 2.0,
    intensity_now: float = 500.0,
    node_selector: dict[str, str] | None = None,
    active_deadline_s: int | None = None,
) -> dict[str, Any]:
    """A Job as the webhook stores a deferral: suspended, with its plan."""
    now = datetime.now(UTC)
    spec: dict[str, Any] = {
        "suspend": True,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                    }
                ],
            }
        },
    }
    if node_selector:
        spec["template"]["spec"]["nodeSelector"] = node_selector
    if active_deadline_s is not None:
        spec["activeDeadlineSeconds"] = active_deadline_s
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "annotations": {
                keys.DECISION: "deferred",
                keys.REASON_CODE: "window",
                keys.ADMITTED_AT: format_time(now),
                keys.RELEASE_AT: format_time(now + timedelta(seconds=release_in_s)),
                keys.RELEASE_BY: format_time(now + timedelta(seconds=release_by_in_s)),
                keys.PLANNED_ZONE: zone,
                keys.PLANNED_DURATION_S: str(duration_s),
                keys.ENERGY_KWH: f"{energy_kwh:.3f}",
                keys.INTENSITY_NOW: f"{intensity_now:.1f}",
                keys.INTENSITY_PLANNED: "50.0",
                keys.SAVINGS_G: f"{energy_kwh * (intensity_now - 50):.1f}",
                keys.SAVINGS_PCT: "90.0",
            },
        },
        "spec": spec,
    }


def annotations(job: Any) -> dict[str, str]:
    return dict(job.metadata.annotations or {})


def released(job: Any) -> bool:
    return keys.RELEASED_AT in annotations(job)


def time_of(job: Any, key: str) -> datetime:
    return datetime.fromisoformat(annotations(job)[key])


def conditions(job: Any) -> set[str]:
    return {c.type for c in (job.status.conditions or []) if c.status == "True"}


# --- the tests --------------------------------------------------------------------------------


def test_a_deferred_job_is_released_at_its_window_runs_and_its_actual_emissions_are_recorded(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(opted_in=False)
    reconciler = cluster.reconciler()
    wait_until(reconciler.leads, timeout_s=60, what="the reconciler to lead")
    let_run = {
        "forged-run-now": ("run-now", "best-now", "no later window is cleaner than running now"),
        "ran-now": ("run-now", "best-now", "no later window is cleaner than running now"),
        "skipped": ("skipped", "helm-hook", "Helm hook Jobs run at once"),
    }
    for name, (decision, code, reason) in let_run.items():
        outputs = {keys.DECISION: decision, keys.REASON_CODE: code, keys.REASON: reason}
        if decision == "run-now":
            outputs |= {keys.INTENSITY_NOW: "500.0", keys.EMISSIONS_NOW_G: "1000.0"}
        job = plain_job(name, outputs)
        job["spec"]["template"]["spec"]["nodeSelector"] = NOWHERE
        cluster.batch.create_namespaced_job(
            namespace, job if name.startswith("forged") else signed(namespace, job)
        )
    cluster.batch.create_namespaced_job(
        namespace, signed(namespace, deferred_job("train", release_in_s=6, release_by_in_s=300))
    )

    job = cluster.wait_job(namespace, "train", released, "released")
    assert job.spec.suspend is False
    assert annotations(job)[keys.RELEASE_REASON] == "window"
    late = time_of(job, keys.RELEASED_AT) - time_of(job, keys.RELEASE_AT)
    assert timedelta(0) <= late <= timedelta(seconds=2)

    job = cluster.wait_job(
        namespace, "train", lambda j: keys.ACTUAL_EMISSIONS_G in annotations(j), "accounted"
    )
    assert "Complete" in conditions(job)
    outputs = annotations(job)
    run_s = float(outputs[keys.ACTUAL_RUN_S])
    # 2 kWh over the planned 600 s, for the real run, at the replayed 500 g/kWh.
    assert float(outputs[keys.ACTUAL_ENERGY_KWH]) == pytest.approx(2.0 * run_s / 600, abs=1e-3)
    assert outputs[keys.ACTUAL_INTENSITY] == "500.0"
    emissions = float(outputs[keys.ACTUAL_EMISSIONS_G])
    assert emissions == pytest.approx(500.0 * 2.0 * run_s / 600, abs=0.1)
    assert float(outputs[keys.ACTUAL_SAVINGS_G]) == pytest.approx(0.0, abs=0.1)  # same grid

    reasons = wait_until(
        lambda: (
            (found := {e.reason for e in cluster.events(namespace, job.metadata.uid)})
            >= {"Deferred", "Released", "Completed"}
            and found
        ),
        timeout_s=30,
        what="the Deferred, Released and Completed Events",
    )
    assert reasons >= {"Deferred", "Released", "Completed"}
    described = cluster.plane.kubectl("describe", "job", "train", "-n", namespace).stdout
    assert "reason window" in described
    assert "actual emissions" in described

    # One Event each for the Jobs the webhook let run, recorded in watch order: the unsigned
    # one, created first, would have been recorded before them.
    let_run_events = {
        name: [
            (e.reason, e.type, e.message)
            for e in cluster.events(namespace, cluster.job(namespace, name).metadata.uid)
            if e.source.component == "greenlight"  # not the Job controller's SuccessfulCreate
        ]
        for name in let_run
    }
    assert let_run_events == {
        "forged-run-now": [],
        "ran-now": [
            (
                "RanNow",
                "Normal",
                "Ran at once [best-now]: no later window is cleaner than running now "
                "(intensity now 500 g/kWh, expected emissions 1000 g CO2eq)",
            )
        ],
        "skipped": [
            (
                "Skipped",
                "Normal",
                "Not deferrable, ran at once [helm-hook]: Helm hook Jobs run at once",
            )
        ],
    }

    assert reconciler.metric("greenlight_overdue_deferred_jobs") == 0.0
    assert reconciler.metric("greenlight_completed_deferred_jobs_total", namespace=namespace) == 1
    history = wait_until(
        lambda: cluster.core.read_namespaced_config_map(f"{cluster.lease}-history", "greenlight"),
        timeout_s=30,
        what="the intensity history ConfigMap",
    )
    assert SLOW in json.loads(history.data["history.json"])["zones"]

    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "report",
            "--namespace",
            namespace,
            "--format",
            "json",
            "--kubeconfig",
            str(cluster.plane.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=cluster.environ(),
    )
    document = json.loads(report.stdout)
    (row,) = [r for r in document["jobs"] if r["name"] == "train"]  # the others ran at once
    assert (row["name"], row["release_reason"]) == ("train", "window")
    assert row["actual_emissions_g"] == pytest.approx(emissions, abs=0.1)
    assert document["namespaces"][0]["accounted"] == 1


def test_with_every_provider_down_jobs_are_released_by_their_deadline(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(opted_in=False)
    reconciler = cluster.reconciler(provider_down=True)
    for name, (release_in, by_in) in {"planned": (5, 12), "at-deadline": (8, 8)}.items():
        cluster.batch.create_namespaced_job(
            namespace,
            signed(
                namespace,
                deferred_job(
                    name, release_in_s=release_in, release_by_in_s=by_in, node_selector=NOWHERE
                ),
            ),
        )
    for name in ("planned", "at-deadline"):
        job = cluster.wait_job(namespace, name, released, "released")
        assert job.spec.suspend is False
        assert time_of(job, keys.RELEASED_AT) <= time_of(job, keys.RELEASE_BY) + timedelta(
            seconds=1
        )
        assert annotations(job)[keys.RELEASE_REASON] == "provider-outage"
    assert reconciler.metric("greenlight_overdue_deferred_jobs") == 0.0
    assert reconciler.metric("greenlight_releases_total", reason="provider-outage") == 2.0


def test_a_waiting_job_is_replanned_every_interval_each_re_plan_on_the_job_counted_and_logged(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    """Issue 16: with replan_interval_s shortened to 3 s a Job deferred by 10 min is re-planned
    at least three times while it waits, and each re-plan shows as the replan-checked-at and
    replan-checks annotations, a greenlight_replans_total sample and a ``replan`` log line.
    The provider is down, so every re-plan keeps the plan (the outcome is certain)."""
    namespace = make_namespace(opted_in=False)
    reconciler = cluster.reconciler(provider_down=True, replan_interval_s="3")
    cluster.batch.create_namespaced_job(
        namespace,
        signed(
            namespace,
            deferred_job("waits", release_in_s=600, release_by_in_s=1200, node_selector=NOWHERE),
        ),
    )
    seen: dict[int, datetime] = {}

    def three_replans() -> bool:
        job = cluster.job(namespace, "waits")
        marks = annotations(job)
        if keys.REPLAN_CHECKS in marks:
            seen.setdefault(int(marks[keys.REPLAN_CHECKS]), time_of(job, keys.REPLAN_CHECKED_AT))
        return len(seen) >= 3

    wait_until(three_replans, timeout_s=180, what="three re-plans recorded on the Job")
    job = cluster.job(namespace, "waits")
    assert job.spec.suspend is True
    assert not released(job)
    assert keys.REPLAN_COUNT not in annotations(job)  # kept: release-at did not move
    times = [seen[n] for n in sorted(seen)]
    assert times == sorted(times)
    assert len(set(times)) == len(times)  # one record per re-plan, none rewritten
    checks = int(annotations(job)[keys.REPLAN_CHECKS])
    assert checks >= 3
    kept = reconciler.metric("greenlight_replans_total", outcome="kept")
    assert kept is not None
    assert kept >= checks
    lines = [li for li in reconciler.log().splitlines() if f"replan job={namespace}/waits" in li]
    assert len(lines) >= checks, lines
    # One PlanKept Event per re-plan recorded: a waiting Job keeps a recent Event.
    kept_events = wait_until(
        lambda: (
            (
                found := [
                    e.metadata.name
                    for e in cluster.events(namespace, job.metadata.uid)
                    if e.reason == "PlanKept"
                ]
            )
            and len(found) >= 3
            and found
        ),
        timeout_s=60,
        what="three PlanKept Events",
    )
    assert len(set(kept_events)) == len(kept_events)


def test_a_reconciler_killed_while_jobs_come_due_releases_each_exactly_once_after_restart(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(opted_in=False)
    first = cluster.reconciler("restarting", max_replans="0")
    names = [f"job-{i}" for i in range(8)]
    for i, name in enumerate(names):
        cluster.batch.create_namespaced_job(
            namespace,
            signed(
                namespace,
                deferred_job(
                    name, release_in_s=4 + 2 * i, release_by_in_s=600, node_selector=NOWHERE
                ),
            ),
        )
    patches_before = cluster.successful_job_patches()
    wait_until(
        lambda: sum(released(cluster.job(namespace, n)) for n in names) >= 2,
        timeout_s=60,
        what="the first releases",
    )
    first.kill()
    last_due = max(time_of(cluster.job(namespace, n), keys.RELEASE_AT) for n in names)
    wait_until(
        lambda: datetime.now(UTC) > last_due + timedelta(seconds=1),
        timeout_s=60,
        what="every Job to come due while the reconciler is down",
    )
    waiting = [n for n in names if not released(cluster.job(namespace, n))]
    assert waiting, "some Jobs must have come due while the reconciler was down"

    cluster.reconciler("restarting", max_replans="0")
    for name in names:
        job = cluster.wait_job(namespace, name, released, "released after the restart")
        assert job.spec.suspend is False
        assert annotations(job)[keys.RELEASE_REASON] == "window"
        released_events = [
            e for e in cluster.events(namespace, job.metadata.uid) if e.reason == "Released"
        ]
        assert len(released_events) <= 1
    assert cluster.successful_job_patches() - patches_before == len(names)


def test_two_replicas_elect_one_leader_and_the_other_takes_over_releasing_each_job_once(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(opted_in=False)
    replicas = [cluster.reconciler(name, max_replans="0") for name in ("alpha", "beta")]
    leader = wait_until(
        lambda: next((r for r in replicas if r.leads()), None),
        timeout_s=30,
        what="a leader",
    )
    follower = next(r for r in replicas if r is not leader)
    assert not follower.leads()

    names = [f"job-{i}" for i in range(6)]
    for i, name in enumerate(names):
        cluster.batch.create_namespaced_job(
            namespace,
            signed(
                namespace,
                deferred_job(
                    name, release_in_s=3 + 2 * i, release_by_in_s=600, node_selector=NOWHERE
                ),
            ),
        )
    patches_before = cluster.successful_job_patches()
    wait_until(
        lambda: sum(released(cluster.job(namespace, n)) for n in names) >= 2,
        timeout_s=60,
        what="the leader's first releases",
    )
    leader.kill()
    for name in names:
        cluster.wait_job(namespace, name, released, "released by one replica or the other")
    assert follower.leads()
    assert cluster.successful_job_patches() - patches_before == len(names)
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease(cluster.lease, "greenlight")
    assert lease.spec.holder_identity == follower.identity
    assert lease.spec.lease_transitions >= 1


def test_active_deadline_seconds_counts_from_the_release_not_the_admission(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    namespace = make_namespace(opted_in=False)
    cluster.reconciler()
    created = datetime.now(UTC)
    cluster.batch.create_namespaced_job(
        namespace,
        signed(
            namespace,
            deferred_job("bounded", release_in_s=15, release_by_in_s=300, active_deadline_s=10),
        ),
    )
    job = cluster.wait_job(
        namespace, "bounded", lambda j: conditions(j) & {"Complete", "Failed"}, "finished"
    )
    # Counted from the admission, the deadline would have passed 5 s before the release.
    assert conditions(job) >= {"Complete"}
    assert "Failed" not in conditions(job)
    assert job.status.start_time >= created + timedelta(seconds=14)


def test_a_cronjob_run_waits_only_within_its_own_max_delay_so_no_scheduled_run_is_lost(
    cluster: Cluster,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    namespace = make_namespace(opted_in=True)
    cluster.webhook(register_webhook, zone=FAST)
    cluster.reconciler()

    def cronjob(name: str, template_annotations: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": name},
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {
                    "metadata": {"annotations": template_annotations},
                    "spec": plain_job("x")["spec"],
                },
            },
        }

    # Dirty in the first half of every minute, clean in the second: a run scheduled on the
    # minute waits ~30 s, inside its own 40 s max-delay, and is done long before the next.
    capped = {keys.ZONE: FAST, keys.MAX_DELAY: "40s", keys.EXPECTED_DURATION: "10s"}
    batch_api = client.BatchV1Api(cluster.api)
    batch_api.create_namespaced_cron_job(namespace, cronjob("capped", capped))
    batch_api.create_namespaced_cron_job(namespace, cronjob("uncapped", {keys.ZONE: FAST}))

    def runs(owner: str) -> list[Any]:
        jobs = cluster.batch.list_namespaced_job(namespace).items
        return [
            j for j in jobs if any(ref.name == owner for ref in (j.metadata.owner_references or []))
        ]

    wait_until(
        lambda: sum("Complete" in conditions(j) for j in runs("capped")) >= 2,
        timeout_s=200,
        what="two scheduled runs of the capped CronJob to complete",
    )
    capped_runs = runs("capped")
    deferred = [j for j in capped_runs if annotations(j).get(keys.DECISION) == "deferred"]
    assert deferred, [annotations(j).get(keys.REASON) for j in capped_runs]
    for job in deferred:
        assert time_of(job, keys.RELEASED_AT) <= time_of(job, keys.RELEASE_BY) + timedelta(
            seconds=1
        )
        assert time_of(job, keys.RELEASE_BY) <= time_of(job, keys.ADMITTED_AT) + timedelta(
            seconds=40
        )
    for job in runs("uncapped"):
        outputs = annotations(job)
        assert outputs[keys.DECISION] == "skipped"
        assert outputs[keys.REASON_CODE] == "cronjob"
        assert keys.RELEASED_AT not in outputs
    for name in ("capped", "uncapped"):
        batch_api.delete_namespaced_cron_job(name, namespace)


def test_users_stay_in_control_of_their_jobs(
    cluster: Cluster,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    namespace = make_namespace(opted_in=True)
    cluster.webhook(register_webhook)
    reconciler = cluster.reconciler()
    batch = cluster.batch
    hours = {keys.ZONE: SLOW, keys.EXPECTED_DURATION: "1h"}
    for name in ("early", "skipped", "deleted"):
        batch.create_namespaced_job(namespace, plain_job(name, hours))
        job = cluster.job(namespace, name)
        assert annotations(job)[keys.DECISION] == "deferred"
        assert job.spec.suspend is True
    batch.create_namespaced_job(namespace, plain_job("theirs", hours, suspend=True))

    # Released early by its user: recorded as manual, the spec left as the user set it.
    batch.patch_namespaced_job("early", namespace, {"spec": {"suspend": False}})
    generation = cluster.job(namespace, "early").metadata.generation
    job = cluster.wait_job(namespace, "early", released, "manual release recorded")
    assert annotations(job)[keys.RELEASE_REASON] == "manual"
    assert job.metadata.generation == generation
    assert job.spec.suspend is False

    # greenlight.dev/skip added while it waits: released at once.
    batch.patch_namespaced_job(
        "skipped", namespace, {"metadata": {"annotations": {keys.SKIP: "true"}}}
    )
    job = cluster.wait_job(namespace, "skipped", released, "released on skip")
    assert annotations(job)[keys.RELEASE_REASON] == "skip"
    assert job.spec.suspend is False

    # Created suspended by its user: the reconciler has seen it (it was created before the
    # skip above was acted on) and never touches it.
    theirs = cluster.job(namespace, "theirs")
    assert annotations(theirs)[keys.REASON_CODE] == "user-suspended"
    assert theirs.spec.suspend is True
    assert not released(theirs)

    # Deleted while waiting: forgotten.
    waiting = wait_until(
        lambda: reconciler.metric("greenlight_deferred_jobs"), timeout_s=10, what="the gauge"
    )
    batch.delete_namespaced_job("deleted", namespace)
    wait_until(
        lambda: reconciler.metric("greenlight_deferred_jobs") == waiting - 1,
        timeout_s=30,
        what="the deleted Job to be forgotten",
    )
    for name, reason in (("early", "manual"), ("skipped", "skip")):
        uid = cluster.job(namespace, name).metadata.uid
        messages = wait_until(
            lambda uid=uid: [
                e.message for e in cluster.events(namespace, uid) if e.reason == "Released"
            ],
            timeout_s=30,
            what=f"the Released Event of {name}",
        )
        assert f"reason {reason}" in messages[0]


def test_serve_with_reconciler_runs_both_in_one_process(
    cluster: Cluster,
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    namespace = make_namespace(opted_in=True)
    server = cluster.webhook(register_webhook, with_reconciler=True)
    cluster.batch.create_namespaced_job(
        namespace, signed(namespace, deferred_job("both", release_in_s=4, release_by_in_s=300))
    )
    job = cluster.wait_job(namespace, "both", released, "released by the in-process reconciler")
    assert annotations(job)[keys.RELEASE_REASON] == "window"
    metrics = httpx.get(
        f"https://127.0.0.1:{server.metrics_port}/metrics",
        verify=ssl.create_default_context(cafile=str(cluster.workdir / "certs" / "ca.crt")),
    ).text
    releases = _metric(metrics, "greenlight_releases_total", {"reason": "window"})
    assert releases is not None
    assert releases >= 1
    assert _metric(metrics, "greenlight_overdue_deferred_jobs") == 0.0
    assert _metric(metrics, "greenlight_admission_requests_total") is not None


def test_status_lists_what_waits_per_namespace_from_the_apiserver(
    cluster: Cluster, make_namespace: Callable[..., str]
) -> None:
    first, second = make_namespace(opted_in=False), make_namespace(opted_in=False)
    cluster.batch.create_namespaced_job(
        first,
        signed(first, deferred_job("later", release_in_s=5 * HOUR_S, release_by_in_s=9 * HOUR_S)),
    )
    cluster.batch.create_namespaced_job(
        first, signed(first, deferred_job("overdue", release_in_s=-60, release_by_in_s=8 * HOUR_S))
    )
    cluster.batch.create_namespaced_job(
        second,
        signed(second, deferred_job("other", release_in_s=2 * HOUR_S, release_by_in_s=9 * HOUR_S)),
    )
    gone = deferred_job("released", release_in_s=-60, release_by_in_s=HOUR_S)
    gone["spec"]["suspend"] = False
    gone["metadata"]["annotations"][keys.RELEASED_AT] = format_time(datetime.now(UTC))
    cluster.batch.create_namespaced_job(first, gone)

    def status(*extra: str) -> str:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "webhook",
                "status",
                "--kubeconfig",
                str(cluster.plane.kubeconfig),
                *extra,
            ],
            capture_output=True,
            text=True,
            check=True,
            env=cluster.environ(),
        ).stdout

    document = json.loads(status("--output", "json"))
    mine = [j for j in document["jobs"] if j["namespace"] in (first, second)]
    in_first = [(first, "overdue", True), (first, "later", False)]  # soonest release first
    in_second = [(second, "other", False)]
    assert [(j["namespace"], j["name"], j["overdue"]) for j in mine] == (
        in_first + in_second if first < second else in_second + in_first
    )
    later = next(j for j in mine if j["name"] == "later")
    assert later["reason_code"] == "window"
    assert later["expected_savings_g"] == pytest.approx(900.0)
    assert datetime.fromisoformat(later["release_by"]) > datetime.fromisoformat(later["release_at"])
    sums = {n["namespace"]: n for n in document["namespaces"]}
    assert (sums[first]["waiting"], sums[first]["overdue"]) == (2, 1)
    assert sums[second]["waiting"] == 1

    table = status("--namespace", first)
    assert table.splitlines()[0].split()[:4] == ["NAMESPACE", "JOB", "RELEASE", "AT"]
    assert "OVERDUE" in next(line for line in table.splitlines() if " overdue " in line)
    assert "released" not in table
    assert second not in table

"""``greenlight bench reconcile``: the reconciler at scale on a real apiserver.

Starts a local control plane (etcd + kube-apiserver, no Job controller: released Jobs create no
pods) unless ``--kubeconfig`` names a cluster, and creates ``--jobs`` deferred Jobs — suspended,
with the plan annotations the webhook writes, spread over ten namespaces — whose planned
releases are spread evenly over ``--spread-s`` seconds, starting ``--lead-s`` after the
benchmark starts. Forecasts are a replay file of a flat grid, so every due Job is re-checked by
the planner and released at its planned time.

1. ``greenlight reconcile`` (process A) runs while the Jobs are created, then is killed with
   SIGKILL once it tracks them all; process B (same identity) starts: the restart relist time
   is B's ``greenlight_reconciler_relist_seconds`` (list, parse, schedule every Job).
2. A watch in this process records when each Job is first seen released. Lateness is that time
   minus the Job's release target (its planned time plus its release spread offset).
3. Requests per release: the apiserver's own counters of PATCH and GET requests on Jobs while
   B releases, divided by the releases (Events are counted apart).
4. Peak memory: the larger VmHWM (peak resident set) of A and B.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from webhook.config.reconciler import ReconcilerSettings
from webhook.core import annotations as keys
from webhook.core.annotations import format_time
from webhook.devtools.localcluster import LocalControlPlane, free_port
from webhook.reconciler.decide import release_target, track
from webhook.reconciler.feed import Changed, FeedMessage, JobFeed, Listed
from webhook.reconciler.kube import AlreadyExistsError, Kube

log = logging.getLogger(__name__)

ZONE = "BENCH"
NAMESPACES = 10


# --- pure helpers ----------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def request_counts(metrics_text: str) -> dict[tuple[str, str, str], float]:
    """``apiserver_request_total`` summed by (verb, resource, subresource)."""
    counts: dict[tuple[str, str, str], float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        head, _, value = line.rpartition(" ")
        labels = dict(
            part.split("=", 1) for part in head[head.index("{") + 1 : -1].split(",") if "=" in part
        )
        verb, resource, subresource = (
            labels.get(k, "").strip('"') for k in ("verb", "resource", "subresource")
        )
        key = (verb, resource, subresource)
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def replay_csv(path: Path, zone: str, value: float) -> None:
    """Two weeks of hourly data (Electricity Maps export format) at ``value`` g/kWh."""
    start = datetime(2023, 3, 6, tzinfo=UTC)  # a Monday
    lines = [
        "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
        "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
        "Data Source,Data Estimated,Data Estimation Method"
    ]
    for hour in range(2 * 168):
        moment = start + timedelta(hours=hour)
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S},Bench,Bench,{zone},{value},{value},50,50,b,false,"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def bench_job(name: str, *, admitted: datetime, release_at: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "annotations": {
                keys.DECISION: "deferred",
                keys.REASON_CODE: "window",
                keys.ADMITTED_AT: format_time(admitted),
                keys.RELEASE_AT: format_time(release_at),
                keys.RELEASE_BY: format_time(release_at + timedelta(hours=1)),
                keys.PLANNED_ZONE: ZONE,
                keys.PLANNED_DURATION_S: "3600",
                keys.ENERGY_KWH: "1.000",
                keys.INTENSITY_NOW: "300.0",
                keys.INTENSITY_PLANNED: "300.0",
                keys.SAVINGS_G: "0.0",
                keys.SAVINGS_PCT: "0.0",
            },
        },
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            },
        },
    }


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    jobs: int = 10_000
    spread_s: float = 120.0
    lead_s: float | None = None
    """Seconds from the start to the first planned release (None: 60 + 0.012 x jobs)."""
    creators: int = 8
    kubeconfig: str | None = None


@dataclass
class Process:
    """A ``greenlight reconcile`` process and its metrics port."""

    popen: subprocess.Popen[bytes]
    port: int

    def get(self, path: str) -> tuple[int, str]:
        response = httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)
        return response.status_code, response.text

    def metric(self, name: str) -> float | None:
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None


class Observer:
    """This process's own watch of the Jobs: when each was first seen released."""

    def __init__(self, kube: Kube, expected: int) -> None:
        self.released: dict[str, float] = {}
        self._lock = threading.Lock()
        self.all_seen = threading.Event()
        self._expected = expected
        self._feed = JobFeed(kube, self._sink, page_size=500, watch_timeout_s=600)

    def start(self) -> None:
        threading.Thread(target=self._feed.run, name="bench-observer", daemon=True).start()

    def stop(self) -> None:
        self._feed.stop()

    def _sink(self, message: FeedMessage) -> None:
        changed = message.jobs if isinstance(message, Listed) else []
        if isinstance(message, Changed) and message.job is not None:
            changed = [message.job]
        now = time.time()
        with self._lock:
            for job in changed:
                if not job.suspended and job.uid not in self.released:
                    self.released[job.uid] = now
            if len(self.released) >= self._expected:
                self.all_seen.set()

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.released)


def _wait(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)  # polling another process's state


@contextmanager
def _cluster(kubeconfig: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    if kubeconfig:
        yield kubeconfig, dict(os.environ)
        return
    with LocalControlPlane() as plane:
        yield str(plane.kubeconfig), plane.environ()


class ReconcileBenchmark:
    """One run of the benchmark (see the module docstring); ``measure()`` returns the results."""

    def __init__(self, config: BenchConfig, stack: ExitStack) -> None:
        self.config = config
        self._stack = stack
        self._tag = uuid.uuid4().hex[:6]
        self.namespaces = [f"glbench-{self._tag}-{i}" for i in range(NAMESPACES)]
        self.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="glbench-")))
        self.kubeconfig, environ = stack.enter_context(_cluster(config.kubeconfig))
        self.kube = Kube.connect(self.kubeconfig, pool_size=config.creators + 4)
        stack.callback(self.kube.close)
        replay = self.workdir / "bench.csv"
        replay_csv(replay, ZONE, 300.0)
        self._env = {
            **environ,
            "GREENLIGHT_REPLAY": json.dumps(
                {"files": {ZONE: str(replay)}, "embedded": False, "forecast_error_pct": 0}
            ),
            "GREENLIGHT_RECONCILER__LEASE_NAME": f"glbench-{self._tag}",
            "GREENLIGHT_RECONCILER__HISTORY_CONFIGMAP": f"glbench-{self._tag}-history",
        }
        self.targets: dict[str, float] = {}
        self._targets_lock = threading.Lock()
        self._spread_s = ReconcilerSettings().release_spread_s

    def start_reconciler(self, name: str) -> tuple[Process, float]:
        """Start ``greenlight reconcile``; it and the seconds until it had listed every Job."""
        port = free_port()
        started = time.monotonic()
        popen = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "webhook",
                "reconcile",
                "--kubeconfig",
                self.kubeconfig,
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(port),
                "--identity",
                f"glbench-{self._tag}",
            ],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / f"{name}.log").open("wb"),
        )
        process = Process(popen, port)

        def stop() -> None:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                try:
                    popen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait()

        self._stack.callback(stop)

        def ready() -> bool:
            if popen.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise OSError(f"reconciler {name} exited: {tail}")
            try:
                return process.get("/readyz")[0] == 200
            except httpx.HTTPError:
                return False

        _wait(ready, 120, f"reconciler {name} to list the Jobs", 0.05)
        return process, time.monotonic() - started

    def create_jobs(self, began: datetime) -> float:
        """Create the deferred Jobs; the seconds it took."""
        config = self.config
        lead_s = config.lead_s if config.lead_s is not None else 60.0 + 0.012 * config.jobs
        first_release = began + timedelta(seconds=lead_s)

        def create(index: int) -> None:
            release_at = first_release + timedelta(seconds=config.spread_s * index / config.jobs)
            body = bench_job(f"job-{index}", admitted=began, release_at=release_at)
            try:
                created = self.kube.create_job(self.namespaces[index % NAMESPACES], body)
            except AlreadyExistsError:
                return
            job = track(created)
            if job is None or job.deferral is None:
                raise OSError(f"job-{index} came back without its plan")
            target = release_target(job.uid, job.deferral, self._spread_s).timestamp()
            with self._targets_lock:
                self.targets[job.uid] = target

        creating = time.monotonic()
        with ThreadPoolExecutor(max_workers=config.creators) as pool:
            list(pool.map(create, range(config.jobs)))
        return time.monotonic() - creating

    def measure(self) -> dict[str, Any]:
        jobs = self.config.jobs
        for namespace in (*self.namespaces, "greenlight"):
            self.kube.create_namespace(namespace)
        if self.config.kubeconfig:
            for namespace in self.namespaces:
                self._stack.callback(self.kube.delete_namespace, namespace)
        first, _ = self.start_reconciler("a")
        observer = Observer(self.kube, jobs)
        observer.start()
        self._stack.callback(observer.stop)
        create_s = self.create_jobs(datetime.now(UTC))
        _wait(
            lambda: (first.metric("greenlight_deferred_jobs") or 0) >= jobs,
            300,
            "reconciler A to track every Job",
        )
        peak_a = peak_rss_mb(first.popen.pid)
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait()

        second, restart_s = self.start_reconciler("b")
        relist_s = second.metric("greenlight_reconciler_relist_seconds") or float("nan")
        before = request_counts(self.kube.apiserver_metrics())
        ready_at = time.time()
        last_target = max(self.targets.values())
        observer.all_seen.wait(timeout=max(last_target - time.time(), 0) + 180)
        after = request_counts(self.kube.apiserver_metrics())
        peak_b = peak_rss_mb(second.popen.pid)

        def delta(verb: str, resource: str) -> float:
            key = (verb, resource, "")
            return after.get(key, 0.0) - before.get(key, 0.0)

        seen = observer.snapshot()
        lateness = [seen[uid] - target for uid, target in self.targets.items() if uid in seen]
        released = len(lateness)
        requests = delta("PATCH", "jobs") + delta("GET", "jobs") + delta("PUT", "jobs")
        return {
            "jobs": jobs,
            "released": released,
            "lateness_p50_s": round(percentile(lateness, 50), 3),
            "lateness_p99_s": round(percentile(lateness, 99), 3),
            "lateness_max_s": round(max(lateness, default=float("nan")), 3),
            "early_releases": sum(late < 0 for late in lateness),
            "requests_per_release": round(requests / released, 3) if released else None,
            "job_patches": delta("PATCH", "jobs"),
            "job_gets": delta("GET", "jobs"),
            "events_per_release": (
                round(delta("POST", "events") / released, 3) if released else None
            ),
            "peak_rss_mb": round(max(peak_a, peak_b), 1),
            "peak_rss_a_mb": round(peak_a, 1),
            "peak_rss_b_mb": round(peak_b, 1),
            "relist_s": round(relist_s, 3),
            "restart_to_ready_s": round(restart_s, 3),
            "create_s": round(create_s, 1),
            "due_before_restart_ready": sum(t < ready_at for t in self.targets.values()),
        }


def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    """Run the benchmark on ``config``; every process and the local plane stopped after."""
    with ExitStack() as stack:
        return ReconcileBenchmark(config, stack).measure()

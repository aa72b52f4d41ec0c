"""The reconciler's running parts: one controller thread around the pure decision.

Threads (the Kubernetes client is synchronous):

- the **feed** lists and watches Jobs and sends :class:`TrackedJob` records to the inbox;
- the **controller** owns all state — the tracked Jobs and one timer per Job — and is the only
  thread that decides: on every message and every due timer it calls ``decide`` and carries
  the action out (timers, writes, Events);
- **writers** (a small pool) send the PATCHes, each with the resourceVersion the decision was
  made on. A 409 Conflict is answered by reading the Job again and deciding again on what is
  really there, so a concurrent change is never overwritten;
- the **lease keeper** holds or follows the Lease; only the leader writes. Followers watch and
  keep timers too, so a new leader re-decides every Job at once and releases what is due;
- the **event writer** records Kubernetes Events off the release path (deterministic names:
  409 AlreadyExists means recorded already);
- the **history writer** persists observed intensity to a ConfigMap now and then (leader only).

Timers only wake the controller when something is due; a sweeper every ``sweep_interval_s``
re-decides overdue Jobs (a safety net) and sets the overdue gauge, which should read 0.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from webhook.config.reconciler import ReconcilerSettings
from webhook.core.cost import PriceModel
from webhook.core.forecast import ForecastResult, ForecastSnapshots
from webhook.core.planner import PlannerSettings
from webhook.core.provenance import SigningKeys
from webhook.core.series import StepSeries, from_epoch
from webhook.reconciler import events as job_events
from webhook.reconciler.decide import (
    Account,
    Action,
    Forget,
    Knowledge,
    Move,
    RecordManual,
    Release,
    ReleaseReason,
    Track,
    TrackedJob,
    Wait,
    decide,
    patch_for,
)
from webhook.reconciler.feed import (
    Changed,
    FeedMessage,
    Forged,
    JobFeed,
    JobSource,
    ListDone,
    Listed,
    NotDeferred,
    Unreadable,
    read_job,
)
from webhook.reconciler.history import DATA_KEY, HistoryFormatError, IntensityHistory
from webhook.reconciler.kube import (
    AlreadyExistsError,
    ConflictError,
    KubeError,
    NotFoundError,
    Page,
)
from webhook.reconciler.lease import Elector, LeaseRecord, record_from_spec, spec_from_record
from webhook.reconciler.timers import TimerQueue
from webhook.telemetry.metrics import ReconcilerMetrics
from webhook.workloads.base import Workload
from webhook.workloads.job import JOB
from webhook.workloads.ownership import job_annotations

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
MAX_SET_ASIDE = 100_000  # remembered versions of unreadable Jobs (then forgotten, and re-warned)
DRAIN_BATCH = 1000
GAUGE_INTERVAL_S = 1.0


class WorkloadAPI(JobSource, Protocol):
    """The calls on the objects of one workload kind (``Kube`` for Jobs, ``CustomWorkloads``
    for the others)."""

    def get_job(self, namespace: str, name: str) -> dict[str, Any]: ...

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...


class ReconcilerAPI(Protocol):
    """The adapter calls the reconciler makes (``webhook.reconciler.kube.Kube``)."""

    def for_workload(self, workload: Workload) -> WorkloadAPI: ...

    def create_event(self, namespace: str, event: dict[str, Any]) -> None: ...

    def list_events(
        self, *, field_selector: str, limit: int, continue_token: str | None = None
    ) -> Page: ...

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]: ...

    def replace_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> dict[str, Any]: ...

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_config_map(self, namespace: str, config_map: dict[str, Any]) -> None: ...

    def replace_config_map(self, namespace: str, name: str, config_map: dict[str, Any]) -> None: ...


def default_identity() -> str:
    """$POD_NAME in a cluster (stable across container restarts), else host-pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


# --- Messages to the controller besides the feed's ------------------------------------------


@dataclass(frozen=True)
class _Written:
    uid: str
    action: Action
    before: TrackedJob
    job: TrackedJob | None
    at: float


@dataclass(frozen=True)
class _Conflict:
    uid: str
    before: TrackedJob
    fresh: TrackedJob | None


@dataclass(frozen=True)
class _Gone:
    uid: str


@dataclass(frozen=True)
class _Failed:
    uid: str
    error: str


@dataclass(frozen=True)
class _Leadership:
    leading: bool


class _Stop:
    pass


_Message = FeedMessage | _Written | _Conflict | _Gone | _Failed | _Leadership | _Stop


@dataclass(frozen=True, slots=True)
class _QueuedEvent:
    event: job_events.JobEvent
    at: float


class _Prefetch:
    """Tells the event writer to read which Deferred Events exist (a new leader)."""


@dataclass(slots=True)
class _Memory:
    """What the controller remembers of a Job beyond its record."""

    check_at: datetime | None = None
    """The re-plan check scheduled for the Job (see ``decide``'s ``scheduled_check``)."""
    failures: int = 0
    deferred_event: bool = False


class Reconciler:
    """Releases deferred Jobs on time; see the module docstring. ``start``/``stop`` from any
    thread, or ``await run()``."""

    def __init__(
        self,
        kube: ReconcilerAPI,
        *,
        settings: ReconcilerSettings,
        metrics: ReconcilerMetrics,
        planner: PlannerSettings | None = None,
        forecast_max_age_s: float = 6 * 3600.0,
        forecasts: ForecastSnapshots | None = None,
        forecast_ready: Callable[[str], bool] = lambda zone: True,
        history: IntensityHistory | None = None,
        prices: PriceModel | None = None,
        want_zone: Callable[[str], None] = lambda zone: None,
        identity: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        writers: Executor | None = None,
        signing_keys: SigningKeys | None = None,
        workloads: Sequence[Workload] = (JOB,),
    ) -> None:
        self._kube = kube
        if not workloads:
            raise ValueError("the reconciler needs at least one workload kind")
        self._apis = {workload: kube.for_workload(workload) for workload in workloads}
        self._listed: set[Workload] = set()  # kinds listed at least once (synced: all of them)
        self._signing_keys = signing_keys
        if signing_keys is None:
            log.warning(
                "no signing keys configured: greenlight cannot tell its own decisions from "
                "forged ones (set provenance.keys_file; docs/security.md)"
            )
        self._settings = settings
        self._metrics = metrics
        metrics.start_at_zero(reason.value for reason in ReleaseReason)
        self._planner = planner or PlannerSettings()
        self._forecast_max_age_s = forecast_max_age_s
        self._forecasts = forecasts
        self._forecast_ready = forecast_ready
        self._history = history or IntensityHistory(
            points_per_zone=settings.history_points_per_zone,
            max_zones=settings.history_max_zones,
        )
        # The history version the ConfigMap is known to hold (0: empty, nothing to write).
        self._history_stored = 0
        self._prices = prices
        self._want_zone = want_zone
        self.identity = identity or settings.identity or default_identity()
        self._clock = clock
        self._monotonic = monotonic

        self._inbox: queue.Queue[_Message] = queue.Queue(maxsize=20000)
        self._jobs: dict[str, TrackedJob] = {}
        self._memory: dict[str, _Memory] = {}
        self._timers: TimerQueue[str] = TimerQueue()
        self._inflight: set[str] = set()
        self._zones: set[str] = set()
        # Versions (uid, resourceVersion) of Jobs set aside as unreadable, warned about once.
        self._set_aside: set[tuple[str, str]] = set()
        self._forged: set[str] = set()  # uids of forged Jobs warned about
        # Warnings about Jobs set aside while this replica follows: recorded when it leads.
        self._pending_warnings: dict[str, job_events.JobEvent] = {}
        self._leading = False
        self._next_sweep = 0.0
        self._next_gauges = 0.0
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The pool that sends the PATCHes (tests pass one that runs them in the caller).
        self._writers = writers or ThreadPoolExecutor(
            max_workers=settings.api_workers, thread_name_prefix="reconciler-write"
        )
        self._events: queue.Queue[_QueuedEvent | _Prefetch | None] = queue.Queue(
            maxsize=settings.event_queue_size
        )
        self._elector = Elector(
            self.identity,
            lease_duration_s=settings.lease_duration_s,
            renew_deadline_s=settings.renew_deadline_s,
        )
        self._elector_lock = threading.Lock()
        self._feeds = [
            JobFeed(
                api,
                self._post,
                workload=workload,
                page_size=settings.list_page_size,
                watch_timeout_s=settings.watch_timeout_s,
                retry_s=settings.retry_period_s,
                on_relist=self._on_relist,
                signing_keys=signing_keys,
            )
            for workload, api in self._apis.items()
        ]
        self.failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def history(self) -> IntensityHistory:
        return self._history

    def start(self) -> None:
        """Load the stored history, then start every thread."""
        self.load_history()
        feeds = [
            (f"reconciler-feed-{workload.plural}", feed.run)
            for workload, feed in zip(self._apis, self._feeds, strict=True)
        ]
        for name, target in (
            ("reconciler-lease", self._keep_lease),
            *feeds,
            ("reconciler-controller", self._control),
            ("reconciler-events", self._write_events),
            ("reconciler-history", self._write_history),
        ):
            thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as e:
                if not self._stop.is_set():
                    log.exception("reconciler thread %s died", threading.current_thread().name)
                    self.failure = e
                    self._stop.set()
                raise

        return run

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every thread; the leader hands the Lease over."""
        self._stop.set()
        for feed in self._feeds:
            feed.stop()
        self._post(_Stop())
        self._events.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._writers.shutdown(wait=True, cancel_futures=True)
        self._release_lease()

    def wait_synced(self, timeout_s: float | None = None) -> bool:
        return self._synced.wait(timeout_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_stopped(self, timeout_s: float | None = None) -> bool:
        return self._stop.wait(timeout_s)

    def leading(self) -> bool:
        with self._elector_lock:
            return self._elector.is_leader(self._monotonic())

    def _post(self, message: _Message) -> None:
        while not self._stop.is_set() or isinstance(message, _Stop):
            try:
                self._inbox.put(message, timeout=1.0)
                return
            except queue.Full:
                if isinstance(message, _Stop):
                    return
                continue

    def _on_relist(self, cause: str) -> None:
        self._metrics.relists.labels(cause=cause).inc()

    # -- the controller thread ---------------------------------------------------------------

    def _control(self) -> None:
        while True:
            timeout = self._sleep_s()
            try:
                message: _Message | None = self._inbox.get(timeout=timeout)
            except queue.Empty:
                message = None
            if not self.step(message):
                return

    def step(self, message: _Message | None = None) -> bool:
        """One turn of the controller loop, without waiting: handle ``message`` and what is in
        the inbox (up to a batch), then the due timers and the sweep. False on stop.

        The controller thread runs it after each wait; tests drive the controller with it,
        turn by turn, with a fake clock."""
        if message is None:
            message = self._next_message()
        for _ in range(DRAIN_BATCH):
            if message is None:
                break
            if isinstance(message, _Stop):
                return False
            self._handle(message)
            message = self._next_message()
        self._fire_timers()
        self._maybe_sweep()
        return True

    def _next_message(self) -> _Message | None:
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            return None

    def _sleep_s(self) -> float:
        now = self._clock()
        wake = min(self._next_sweep, self._next_gauges)
        next_timer = self._timers.next_at()
        if next_timer is not None:
            wake = min(wake, next_timer)
        return min(max(wake - now, 0.0), 5.0)

    def _handle(self, message: _Message) -> None:
        if isinstance(message, Listed):
            for job in message.jobs:
                self._store(job)
                self._evaluate(job.uid)
        elif isinstance(message, ListDone):
            self._list_done(message)
        elif isinstance(message, Changed):
            if message.job is None:
                self._drop(message.uid)
            else:
                self._store(message.job)
                self._evaluate(message.uid)
        elif isinstance(message, Unreadable):
            self._unreadable(message)
        elif isinstance(message, Forged):
            self._forged_job(message)
        elif isinstance(message, NotDeferred):
            self._not_deferred(message)
        elif isinstance(message, _Written):
            self._written(message)
        elif isinstance(message, _Conflict):
            self._conflict(message)
        elif isinstance(message, _Gone):
            self._inflight.discard(message.uid)
            self._drop(message.uid)
        elif isinstance(message, _Failed):
            self._failed(message)
        elif isinstance(message, _Leadership):
            self._leadership(message.leading)

    def _store(self, job: TrackedJob) -> None:
        if job.uid not in self._jobs:
            self._metrics.namespace_seen(job.namespace)
        self._jobs[job.uid] = job
        self._memory.setdefault(job.uid, _Memory())
        deferral = job.deferral
        if deferral is not None and deferral.zone not in self._zones:
            self._zones.add(deferral.zone)
            self._want_zone(deferral.zone)

    def _drop(self, uid: str) -> None:
        job = self._jobs.pop(uid, None)
        self._memory.pop(uid, None)
        self._timers.cancel(uid)
        if job is not None:
            log.debug("forget job=%s: deleted or no longer greenlight's", job.key)

    def _unreadable(self, message: Unreadable) -> None:
        """Set a Job aside: stop tracking it, and warn once per version (a relist of the same
        version is quiet; the owner's fix, or a new break, is a new version)."""
        self._drop(message.uid)  # a write in flight finds it gone and stops there
        seen = (message.uid, message.resource_version)
        if seen in self._set_aside:
            return
        if len(self._set_aside) >= MAX_SET_ASIDE:
            self._set_aside.clear()
        self._set_aside.add(seen)
        self._metrics.unreadable.inc()
        log.warning(
            "unreadable %s=%s/%s uid=%s resource_version=%s: set aside: %s",
            message.workload.gvk.kind.lower(),
            message.namespace,
            message.name,
            message.uid,
            message.resource_version,
            message.error,
        )
        if message.uid and message.namespace and message.name:
            record = TrackedJob(
                uid=message.uid,
                namespace=message.namespace,
                name=message.name,
                resource_version=message.resource_version,
                suspended=False,
                workload=message.workload,
            )
            self._warn(job_events.unreadable(record, message.error))

    def _warn(self, event: job_events.JobEvent) -> None:
        """Record a Warning now if this replica leads, else once it does."""
        if self._leading:
            self._event(event)
        elif len(self._pending_warnings) < MAX_SET_ASIDE:
            self._pending_warnings[event.name] = event

    def _forged_job(self, message: Forged) -> None:
        """Never track a Job greenlight did not sign; warn once per uid."""
        job = message.job
        self._drop(job.uid)
        if job.uid in self._forged:
            return
        if len(self._forged) >= MAX_SET_ASIDE:
            self._forged.clear()
        self._forged.add(job.uid)
        self._metrics.forged.inc()
        log.warning("forged job=%s uid=%s: ignored: %s", job.key, job.uid, message.why)
        self._warn(job_events.forged(job, message.why))

    def _not_deferred(self, message: NotDeferred) -> None:
        """One Event on a Job created to run at once, by the leader only (a follower's would
        duplicate it; the Event's name makes a second one a 409 anyway)."""
        if not self._leading:
            return
        self._event(
            job_events.not_deferred(
                message.job,
                message.decision,
                message.code,
                message.reason,
                intensity_now_g_per_kwh=message.intensity_now_g_per_kwh,
                emissions_now_g=message.emissions_now_g,
            )
        )

    def _list_done(self, message: ListDone) -> None:
        kind = message.workload
        gone = [
            uid
            for uid, job in self._jobs.items()
            if job.workload is kind and uid not in message.uids
        ]
        for uid in gone:
            if uid not in self._inflight:
                self._drop(uid)
        self._metrics.relist_seconds.set(message.seconds)
        self._listed.add(kind)
        if len(self._listed) == len(self._apis):
            self._synced.set()
            self._metrics.synced.set(1)
        self._update_gauges()

    def _leadership(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self._metrics.leader.set(1 if leading else 0)
        log.info(
            "%s %s the lease %s/%s",
            self.identity,
            "holds" if leading else "no longer holds",
            self._settings.lease_namespace,
            self._settings.lease_name,
        )
        if leading:
            self._prefetch_events()
            for event in self._pending_warnings.values():
                self._event(event)
            self._pending_warnings.clear()
            for uid in list(self._jobs):
                self._evaluate(uid)

    def _fire_timers(self) -> None:
        for uid in self._timers.pop_due(self._clock()):
            self._evaluate(uid)

    def _maybe_sweep(self) -> None:
        now = self._clock()
        if now >= self._next_gauges:
            self._next_gauges = now + GAUGE_INTERVAL_S
            self._update_gauges()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._settings.sweep_interval_s
        overdue = self._update_gauges()
        for uid in overdue:
            if uid not in self._inflight:
                job = self._jobs[uid]
                log.warning("sweeper: job=%s is past its latest start; deciding again", job.key)
                self._evaluate(uid)

    def _update_gauges(self) -> list[str]:
        now = from_epoch(self._clock())
        grace = timedelta(seconds=self._settings.overdue_grace_s)
        waiting = 0
        overdue: list[str] = []
        for uid, job in self._jobs.items():
            if not job.waiting:
                continue
            waiting += 1
            if job.deferral is not None and now > job.deferral.release_by + grace:
                overdue.append(uid)
        self._metrics.waiting.set(waiting)
        self._metrics.tracked.set(len(self._jobs))
        self._metrics.overdue.set(len(overdue))
        return overdue

    # -- deciding ----------------------------------------------------------------------------

    def _knowledge(self, now: datetime) -> Knowledge:
        return Knowledge(
            now=now,
            settings=self._settings,
            planner=self._planner,
            forecast_max_age_s=self._forecast_max_age_s,
            forecast=self._forecast,
            observed=self._history.series,
            prices=self._prices,
        )

    def _forecast(self, zone: str) -> ForecastResult | None:
        if self._forecasts is None or not self._forecast_ready(zone):
            return None
        return self._forecasts.snapshot(zone, self._clock())

    def _evaluate(self, uid: str) -> None:
        job = self._jobs.get(uid)
        if job is None or uid in self._inflight:
            return
        memory = self._memory.setdefault(uid, _Memory())
        now = from_epoch(self._clock())
        try:
            action = decide(job, self._knowledge(now), memory.check_at)
        except Exception as e:  # a bug in deciding must cost one Job, not the reconciler
            log.exception("deciding job=%s failed", job.key)
            self._unreadable(
                Unreadable(job.uid, job.namespace, job.name, job.resource_version, repr(e))
            )
            return
        if isinstance(action, Forget):
            log.debug("forget job=%s: %s", job.key, action.why)
            self._drop(uid)
            return
        if isinstance(action, Track):
            self._timers.cancel(uid)
            return
        if job.waiting and not memory.deferred_event and self._leading:
            memory.deferred_event = True
            self._event(job_events.deferred(job))
        if isinstance(action, Wait):
            self._timers.schedule(uid, action.until.timestamp())
            memory.check_at = action.check_at
            if action.replan_checked:
                self._metrics.replans.labels(outcome="kept").inc()
                log.info("replan job=%s kept: %s", job.key, action.why)
                if self.leading():  # record it on the Job: replan-checked-at, replan-checks
                    self._inflight.add(uid)
                    self._writers.submit(self._write, job, action)
            return
        self._timers.cancel(uid)
        if not self.leading():
            # A follower keeps the Job; the leader acts. On becoming leader every Job is
            # decided again.
            return
        self._inflight.add(uid)
        self._writers.submit(self._write, job, action)

    # -- writing (writer threads) ------------------------------------------------------------

    def _write(self, job: TrackedJob, action: Action) -> None:
        now = self._clock()
        try:
            signed: dict[str, str] | None = None
            if isinstance(action, Move) and self._signing_keys is not None:
                # A move is signed over the whole plan, which is not kept in memory: read it.
                current = self._apis[job.workload].get_job(job.namespace, job.name)
                self._count("get", "ok")
                version = str((current.get("metadata") or {}).get("resourceVersion"))
                if version != job.resource_version:  # changed since decided on: decide again
                    self._post(_Conflict(job.uid, job, self._reread(current, job.workload)))
                    return
                signed = {k: v for k, v in job_annotations(current).items() if isinstance(v, str)}
            patch = patch_for(job, action, from_epoch(now), self._signing_keys, signed)
            assert patch is not None
            updated = self._apis[job.workload].patch_job(job.namespace, job.name, patch)
            self._count("patch", "ok")
            self._post(_Written(job.uid, action, job, self._reread(updated, job.workload), now))
        except ConflictError:
            self._count("patch", "conflict")
            try:
                fresh = self._apis[job.workload].get_job(job.namespace, job.name)
                self._count("get", "ok")
                self._post(_Conflict(job.uid, job, self._reread(fresh, job.workload)))
            except NotFoundError:
                self._count("get", "not-found")
                self._post(_Gone(job.uid))
            except KubeError as e:
                self._count("get", "error")
                self._post(_Failed(job.uid, str(e)))
        except NotFoundError:
            self._count("patch", "not-found")
            self._post(_Gone(job.uid))
        except KubeError as e:
            self._count("patch", "error")
            self._post(_Failed(job.uid, str(e)))
        except Exception as e:  # never lose the in-flight marker of a Job
            log.exception("writing job=%s failed", job.key)
            self._post(_Failed(job.uid, repr(e)))

    def _reread(self, obj: dict[str, Any], workload: Workload) -> TrackedJob | None:
        """The record of a Job the API returned; an unreadable one is set aside (None)."""
        job = read_job(obj, self._signing_keys, workload)
        if isinstance(job, Unreadable | Forged):
            self._post(job)
            return None
        return job

    def _count(self, verb: str, outcome: str, resource: str = "jobs") -> None:
        self._metrics.api_requests.labels(verb=verb, resource=resource, outcome=outcome).inc()

    # -- outcomes (controller thread) --------------------------------------------------------

    def _written(self, message: _Written) -> None:
        uid = message.uid
        self._inflight.discard(uid)
        memory = self._memory.setdefault(uid, _Memory())
        memory.failures = 0
        job = message.before
        action = message.action
        at = from_epoch(message.at)
        if isinstance(action, Release):
            self._metrics.releases.labels(reason=action.reason.value).inc()
            if action.reason == ReleaseReason.REPLANNED and action.target is None:
                self._metrics.replans.labels(outcome="released").inc()  # a re-plan said now
            lateness = ""
            if action.target is not None:
                late_s = max(message.at - action.target.timestamp(), 0.0)
                self._metrics.lateness.observe(late_s)
                lateness = f" target={action.target.isoformat()} lateness_s={late_s:.3f}"
            log.info(
                "release job=%s reason=%s%s why=%r",
                job.key,
                action.reason.value,
                lateness,
                action.why,
            )
            self._event(job_events.released(job, action.reason, action.why, at))
        elif isinstance(action, RecordManual):
            self._metrics.releases.labels(reason=ReleaseReason.MANUAL.value).inc()
            log.info("release job=%s reason=manual why=%r", job.key, action.why)
            self._event(job_events.released(job, ReleaseReason.MANUAL, action.why, at))
        elif isinstance(action, Move):
            memory.check_at = None
            self._metrics.replans.labels(outcome="moved").inc()
            log.info(
                "replan job=%s moved from=%s to=%s why=%r",
                job.key,
                action.previous.isoformat(),
                action.start.isoformat(),
                action.why,
            )
            self._event(job_events.replanned(job, action))
        elif isinstance(action, Wait):  # a kept re-plan, recorded on the Job
            self._event(job_events.plan_kept(job, action.why, action.outlook))
        elif isinstance(action, Account):
            result = action.accounting
            self._metrics.finished_run(
                job.namespace, result.emissions_g, result.emissions_at_admission_g
            )
            log.info(
                "account job=%s run_s=%.0f energy_kwh=%.3f intensity=%.1f emissions_g=%.1f "
                "savings_g=%.1f basis=%s",
                job.key,
                result.run_s,
                result.energy_kwh,
                result.intensity_g_per_kwh,
                result.emissions_g,
                result.savings_g,
                result.basis,
            )
            self._event(job_events.completed(job, result))
        current = self._jobs.get(uid)
        # A watch event may have brought a newer version while the write was in flight.
        if message.job is not None and (
            current is None or current.resource_version == job.resource_version
        ):
            self._store(message.job)
        self._evaluate(uid)

    def _conflict(self, message: _Conflict) -> None:
        uid = message.uid
        self._inflight.discard(uid)
        current = self._jobs.get(uid)
        log.info("conflict job=%s: changed since it was decided on; deciding again", uid)
        if message.fresh is None:
            self._drop(uid)
            return
        if current is None or current.resource_version == message.before.resource_version:
            self._store(message.fresh)
        self._evaluate(uid)

    def _failed(self, message: _Failed) -> None:
        uid = message.uid
        self._inflight.discard(uid)
        memory = self._memory.get(uid)
        if memory is None or uid not in self._jobs:
            return
        memory.failures += 1
        backoff = min(2.0 ** (memory.failures - 1), MAX_BACKOFF_S)
        log.warning(
            "write for job=%s failed (%s); deciding again in %.0f s",
            self._jobs[uid].key,
            message.error,
            backoff,
        )
        self._timers.schedule(uid, self._clock() + backoff)

    # -- events ------------------------------------------------------------------------------

    def _event(self, event: job_events.JobEvent | None) -> None:
        if event is None or not self._settings.events:
            return
        try:
            self._events.put_nowait(_QueuedEvent(event, self._clock()))
        except queue.Full:
            self._metrics.events_dropped.inc()

    def _prefetch_events(self) -> None:
        if self._settings.events:
            try:
                self._events.put_nowait(_Prefetch())
            except queue.Full:
                self._metrics.events_dropped.inc()

    def _write_events(self) -> None:
        """Record queued Events in order; on stop, what is still queued is dropped."""
        recorded: set[str] = set()
        while True:
            item = self._events.get()
            if item is None or self._stop.is_set():
                return
            if isinstance(item, _Prefetch):
                recorded |= self._recorded_deferred_events()
                continue
            name = item.event.name
            if name in recorded:
                continue
            body = job_events.event_body(
                item.event, now=from_epoch(item.at), instance=self.identity
            )
            try:
                self._kube.create_event(item.event.job.namespace, body)
                self._count("create", "ok", "events")
            except AlreadyExistsError:
                self._count("create", "exists", "events")
            except KubeError as e:
                self._count("create", "error", "events")
                self._metrics.events_dropped.inc()
                log.warning("event %s not recorded: %s", name, e)
            recorded.add(name)
            if len(recorded) > 4 * max(len(self._jobs), 1000):
                recorded.clear()

    def _recorded_deferred_events(self) -> set[str]:
        """Names of the Deferred Events already recorded (a new leader does not repeat them)."""
        names: set[str] = set()
        token: str | None = None
        selector = f"reason={job_events.EventReason.DEFERRED.value},source={job_events.COMPONENT}"
        try:
            while True:
                page = self._kube.list_events(
                    field_selector=selector, limit=500, continue_token=token
                )
                self._count("list", "ok", "events")
                names.update(str((item.get("metadata") or {}).get("name")) for item in page.items)
                token = page.continue_token
                if not token:
                    return names
        except KubeError as e:
            log.warning("could not list recorded events (%s): duplicates answer 409", e)
            return names

    # -- the lease ---------------------------------------------------------------------------

    def _lease_body(self, record: LeaseRecord, version: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self._settings.lease_name,
            "namespace": self._settings.lease_namespace,
        }
        if version is not None:
            metadata["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec_from_record(record),
        }

    def _try_lease(self) -> None:
        settings = self._settings
        namespace, name = settings.lease_namespace, settings.lease_name
        try:
            lease = self._kube.get_lease(namespace, name)
            current = record_from_spec(lease.get("spec")) if lease is not None else None
            version = str((lease or {}).get("metadata", {}).get("resourceVersion") or "")
            with self._elector_lock:
                attempt = self._elector.plan(
                    current, now=self._monotonic(), wall=from_epoch(self._clock())
                )
            if attempt.record is None:
                return
            if attempt.action == "create":
                self._kube.create_lease(namespace, self._lease_body(attempt.record, None))
            else:
                self._kube.replace_lease(
                    namespace, name, self._lease_body(attempt.record, version or None)
                )
            with self._elector_lock:
                self._elector.written(attempt.record, now=self._monotonic())
        except (ConflictError, AlreadyExistsError):
            log.debug("lease %s/%s: another replica wrote it first", namespace, name)
        except KubeError as e:
            log.warning("lease %s/%s: %s", namespace, name, e)

    def _keep_lease(self) -> None:
        while not self._stop.is_set():
            self.renew_lease()
            self._stop.wait(self._settings.retry_period_s)

    def renew_lease(self) -> None:
        """One round of the lease keeper: try to hold the Lease, then tell the controller
        whether this replica leads (the keeper thread runs it every retry period)."""
        self._try_lease()
        self._post(_Leadership(self.leading()))

    def _release_lease(self) -> None:
        if not self.leading():
            return
        settings = self._settings
        try:
            lease = self._kube.get_lease(settings.lease_namespace, settings.lease_name)
            if lease is None:
                return
            with self._elector_lock:
                record = self._elector.released(
                    record_from_spec(lease.get("spec")), from_epoch(self._clock())
                )
                self._elector.step_down()
            if record is None:
                return
            version = str(lease.get("metadata", {}).get("resourceVersion") or "") or None
            self._kube.replace_lease(
                settings.lease_namespace, settings.lease_name, self._lease_body(record, version)
            )
            log.info("%s released the lease", self.identity)
        except KubeError as e:
            log.warning("could not release the lease: %s", e)

    # -- intensity history -------------------------------------------------------------------

    def load_history(self) -> None:
        """Read the stored history ConfigMap into the history (what another leader wrote)."""
        settings = self._settings
        try:
            stored = self._kube.get_config_map(settings.lease_namespace, settings.history_configmap)
        except KubeError as e:
            log.warning("intensity history not loaded: %s", e)
            return
        text = ((stored or {}).get("data") or {}).get(DATA_KEY)
        if not text:
            return
        try:
            self._history.load(text, source=f"configmap {settings.history_configmap}")
        except HistoryFormatError as e:
            log.warning("intensity history ignored: %s", e)
            return
        self._history_stored = self._history.version
        log.info("intensity history loaded for zones %s", ", ".join(self._history.zones))

    def _write_history(self) -> None:
        while not self._stop.wait(self._settings.history_flush_s):
            if self.leading():
                self.flush_history()

    def flush_history(self) -> bool:
        """Write the history ConfigMap when the history changed since it was loaded or last
        written (whenever the change was recorded, even before this thread first ran); True
        when written."""
        version = self._history.version
        if version == self._history_stored or not self._save_history():
            return False
        self._history_stored = version
        return True

    def _save_history(self) -> bool:
        """Write the history ConfigMap (conditional on the version read); True when written."""
        settings = self._settings
        namespace, name = settings.lease_namespace, settings.history_configmap
        try:
            stored = self._kube.get_config_map(namespace, name)
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
                "data": {DATA_KEY: self._history.dump()},
            }
            if stored is None:
                self._kube.create_config_map(namespace, body)
            else:
                body["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
                text = (stored.get("data") or {}).get(DATA_KEY)
                if text:
                    self._history.load(text)  # keep what another leader wrote
                    body["data"][DATA_KEY] = self._history.dump()
                self._kube.replace_config_map(namespace, name, body)
        except (ConflictError, AlreadyExistsError):
            self._metrics.history_writes.labels(outcome="conflict").inc()
            return False
        except (KubeError, HistoryFormatError) as e:
            self._metrics.history_writes.labels(outcome="error").inc()
            log.warning("intensity history not written: %s", e)
            return False
        self._metrics.history_writes.labels(outcome="ok").inc()
        return True

    # -- observed intensity for accounting ---------------------------------------------------

    def observed(self, zone: str) -> StepSeries | None:
        return self._history.series(zone)

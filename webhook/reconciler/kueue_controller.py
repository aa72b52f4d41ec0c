"""The Kueue AdmissionCheck controller: watches, timers and writes around ``kueue_check``.

Threads: two **watchers** (AdmissionChecks, Workloads: list, then watch; a ``410 Gone`` or a
renewal relists) send what they see to the inbox; the **controller** thread owns the state (the
AdmissionChecks by name, the Workloads by key, one timer per held Workload) and is the only one
that judges and writes. It writes only while ``leading()`` (the reconciler's Lease): a new
leader re-judges every Workload at once, and the recorded annotations make that idempotent.

The Workload API version is discovered (v1beta2, else v1beta1; ``webhook.workloads.kueue``),
never assumed; without Kueue's CRDs the controller logs it and looks again every
``relist_s``. Writes:

- the decision's annotations: a merge PATCH of the Workload with the resourceVersion judged
  (409 Conflict: judged again on what is there);
- the check's state: a forced server-side apply of ``status.admissionChecks`` with only
  greenlight's entry (the list is a map keyed by name, so Kueue's entries and other checks'
  stay theirs) through the status subresource; the same for the AdmissionCheck's ``Active``
  condition;
- Events on the Workload (``Deferred``, ``Released``, ``Completed``), with names fixed by uid:
  recorded once;
- once Kueue marks a Workload greenlight released ``Finished``: the ``actual-*`` annotations of
  the run (``kueue_check.account_workload``), counted like a finished deferred Job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from webhook.config.kueue import KueueSettings
from webhook.core import annotations as keys
from webhook.core.annotations import Decision, Inputs, format_time, parse_inputs
from webhook.core.series import StepSeries, from_epoch
from webhook.reconciler import kueue_check as check
from webhook.reconciler.accounting import Accounting
from webhook.reconciler.feed import JobSource, ListWatch
from webhook.reconciler.kube import (
    AlreadyExistsError,
    ConflictError,
    KubeError,
    NotFoundError,
)
from webhook.reconciler.timers import TimerQueue
from webhook.telemetry.metrics import KueueCheckMetrics
from webhook.workloads.kinds import WORKLOADS
from webhook.workloads.kueue import GROUP, VERSIONS

log = logging.getLogger(__name__)

FIELD_MANAGER = "greenlight-carbon-check"
PAGE_SIZE = 500
MAX_BACKOFF_S = 30.0
LEADER_POLL_S = 1.0
_PLURALS = {(w.gvk.group, w.gvk.kind): w.plural for w in WORKLOADS}


@runtime_checkable
class KueueAPI(Protocol):
    """The adapter calls the check makes (``webhook.reconciler.kube.Kube``)."""

    def served_versions(self, group: str) -> list[str]: ...

    def custom_resource(self, group: str, version: str, plural: str) -> JobSource: ...

    def get_custom(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any]: ...

    def patch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str,
        name: str,
        patch: dict[str, Any],
    ) -> dict[str, Any]: ...

    def apply_custom_status(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        field_manager: str,
    ) -> dict[str, Any]: ...

    def get_object(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any]: ...

    def namespace_annotations(self, name: str) -> dict[str, str]: ...

    def create_event(self, namespace: str, event: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Listed:
    plural: str
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class _Changed:
    plural: str
    kind: str
    obj: dict[str, Any]


class _Stop:
    pass


_Message = _Listed | _Changed | _Stop

KnowledgeAt = Callable[[datetime], check.CheckKnowledge]


def _key(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


class KueueChecks:
    """greenlight's Kueue AdmissionCheck controller; see the module docstring."""

    def __init__(
        self,
        kube: KueueAPI,
        *,
        settings: KueueSettings,
        metrics: KueueCheckMetrics,
        knowledge: KnowledgeAt,
        want_zone: Callable[[str], None] = lambda zone: None,
        leading: Callable[[], bool] = lambda: True,
        identity: str = "greenlight",
        clock: Callable[[], float] = time.time,
        on_failure: Callable[[], None] = lambda: None,
        observed: Callable[[str], StepSeries | None] = lambda zone: None,
        on_accounted: Callable[[str, Accounting], None] = lambda namespace, run: None,
    ) -> None:
        self._kube = kube
        self._observed = observed
        self._on_accounted = on_accounted
        self._settings = settings
        self._metrics = metrics
        self._knowledge = knowledge
        self._want_zone = want_zone
        self._leading = leading
        self._identity = identity
        self._clock = clock
        self._on_failure = on_failure
        self._inbox: queue.Queue[_Message] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._feeds: list[ListWatch] = []
        self.version: str | None = None
        self.failure: BaseException | None = None
        self._checks: dict[str, Mapping[str, Any]] = {}
        self._workloads: dict[str, Mapping[str, Any]] = {}
        self._timers: TimerQueue[str] = TimerQueue()
        self._held: set[str] = set()
        self._was_leading = False
        self.synced = threading.Event()
        """Set once both lists have been seen (tests and readiness wait on it)."""

    # -- Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        thread = threading.Thread(target=self._run_guarded, name="kueue-check", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._inbox.put(_Stop())
        for feed in self._feeds:
            feed.stop()
        for thread in self._threads:
            thread.join(timeout_s)

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as e:  # the service reports it; the thread must not die silently
            log.exception("the Kueue admission check controller stopped")
            self.failure = e
            self._on_failure()

    # -- Discovery and watches ----------------------------------------------------------------

    def _discover(self) -> str | None:
        try:
            served = self._kube.served_versions(GROUP)
        except KubeError as e:
            log.warning("kueue check: cannot discover %s: %s", GROUP, e)
            return None
        for version in VERSIONS:
            if version in served:
                return version
        log.warning(
            "kueue check: API group %s serves %s, none of %s (are Kueue's CRDs installed?); "
            "looking again in %.0f s",
            GROUP,
            served or "nothing",
            ", ".join(VERSIONS),
            self._settings.relist_s,
        )
        return None

    def _feed(self, plural: str) -> ListWatch:
        """The list-and-watch of one resource into the inbox (a list arrives whole)."""
        version = self.version
        assert version is not None
        items: list[dict[str, Any]] = []

        def listed(seconds: float, cause: str) -> None:
            self._inbox.put(_Listed(plural, list(items)))
            items.clear()

        def event(kind: str, obj: dict[str, Any]) -> None:
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._inbox.put(_Changed(plural, kind, obj))

        return ListWatch(
            self._kube.custom_resource(GROUP, version, plural),
            resource=f"{plural}.{GROUP}/{version}",
            on_page=items.extend,
            on_listed=listed,
            on_event=event,
            on_relist=lambda cause: items.clear(),
            page_size=PAGE_SIZE,
            watch_timeout_s=int(self._settings.relist_s),
            retry_s=1.0,
            max_retry_s=MAX_BACKOFF_S,
        )

    # -- The controller ----------------------------------------------------------------------

    def _run(self) -> None:
        while self.version is None:
            self.version = self._discover()
            if self.version is None and self._stopping.wait(self._settings.relist_s):
                return
        log.info("kueue check: watching %s/%s workloads and admissionchecks", GROUP, self.version)
        for plural in ("admissionchecks", "workloads"):
            feed = self._feed(plural)
            self._feeds.append(feed)
            thread = threading.Thread(target=feed.run, name=f"kueue-watch-{plural}", daemon=True)
            self._threads.append(thread)
            thread.start()
        listed: set[str] = set()
        while not self._stopping.is_set():
            leading = self._leading()
            if leading and not self._was_leading:
                log.info("kueue check: leading; judging every Workload")
                self._activate_all()
                for key in list(self._workloads):
                    self._timers.schedule(key, 0.0)
            self._was_leading = leading
            next_at = self._timers.next_at()
            wait = LEADER_POLL_S
            if next_at is not None:
                wait = max(0.0, min(wait, next_at - self._clock()))
            try:
                message = self._inbox.get(timeout=wait)
            except queue.Empty:
                message = None
            if isinstance(message, _Stop):
                return
            if isinstance(message, _Listed):
                listed.add(message.plural)
                self._relisted(message)
                if listed == {"admissionchecks", "workloads"}:
                    self.synced.set()
            elif isinstance(message, _Changed):
                self._changed(message)
            for key in self._timers.pop_due(self._clock()):
                self._judge(key)
            self._metrics.held.set(len(self._held))

    def _relisted(self, message: _Listed) -> None:
        objects: dict[str, Mapping[str, Any]] = {_key(obj): obj for obj in message.items}
        if message.plural == "admissionchecks":
            self._checks = objects
            self._activate_all()
            for key in self._workloads:
                self._timers.schedule(key, 0.0)
            return
        for key in set(self._workloads) - set(objects):
            self._forget(key)
        self._workloads = objects
        for key in objects:
            self._timers.schedule(key, 0.0)

    def _changed(self, message: _Changed) -> None:
        key = _key(message.obj)
        if message.plural == "admissionchecks":
            if message.kind == "DELETED":
                self._checks.pop(key, None)
            else:
                self._checks[key] = message.obj
                self._activate(message.obj)
            for workload in self._workloads:
                self._timers.schedule(workload, 0.0)
            return
        if message.kind == "DELETED":
            self._workloads.pop(key, None)
            self._forget(key)
            return
        self._workloads[key] = message.obj
        self._timers.schedule(key, 0.0)

    def _forget(self, key: str) -> None:
        self._timers.cancel(key)
        self._held.discard(key)

    def _ours(self) -> frozenset[str]:
        names = {
            name: str((obj.get("spec") or {}).get("controllerName", ""))
            for name, obj in self._checks.items()
        }
        return check.our_checks(names)

    # -- AdmissionChecks ---------------------------------------------------------------------

    def _activate_all(self) -> None:
        for obj in list(self._checks.values()):
            self._activate(obj)

    def _activate(self, obj: Mapping[str, Any]) -> None:
        name = _key(obj)
        if name not in self._ours() or check.is_active(obj) or not self._leading():
            return
        assert self.version is not None
        body = check.active_condition_apply(
            name, f"{GROUP}/{self.version}", from_epoch(self._clock())
        )
        try:
            self._kube.apply_custom_status(
                GROUP,
                self.version,
                "admissionchecks",
                namespace=None,
                name=name,
                body=body,
                field_manager=FIELD_MANAGER,
            )
        except KubeError as e:
            log.warning("kueue check: cannot mark AdmissionCheck %s Active: %s", name, e)
            self._metrics.write_errors.inc()
            return
        log.info("kueue check: AdmissionCheck %s is Active", name)

    # -- Workloads ---------------------------------------------------------------------------

    def _judge(self, key: str) -> None:
        obj = self._workloads.get(key)
        if obj is None:
            return
        workload = check.read_workload(obj)
        if workload.finished and self._leading():
            self._account(key, workload)
        mine = [name for name in workload.checks if name in self._ours()]
        if not mine:
            self._held.discard(key)
            return
        if not self._leading():
            return  # the new leader judges everything when it takes over
        now = from_epoch(self._clock())
        knowledge = self._knowledge(now)
        owner: Mapping[str, str] = {}
        namespace = Inputs()
        if keys.DECISION not in workload.annotations:
            owner, namespace = self._inputs_of(workload)
        verdicts = []
        for name in mine:
            verdict = check.judge_workload(
                workload,
                name,
                owner_annotations=owner,
                namespace_inputs=namespace,
                knowledge=knowledge,
            )
            if verdict is not None:
                verdicts.append((name, verdict))
        if not verdicts:
            self._held.discard(key)
            return
        if any(v.zone for _, v in verdicts):
            for _, verdict in verdicts:
                if verdict.zone:
                    self._want_zone(verdict.zone)
        # One Workload, one decision: the first check's annotations are the record.
        name, verdict = verdicts[0]
        try:
            self._write(workload, verdicts, now)
        except ConflictError:
            self._refetch(key, workload)
            return
        except NotFoundError:
            self._workloads.pop(key, None)
            self._forget(key)
            return
        except KubeError as e:
            log.warning("kueue check: workload=%s write failed: %s; retrying", key, e)
            self._metrics.write_errors.inc()
            self._timers.schedule(key, self._clock() + 5.0)
            return
        self._record(workload, name, verdict, now)
        if verdict.state == check.CheckState.PENDING:
            self._held.add(key)
        else:
            self._held.discard(key)
        if verdict.wake_at is not None:
            self._timers.schedule(key, verdict.wake_at.timestamp())
        else:
            self._timers.cancel(key)

    def _inputs_of(self, workload: check.WorkloadView) -> tuple[Mapping[str, str], Inputs]:
        """The owner's greenlight annotations and the namespace's defaults (a failed read is
        logged and counts as none: a check must never be stuck on a read)."""
        owner: Mapping[str, str] = {}
        reference = workload.owner
        if reference is not None:
            plural = _PLURALS.get((reference.group, reference.kind))
            if plural is None:
                plural = reference.kind.lower() + "s"
            try:
                obj = self._kube.get_object(
                    reference.api_version, plural, workload.namespace, reference.name
                )
                owner = check.read_workload(obj).annotations
            except KubeError as e:
                log.warning(
                    "kueue check: workload=%s cannot read its owner %s %s: %s",
                    workload.key,
                    reference.kind,
                    reference.name,
                    e,
                )
        namespace = Inputs()
        try:
            parsed = parse_inputs(self._kube.namespace_annotations(workload.namespace))
            namespace = parsed.inputs
            for error in parsed.errors:
                log.warning("namespace %s: ignoring bad default %s", workload.namespace, error)
        except KubeError as e:
            log.warning("kueue check: cannot read namespace %s: %s", workload.namespace, e)
        return owner, namespace

    def _write(
        self,
        workload: check.WorkloadView,
        verdicts: list[tuple[str, check.Verdict]],
        now: datetime,
    ) -> None:
        assert self.version is not None
        patch = check.annotation_patch(workload, verdicts[0][1])
        if patch is not None:
            self._kube.patch_custom(
                GROUP,
                self.version,
                "workloads",
                namespace=workload.namespace,
                name=workload.name,
                patch=patch,
            )
        entries = [
            entry
            for name, verdict in verdicts
            if (entry := check.check_status(workload, name, verdict, now)) is not None
        ]
        if entries:
            body = check.status_apply(workload, f"{GROUP}/{self.version}", entries)
            self._kube.apply_custom_status(
                GROUP,
                self.version,
                "workloads",
                namespace=workload.namespace,
                name=workload.name,
                body=body,
                field_manager=FIELD_MANAGER,
            )

    def _account(self, key: str, workload: check.WorkloadView) -> None:
        """Record what a finished Workload greenlight held really emitted (once: the
        annotations say it is done)."""
        run = check.account_workload(workload, self._observed)
        if run is None:
            return
        if isinstance(run, str):
            log.warning("kueue check: workload=%s finished, not accounted: %s", key, run)
            return
        assert self.version is not None
        try:
            self._kube.patch_custom(
                GROUP,
                self.version,
                "workloads",
                namespace=workload.namespace,
                name=workload.name,
                patch=run.patch,
            )
        except ConflictError:
            self._refetch(key, workload)
            return
        except NotFoundError:
            return
        except KubeError as e:
            log.warning("kueue check: workload=%s accounting not written: %s", key, e)
            self._metrics.write_errors.inc()
            self._timers.schedule(key, self._clock() + 5.0)
            return
        result = run.accounting
        self._on_accounted(workload.namespace, result)
        log.info(
            "kueue check: workload=%s accounted run_s=%.0f energy_kwh=%.3f intensity=%.1f "
            "emissions_g=%.1f savings_g=%.1f basis=%s",
            key,
            result.run_s,
            result.energy_kwh,
            result.intensity_g_per_kwh,
            result.emissions_g,
            result.savings_g,
            result.basis,
        )
        basis = "" if result.basis == "observed" else " (the planned intensity: none observed)"
        message = (
            f"{run.outcome} after {result.run_s:.0f} s: actual emissions "
            f"{result.emissions_g:.0f} g CO2eq ({result.energy_kwh:.3f} kWh at "
            f"{result.intensity_g_per_kwh:.0f} g/kWh){basis}; saving {result.savings_g:.0f} g "
            f"versus running at admission ({result.intensity_at_admission_g_per_kwh:.0f} g/kWh)"
        )
        self._send_event(workload, self._event_body(workload, "Completed", message, False))

    def _refetch(self, key: str, workload: check.WorkloadView) -> None:
        assert self.version is not None
        try:
            fresh = self._kube.get_custom(
                GROUP, self.version, "workloads", workload.namespace, workload.name
            )
        except NotFoundError:
            self._workloads.pop(key, None)
            self._forget(key)
            return
        except KubeError as e:
            log.warning("kueue check: workload=%s re-read failed: %s", key, e)
            self._timers.schedule(key, self._clock() + 5.0)
            return
        self._workloads[key] = fresh
        self._timers.schedule(key, 0.0)

    def _record(
        self, workload: check.WorkloadView, name: str, verdict: check.Verdict, now: datetime
    ) -> None:
        """Metrics, the log line and the Event of a verdict that was written."""
        if verdict.decision is not None:
            self._metrics.decisions.labels(
                decision=verdict.decision.value, reason=verdict.code
            ).inc()
            if verdict.decision == Decision.DEFERRED and verdict.plan is not None:
                self._metrics.planned_delay.observe(verdict.plan.delay_s)
        if verdict.ready_reason is not None:
            self._metrics.ready.labels(reason=verdict.ready_reason.value).inc()
        current = workload.checks.get(name)
        unchanged = (
            current is not None
            and current.state == verdict.state
            and current.message == verdict.message
            and verdict.decision is None
        )
        if unchanged:
            return
        log.info(
            "kueue check: workload=%s check=%s state=%s reason=%s zone=%s energy_kwh=%s "
            "wake_at=%s message=%r",
            workload.key,
            name,
            verdict.state,
            verdict.code,
            verdict.zone,
            "-" if verdict.energy_kwh is None else f"{verdict.energy_kwh:.3f}",
            "-" if verdict.wake_at is None else format_time(verdict.wake_at),
            verdict.message,
        )
        event = self._event(workload, verdict)
        if event is not None:
            self._send_event(workload, event)

    def _send_event(self, workload: check.WorkloadView, event: dict[str, Any]) -> None:
        try:
            self._kube.create_event(workload.namespace, event)
        except AlreadyExistsError:
            pass
        except KubeError as e:
            log.warning("kueue check: workload=%s event not recorded: %s", workload.key, e)

    def _event(self, workload: check.WorkloadView, verdict: check.Verdict) -> dict[str, Any] | None:
        if verdict.decision == Decision.DEFERRED:
            reason, warning = "Deferred", False
        elif verdict.ready_reason in (check.ReadyReason.WINDOW, check.ReadyReason.DEADLINE):
            reason, warning = "Released", verdict.ready_reason == check.ReadyReason.DEADLINE
        else:
            return None
        return self._event_body(workload, reason, verdict.message, warning)

    def _event_body(
        self, workload: check.WorkloadView, reason: str, message: str, warning: bool
    ) -> dict[str, Any]:
        assert self.version is not None
        tail = f".greenlight-{reason.lower()}-{workload.uid[:8]}"
        stamp = format_time(from_epoch(self._clock()))
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": workload.name[: 253 - len(tail)] + tail},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{self.version}",
                "kind": "Workload",
                "name": workload.name,
                "namespace": workload.namespace,
                "uid": workload.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "greenlight"},
            "reportingComponent": "greenlight.dev/kueue-check",
            "reportingInstance": self._identity[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }

"""The feed of one workload kind (Jobs, JobSets, ...): list, then watch from the list's
resourceVersion, forever. The reconciler runs one feed per enabled kind.

Messages go to a sink (the controller's inbox), already reduced to :class:`TrackedJob` records
so raw objects never pile up in a queue:

- ``Listed(jobs)``   one page of a (re)list, the Jobs greenlight deferred in it;
- ``ListDone(uids, seconds, cause, workload)``  the list of that kind is complete: any of
  its objects tracked before and not in ``uids`` was deleted while the feed was not watching;
- ``Changed(uid, job)``  a watch event (``job`` None: deleted, or not greenlight's);
- ``Unreadable(...)``  a Job marked deferred that cannot be read (see :func:`read_job`): set
  aside, so one bad object never stops the feed;
- ``Forged(...)``  a Job marked deferred whose signature does not verify: greenlight did not
  write its decision, so it is never tracked (never released, patched or counted);
- ``NotDeferred(...)``  a Job greenlight decided to run now or skip was created (a watch's
  ADDED event only, never a relist: a restart must not announce every such Job again), for
  its one Event.

A watch ends when the server's timeout runs out; the feed resumes from the last
resourceVersion it saw (bookmarks keep it fresh on a quiet cluster). A ``410 Gone`` — on a
watch or on a list's continue token — means that version is gone: the feed relists. Any other
error relists after ``retry_s``. A kind the apiserver does not serve (its CRD is not installed:
404 on the list) is logged once, counts as listed with nothing in it, and is listed again every
``absent_retry_s``, so installing the CRD later needs no restart.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webhook.core import annotations as keys
from webhook.core.annotations import Decision
from webhook.core.provenance import SigningKeys
from webhook.core.reasons import ReasonCode
from webhook.reconciler.decide import TrackedJob, UnreadableJobError, track
from webhook.reconciler.kube import GoneError, KubeError, NotFoundError, Page
from webhook.workloads.base import Workload
from webhook.workloads.job import JOB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listed:
    jobs: list[TrackedJob]


@dataclass(frozen=True)
class ListDone:
    uids: frozenset[str]
    seconds: float
    cause: str
    workload: Workload = JOB


@dataclass(frozen=True)
class Changed:
    uid: str
    job: TrackedJob | None


@dataclass(frozen=True)
class Unreadable:
    """A Job the feed set aside: what could be read of its identity, and why."""

    uid: str
    namespace: str
    name: str
    resource_version: str
    error: str
    workload: Workload = JOB


@dataclass(frozen=True)
class Forged:
    """A Job marked deferred that greenlight did not sign: why its signature fails."""

    job: TrackedJob
    why: str


@dataclass(frozen=True)
class NotDeferred:
    """A Job created with a ``run-now`` or ``skipped`` decision: what its Event says."""

    job: TrackedJob
    """Its identity (nothing else of it is tracked)."""
    decision: Decision
    code: str
    reason: str
    intensity_now_g_per_kwh: float | None = None
    emissions_now_g: float | None = None


FeedMessage = Listed | ListDone | Changed | Unreadable | Forged | NotDeferred

_NOT_DEFERRED = (Decision.RUN_NOW, Decision.SKIPPED)


def read_not_deferred(
    obj: Mapping[str, Any], signing_keys: SigningKeys | None = None, workload: Workload = JOB
) -> NotDeferred | None:
    """The decision on a Job greenlight let run (``run-now``, ``skipped``); None for any other
    Job, one whose identity cannot be read, (with signing keys) one whose decision greenlight
    did not sign, and a child of a workload greenlight judges (its parent's Event tells).
    Never raises: whatever a Job holds costs at most its Event."""
    metadata = _metadata(obj)
    raw = metadata.get("annotations")
    annotations = raw if isinstance(raw, Mapping) else {}
    decision = annotations.get(keys.DECISION)
    if decision not in _NOT_DEFERRED or annotations.get(keys.REASON_CODE) == (
        ReasonCode.OWNED_BY_WORKLOAD
    ):
        return None
    identity = [metadata.get(k) for k in ("uid", "namespace", "name", "resourceVersion")]
    if not all(isinstance(value, str) and value for value in identity[:3]):
        return None
    try:
        if signing_keys is not None and signing_keys.problem(metadata) is not None:
            return None
    except Exception:  # a bug in checking must cost one Event, not the feed
        log.exception("checking a job's signature failed")
        return None
    uid, namespace, name, version = (_text(value) for value in identity)
    return NotDeferred(
        job=TrackedJob(
            uid=uid,
            namespace=namespace,
            name=name,
            resource_version=version,
            suspended=False,
            workload=workload,
        ),
        decision=Decision(decision),
        code=_text(annotations.get(keys.REASON_CODE)),
        reason=_text(annotations.get(keys.REASON), 512),
        intensity_now_g_per_kwh=_number(annotations.get(keys.INTENSITY_NOW)),
        emissions_now_g=_number(annotations.get(keys.EMISSIONS_NOW_G)),
    )


def _number(value: object) -> float | None:
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def read_job(
    obj: Mapping[str, Any], signing_keys: SigningKeys | None = None, workload: Workload = JOB
) -> TrackedJob | Unreadable | Forged | None:
    """``track(obj, workload)``, with a guard: whatever an object holds, the answer is a
    record, None (not greenlight's), :class:`Unreadable` or (with signing keys)
    :class:`Forged` — never an exception, so one object cannot stop a relist or a watch
    (anyone who can create a Job writes its annotations)."""
    try:
        job = track(obj, workload)
        if job is None or signing_keys is None:
            return job
        problem = signing_keys.problem(_metadata(obj))
        return job if problem is None else Forged(job, problem)
    except UnreadableJobError as e:
        error = str(e)
    except Exception as e:  # a bug in reading must cost one Job, not the reconciler
        log.exception("reading a job failed")
        error = f"{type(e).__name__}: {e}"
    metadata = _metadata(obj)
    return Unreadable(
        uid=_text(metadata.get("uid")),
        namespace=_text(metadata.get("namespace")),
        name=_text(metadata.get("name")),
        resource_version=_text(metadata.get("resourceVersion")),
        error=error[:512],
        workload=workload,
    )


def _text(value: object, limit: int = 253) -> str:
    return value[:limit] if isinstance(value, str) else ""


class Stream(Protocol):
    def __iter__(self) -> Any: ...

    def close(self) -> None: ...


class JobSource(Protocol):
    """What the feed needs of the adapter (``webhook.reconciler.kube.Kube``)."""

    def list_jobs(
        self, *, limit: int, continue_token: str | None = None, namespace: str | None = None
    ) -> Page: ...

    def watch_jobs(self, resource_version: str, *, timeout_s: int) -> Stream: ...


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


class JobFeed:
    """List + watch of one workload kind in all namespaces into ``sink`` (run it in a
    thread); ``source`` serves that kind."""

    def __init__(
        self,
        source: JobSource,
        sink: Callable[[FeedMessage], None],
        *,
        workload: Workload = JOB,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        retry_s: float = 2.0,
        absent_retry_s: float = 60.0,
        on_relist: Callable[[str], None] = lambda cause: None,
        clock: Callable[[], float] = time.monotonic,
        signing_keys: SigningKeys | None = None,
    ) -> None:
        self._source = source
        self._workload = workload
        gvk = workload.gvk
        self._resource = f"{workload.plural}.{gvk.group or 'core'}/{gvk.version}"
        self._absent_retry_s = absent_retry_s
        self._absent = False
        self._signing_keys = signing_keys
        self._sink = sink
        self._page_size = page_size
        self._watch_timeout_s = watch_timeout_s
        self._retry_s = retry_s
        self._on_relist = on_relist
        self._clock = clock
        self._stop = threading.Event()
        self._stream: Stream | None = None

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        cause = "start"
        while not self._stop.is_set():
            try:
                version = self.relist(cause)
                self._watch_from(version)
                return  # stopped
            except GoneError as e:
                log.info("%s watch: %s; relisting", self._resource, e)
                cause = "gone"
            except NotFoundError as e:
                if self._stop.is_set():
                    return
                self._not_served(cause, e)
                cause = "absent"
                self._stop.wait(self._absent_retry_s)
            except KubeError as e:
                if self._stop.is_set():
                    return
                log.warning(
                    "%s feed interrupted (%s); relisting in %.0f s",
                    self._resource,
                    e,
                    self._retry_s,
                )
                cause = "error"
                self._stop.wait(self._retry_s)

    def _not_served(self, cause: str, error: KubeError) -> None:
        """The kind is not served (its CRD is not installed): nothing of it to track."""
        if not self._absent:
            log.warning(
                "%s is not served by the apiserver (CRD not installed?): %s; nothing of this "
                "kind is judged or released until it is (checked every %.0f s)",
                self._resource,
                error,
                self._absent_retry_s,
            )
            self._absent = True
        self._sink(ListDone(frozenset(), 0.0, cause, self._workload))

    def relist(self, cause: str) -> str:
        """List every Job, page by page; the list's resourceVersion."""
        self._on_relist(cause)
        started = self._clock()
        uids: set[str] = set()
        token: str | None = None
        version = ""
        while True:
            page = self._source.list_jobs(limit=self._page_size, continue_token=token)
            version = page.resource_version or version
            token = page.continue_token
            jobs = self._tracked(page.items, uids)
            del page  # the raw page is the bulk of a relist's memory: drop it before the next
            self._sink(Listed(jobs))
            if not token or self._stop.is_set():
                break
        self._sink(ListDone(frozenset(uids), self._clock() - started, cause, self._workload))
        if self._absent:
            log.info("%s is served now: watching it", self._resource)
            self._absent = False
        log.info(
            "listed %d deferred %s in %.2f s (%s)",
            len(uids),
            self._resource,
            self._clock() - started,
            cause,
        )
        return version

    def _tracked(self, items: Iterable[Mapping[str, Any]], uids: set[str]) -> list[TrackedJob]:
        jobs = []
        for item in items:
            job = read_job(item, self._signing_keys, self._workload)
            if isinstance(job, Unreadable | Forged):
                self._sink(job)
            elif job is not None:
                jobs.append(job)
                uids.add(job.uid)
        return jobs

    def _watch_from(self, version: str) -> None:
        while not self._stop.is_set():
            stream = self._source.watch_jobs(version, timeout_s=self._watch_timeout_s)
            self._stream = stream
            try:
                for kind, obj in stream:
                    metadata = _metadata(obj)
                    version = str(metadata.get("resourceVersion") or version)
                    if kind == "BOOKMARK":
                        continue
                    if kind == "ADDED":
                        created = read_not_deferred(obj, self._signing_keys, self._workload)
                        if created is not None:
                            self._sink(created)
                    uid = str(metadata.get("uid", ""))
                    job = (
                        None
                        if kind == "DELETED"
                        else read_job(obj, self._signing_keys, self._workload)
                    )
                    if isinstance(job, Unreadable | Forged):
                        self._sink(job)  # the controller drops it if it was tracked
                    else:
                        self._sink(Changed(uid, job))
                    if self._stop.is_set():
                        return
            finally:
                self._stream = None
                stream.close()

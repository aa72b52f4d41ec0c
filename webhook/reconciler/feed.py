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
from collections.abc import Callable, Mapping
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


class ListWatch:
    """List every object of one resource page by page, then watch from the list's
    resourceVersion, forever (run it in a thread): the one loop every feed shares.

    Each page goes to ``on_page`` (then is dropped: the raw page is the bulk of a relist's
    memory), the end of a list to ``on_listed(seconds, cause)``, each watch event but
    bookmarks to ``on_event(type, object)``. A watch ends when the server's timeout runs out
    and resumes from the last resourceVersion seen; ``410 Gone`` relists at once; a resource
    the apiserver does not serve (404: its CRD is not installed) is logged once, reported to
    ``on_absent(cause)`` and listed again every ``absent_retry_s``; any other error relists
    after ``retry_s``, doubled on each failure in a row up to ``max_retry_s``."""

    def __init__(
        self,
        source: JobSource,
        *,
        resource: str,
        on_page: Callable[[list[dict[str, Any]]], None],
        on_listed: Callable[[float, str], None],
        on_event: Callable[[str, dict[str, Any]], None],
        on_absent: Callable[[str], None] = lambda cause: None,
        on_relist: Callable[[str], None] = lambda cause: None,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        retry_s: float = 2.0,
        max_retry_s: float | None = None,
        absent_retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self.resource = resource
        """What is listed, for log lines (``jobsets.jobset.x-k8s.io/v1alpha2``)."""
        self._on_page = on_page
        self._on_listed = on_listed
        self._on_event = on_event
        self._on_absent = on_absent
        self._on_relist = on_relist
        self._page_size = page_size
        self._watch_timeout_s = watch_timeout_s
        self._retry_s = retry_s
        self._max_retry_s = retry_s if max_retry_s is None else max_retry_s
        self._absent_retry_s = absent_retry_s
        self._absent = False
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
        retry_s = self._retry_s
        while not self._stop.is_set():
            try:
                version = self.relist(cause)
                retry_s = self._retry_s
                self._watch_from(version)
                return  # stopped
            except GoneError as e:
                log.info("%s watch: %s; relisting", self.resource, e)
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
                    "%s feed interrupted (%s); relisting in %.0f s", self.resource, e, retry_s
                )
                cause = "error"
                self._stop.wait(retry_s)
                retry_s = min(retry_s * 2, self._max_retry_s)

    def _not_served(self, cause: str, error: KubeError) -> None:
        if not self._absent:
            # Info, not a warning: most clusters have only some of the kinds enabled by default.
            log.info(
                "%s is not served by the apiserver (CRD not installed?): %s; nothing of this "
                "kind is judged or released until it is (checked every %.0f s)",
                self.resource,
                error,
                self._absent_retry_s,
            )
            self._absent = True
        self._on_absent(cause)

    def relist(self, cause: str) -> str:
        """List every object, page by page; the list's resourceVersion."""
        self._on_relist(cause)
        started = self._clock()
        token: str | None = None
        version = ""
        while True:
            page = self._source.list_jobs(limit=self._page_size, continue_token=token)
            version = page.resource_version or version
            token = page.continue_token
            items = page.items
            del page
            self._on_page(items)
            del items
            if not token or self._stop.is_set():
                break
        if self._absent:
            log.info("%s is served now: watching it", self.resource)
            self._absent = False
        self._on_listed(self._clock() - started, cause)
        return version

    def _watch_from(self, version: str) -> None:
        while not self._stop.is_set():
            stream = self._source.watch_jobs(version, timeout_s=self._watch_timeout_s)
            self._stream = stream
            try:
                for kind, obj in stream:
                    version = str(_metadata(obj).get("resourceVersion") or version)
                    if kind != "BOOKMARK":
                        self._on_event(kind, obj)
                    if self._stop.is_set():
                        return
            finally:
                self._stream = None
                stream.close()


class JobFeed:
    """List + watch of one workload kind in all namespaces into ``sink`` (run it in a
    thread); ``source`` serves that kind. Every object is reduced to a message
    (:func:`read_job`) as it arrives, so raw objects never pile up in a queue."""

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
        self._workload = workload
        self._signing_keys = signing_keys
        self._sink = sink
        self._uids: set[str] = set()
        self._on_relist = on_relist
        gvk = workload.gvk
        self._loop = ListWatch(
            source,
            resource=f"{workload.plural}.{gvk.group or 'core'}/{gvk.version}",
            on_page=self._page,
            on_listed=self._listed,
            on_event=self._event,
            on_absent=lambda cause: self._sink(ListDone(frozenset(), 0.0, cause, workload)),
            on_relist=self._relisting,
            page_size=page_size,
            watch_timeout_s=watch_timeout_s,
            retry_s=retry_s,
            absent_retry_s=absent_retry_s,
            clock=clock,
        )

    def stop(self) -> None:
        self._loop.stop()

    @property
    def stopped(self) -> bool:
        return self._loop.stopped

    def run(self) -> None:
        self._loop.run()

    def relist(self, cause: str) -> str:
        """List every object of the kind, page by page; the list's resourceVersion."""
        return self._loop.relist(cause)

    def _relisting(self, cause: str) -> None:
        self._uids.clear()  # what an interrupted list saw is not a list
        self._on_relist(cause)

    def _page(self, items: list[dict[str, Any]]) -> None:
        jobs = []
        for item in items:
            job = read_job(item, self._signing_keys, self._workload)
            if isinstance(job, Unreadable | Forged):
                self._sink(job)
            elif job is not None:
                jobs.append(job)
                self._uids.add(job.uid)
        self._sink(Listed(jobs))

    def _listed(self, seconds: float, cause: str) -> None:
        uids, self._uids = frozenset(self._uids), set()
        self._sink(ListDone(uids, seconds, cause, self._workload))
        log.info(
            "listed %d deferred %s in %.2f s (%s)", len(uids), self._loop.resource, seconds, cause
        )

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "ADDED":
            created = read_not_deferred(obj, self._signing_keys, self._workload)
            if created is not None:
                self._sink(created)
        uid = str(_metadata(obj).get("uid", ""))
        job = None if kind == "DELETED" else read_job(obj, self._signing_keys, self._workload)
        if isinstance(job, Unreadable | Forged):
            self._sink(job)  # the controller drops it if it was tracked
        else:
            self._sink(Changed(uid, job))

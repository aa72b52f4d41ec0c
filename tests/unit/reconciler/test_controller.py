"""The Reconciler class, driven turn by turn on fakes at its I/O edge.

``FakeKube`` implements the adapter calls the controller makes (``ReconcilerAPI``) over an
in-memory store with the apiserver's optimistic concurrency: every write bumps the object's
resourceVersion, and a merge patch or replace that names an older one is a 409 Conflict. The
clock is a fake; the writer pool runs PATCHes in the caller; the controller loop is stepped with
``Reconciler.step`` and the lease keeper with ``Reconciler.renew_lease``. Everything else is
real: decide, timers, lease election, Events, accounting, metrics. What the apiserver itself
does with these calls is covered by the e2e suite against a real control plane.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from builders import T0, at, deferred_job, finished

from webhook.config.reconciler import ReconcilerSettings
from webhook.core import annotations as keys
from webhook.core.annotations import format_time
from webhook.core.forecast import ForecastResult
from webhook.core.provenance import SigningKeys
from webhook.core.series import StepSeries, from_epoch, to_epoch
from webhook.reconciler.controller import Reconciler
from webhook.reconciler.decide import TrackedJob
from webhook.reconciler.feed import (
    Changed,
    Forged,
    ListDone,
    Listed,
    NotDeferred,
    Unreadable,
    read_job,
    read_not_deferred,
)
from webhook.reconciler.history import DATA_KEY
from webhook.reconciler.kube import AlreadyExistsError, ConflictError, NotFoundError, Page
from webhook.telemetry.metrics import ReconcilerMetrics
from webhook.workloads.base import Workload
from webhook.workloads.job import JOB
from webhook.workloads.jobset import JOBSET
from webhook.workloads.kubeflow import PYTORCHJOB

HOUR = 3600.0
NAMESPACE = "greenlight"


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch (what the adapter's ``patch_job`` sends)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class _Watch:
    changes: list[dict[str, Any]]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.changes)

    def close(self) -> None:
        self.changes = []


@dataclass
class FakeKube:
    """Jobs, Events, the Lease and the history ConfigMap in memory, with 409/404 semantics."""

    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every PATCH sent (key, body), the refused ones included."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    kinds: dict[str, FakeKube] = field(default_factory=dict)
    """The objects of every other workload kind, one fake each (their Events come here)."""

    def for_workload(self, workload: Workload) -> FakeKube:
        if workload is JOB:
            return self
        return self.kinds.setdefault(workload.gvk.kind, FakeKube())

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return obj

    def _check(self, stored: dict[str, Any], version: object) -> None:
        if version is not None and version != stored["metadata"]["resourceVersion"]:
            raise ConflictError(f"the object has been modified (at {version})", 409)

    # Jobs -----------------------------------------------------------------------------------

    def add_job(self, job: dict[str, Any]) -> dict[str, Any]:
        metadata = job["metadata"]
        stored = self._stamp(copy.deepcopy(job))
        self.jobs[metadata["namespace"], metadata["name"]] = stored
        self.changes.append({"type": "ADDED", "object": copy.deepcopy(stored)})
        return copy.deepcopy(stored)

    def edit_job(self, namespace: str, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """A change by someone else (a user, another controller)."""
        stored = self.jobs[namespace, name]
        edit(stored)
        self._stamp(stored)
        self.changes.append({"type": "MODIFIED", "object": copy.deepcopy(stored)})

    def list_jobs(
        self, *, limit: int, continue_token: str | None = None, namespace: str | None = None
    ) -> Page:
        items = [
            copy.deepcopy(job)
            for (ns, _), job in sorted(self.jobs.items())
            if namespace is None or ns == namespace
        ]
        start = int(continue_token or 0)
        token = str(start + limit) if start + limit < len(items) else None
        return Page(items[start : start + limit], str(len(self.changes)), token)

    def watch_jobs(self, resource_version: str, *, timeout_s: int) -> _Watch:
        return _Watch(copy.deepcopy(self.changes[int(resource_version) :]))

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) not in self.jobs:
            raise NotFoundError(f"job {namespace}/{name} not found", 404)
        return copy.deepcopy(self.jobs[namespace, name])

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((f"{namespace}/{name}", copy.deepcopy(patch)))
        stored = self.jobs.get((namespace, name))
        if stored is None:
            raise NotFoundError(f"job {namespace}/{name} not found", 404)
        body = copy.deepcopy(patch)
        self._check(stored, body.get("metadata", {}).pop("resourceVersion", None))
        self._stamp(_merge(stored, body))
        self.changes.append({"type": "MODIFIED", "object": copy.deepcopy(stored)})
        return copy.deepcopy(stored)

    # Events ---------------------------------------------------------------------------------

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        key = (namespace, event["metadata"]["name"])
        if key in self.events:
            raise AlreadyExistsError(f"event {key[1]} already exists", 409)
        self.events[key] = copy.deepcopy(event)

    def list_events(
        self, *, field_selector: str, limit: int, continue_token: str | None = None
    ) -> Page:
        wanted = dict(term.split("=", 1) for term in field_selector.split(","))
        items = [
            event
            for event in self.events.values()
            if event["reason"] == wanted["reason"]
            and event["source"]["component"] == wanted["source"]
        ]
        return Page(copy.deepcopy(items), "1", None)

    def reasons(self) -> list[str]:
        return sorted(event["reason"] for event in self.events.values())

    # The Lease and the history ConfigMap ----------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.leases.get((namespace, name)))

    def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        key = (namespace, lease["metadata"]["name"])
        if key in self.leases:
            raise AlreadyExistsError(f"lease {key[1]} already exists", 409)
        self.leases[key] = self._stamp(copy.deepcopy(lease))
        return copy.deepcopy(self.leases[key])

    def replace_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> dict[str, Any]:
        stored = self.leases.get((namespace, name))
        if stored is None:
            raise NotFoundError(f"lease {name} not found", 404)
        self._check(stored, lease["metadata"].get("resourceVersion"))
        self.leases[namespace, name] = self._stamp(copy.deepcopy(lease))
        return copy.deepcopy(self.leases[namespace, name])

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.config_maps.get((namespace, name)))

    def create_config_map(self, namespace: str, config_map: dict[str, Any]) -> None:
        key = (namespace, config_map["metadata"]["name"])
        if key in self.config_maps:
            raise AlreadyExistsError(f"configmap {key[1]} already exists", 409)
        self.config_maps[key] = self._stamp(copy.deepcopy(config_map))

    def replace_config_map(self, namespace: str, name: str, config_map: dict[str, Any]) -> None:
        stored = self.config_maps.get((namespace, name))
        if stored is None:
            raise NotFoundError(f"configmap {name} not found", 404)
        self._check(stored, config_map["metadata"].get("resourceVersion"))
        self.config_maps[namespace, name] = self._stamp(copy.deepcopy(config_map))


class InlineWriters(Executor):
    """Runs each write in the caller: its outcome is in the inbox when ``submit`` returns."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@dataclass
class Clock:
    """Wall time (epoch seconds) and a monotonic clock, moved together by the test."""

    wall: float = T0.timestamp()
    mono: float = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def to(self, moment: datetime) -> None:
        delta = moment.timestamp() - self.wall
        assert delta >= 0, "the clock only moves forward"
        self.wall += delta
        self.mono += delta


class Forecasts:
    """The forecast held in memory for every zone; ``fail`` makes it a provider outage."""

    def __init__(self, series: StepSeries) -> None:
        self.series = series
        self.fail = False

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        if self.fail:
            return ForecastResult(
                zone, "replay", "none", None, None, True, "replay provider unreachable"
            )
        return ForecastResult(zone, "replay", "provider", self.series, 60.0, False, None)


def _hourly(values: dict[range, float], default: float, hours: int = 48) -> StepSeries:
    """Hourly intensity from T0: ``default``, with ``values`` over the given hour ranges."""
    points = [default] * hours
    for span, value in values.items():
        for hour in span:
            points[hour] = value
    return StepSeries.regular(to_epoch(T0), int(HOUR), points)


FLAT = _hourly({}, 300.0)


@dataclass
class Harness:
    kube: FakeKube
    clock: Clock
    forecasts: Forecasts
    metrics: ReconcilerMetrics
    reconciler: Reconciler
    signing_keys: SigningKeys | None = None

    def see(self, *jobs: dict[str, Any]) -> None:
        """The feed's first list: these Jobs, as stored."""
        self.relist(*(self.kube.add_job(job) for job in jobs))

    def relist(self, *stored: dict[str, Any]) -> None:
        """A list of these stored Jobs, read as the feed reads them."""
        records = []
        for job in stored:
            record = read_job(job, self.signing_keys)
            if isinstance(record, Unreadable | Forged):
                self.reconciler.step(record)
            elif record is not None:
                records.append(record)
        self.reconciler.step(Listed(records))
        uids = frozenset(record.uid for record in records)
        self.reconciler.step(ListDone(uids, 0.1, "start"))

    def watch(self, namespace: str, name: str) -> None:
        """The feed's watch event for the Job as now stored."""
        job = self.kube.get_job(namespace, name)
        record = read_job(job, self.signing_keys)
        if isinstance(record, Unreadable | Forged):
            self.reconciler.step(record)
        else:
            self.reconciler.step(Changed(job["metadata"]["uid"], record))

    def at(self, moment: datetime) -> None:
        """Move the clock to ``moment``, run a round of the lease keeper (it runs every retry
        period), then the controller until nothing is left to do."""
        self.clock.to(moment)
        self.reconciler.renew_lease()
        self.settle()

    def other_replica_holds_the_lease(self) -> None:
        """replica-b writes (or renews) the Lease, as of now."""
        key = (NAMESPACE, "greenlight-reconciler")
        now = f"{format_time(from_epoch(self.clock.wall))[:-1]}.000000Z"
        lease = self.kube.leases.get(key) or {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": key[1], "namespace": NAMESPACE},
            "spec": {"acquireTime": now, "leaseTransitions": 0},
        }
        lease["spec"].update(holderIdentity="replica-b", leaseDurationSeconds=15, renewTime=now)
        self.kube.leases[key] = self.kube._stamp(lease)

    def settle(self) -> None:
        for _ in range(20):  # each turn handles a write's outcome; a few suffice
            self.reconciler.step()
            if self.reconciler._inbox.empty():
                return
        raise AssertionError("the controller kept posting to itself")

    def record_events(self) -> None:
        """The event writer's loop, in the test, up to an end marker put after what is queued."""
        self.reconciler._events.put(None)
        self.reconciler._write_events()

    def stored(self, name: str = "train", namespace: str = "ml") -> dict[str, Any]:
        return self.kube.get_job(namespace, name)

    def sample(self, metric: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(metric, labels)
        return 0.0 if value is None else value


def _harness(
    series: StepSeries = FLAT,
    *,
    leader: bool = True,
    signing_keys: SigningKeys | None = None,
    workloads: tuple[Workload, ...] = (JOB,),
    **overrides: Any,
) -> Harness:
    settings = ReconcilerSettings(
        lease_namespace=NAMESPACE, release_spread_s=0.0, identity="replica-a", **overrides
    )
    kube, clock, forecasts = FakeKube(), Clock(), Forecasts(series)
    metrics = ReconcilerMetrics()
    reconciler = Reconciler(
        kube,
        settings=settings,
        metrics=metrics,
        forecasts=forecasts,
        clock=clock.time,
        monotonic=clock.monotonic,
        writers=InlineWriters(),
        signing_keys=signing_keys,
        workloads=workloads,
    )
    harness = Harness(kube, clock, forecasts, metrics, reconciler, signing_keys)
    if leader:
        reconciler.renew_lease()
        harness.settle()
        assert reconciler.leading()
    return harness


def _released(job: dict[str, Any]) -> tuple[bool, str | None, str | None]:
    annotations = job["metadata"]["annotations"]
    return (
        job["spec"]["suspend"] is False,
        annotations.get(keys.RELEASED_AT),
        annotations.get(keys.RELEASE_REASON),
    )


# --- Releasing on time ----------------------------------------------------------------------


def test_a_deferred_job_is_released_at_its_release_time_and_not_before() -> None:
    # Re-plans off: on this flat forecast a re-plan would rightly release the Job early (there
    # is nothing to wait for); re-plans are tested on their own below.
    h = _harness(max_replans=0)
    release_at = at(6 * HOUR)
    h.see(deferred_job(release_at=release_at))
    h.at(release_at - timedelta(seconds=1))
    assert h.kube.patches == []
    assert h.stored()["spec"]["suspend"] is True

    h.at(release_at)
    assert _released(h.stored()) == (True, format_time(release_at), "window")
    assert len(h.kube.patches) == 1
    assert h.sample("greenlight_releases_total", reason="window") == 1.0
    assert h.sample("greenlight_release_lateness_seconds_count") == 1.0
    assert h.sample("greenlight_release_lateness_seconds_sum") == 0.0
    assert (
        h.sample(
            "greenlight_reconciler_api_requests_total", verb="patch", resource="jobs", outcome="ok"
        )
        == 1.0
    )


def test_released_and_deferred_events_are_recorded_once() -> None:
    h = _harness()
    h.see(deferred_job(release_at=at(HOUR)))
    h.at(at(HOUR))
    h.record_events()
    assert h.kube.reasons() == ["Deferred", "Released"]
    released = next(e for e in h.kube.events.values() if e["reason"] == "Released")
    assert released["involvedObject"]["uid"] == "uid-ml-train"
    assert released["reportingInstance"] == "replica-a"

    # The same Job seen again (a relist) records nothing new.
    h.watch("ml", "train")
    h.record_events()
    assert h.kube.reasons() == ["Deferred", "Released"]
    assert (
        h.sample(
            "greenlight_reconciler_api_requests_total",
            verb="create",
            resource="events",
            outcome="ok",
        )
        == 2.0
    )


def test_a_missed_window_is_released_at_once_once_its_latest_start_has_passed() -> None:
    h = _harness()
    h.at(at(10 * HOUR))  # greenlight was down through both times
    h.see(deferred_job(release_at=at(2 * HOUR), release_by=at(5 * HOUR)))
    assert _released(h.stored())[::2] == (True, "deadline")
    assert h.sample("greenlight_releases_total", reason="deadline") == 1.0


@pytest.mark.parametrize(
    "replans", [pytest.param(0, id="as-admitted"), pytest.param(2, id="after-re-plans")]
)
def test_with_the_forecast_failing_a_job_is_still_released_by_its_latest_start(
    replans: int,
) -> None:
    h = _harness()
    h.forecasts.fail = True
    release_by = at(8 * HOUR)
    extra = {keys.REPLAN_COUNT: str(replans)} if replans else {}
    h.see(deferred_job(release_at=at(7 * HOUR), release_by=release_by, extra=extra))
    for hour in range(1, 8):
        h.at(at(hour * HOUR - 1))
        released_early = [p for _, p in h.kube.patches if "spec" in p]
        assert released_early == [], f"released early, before hour {hour}"
    # Each hourly firing past the 30 min interval re-checked the plan (no forecast: kept) and
    # recorded the check on the Job, annotations only.
    checks = [p["metadata"]["annotations"] for _, p in h.kube.patches]
    assert checks
    assert all(set(c) == {keys.REPLAN_CHECKED_AT, keys.REPLAN_CHECKS} for c in checks)
    assert [c[keys.REPLAN_CHECKS] for c in checks] == [str(n) for n in range(1, len(checks) + 1)]
    assert h.sample("greenlight_replans_total", outcome="kept") == len(checks)
    h.at(at(7 * HOUR))
    released, released_at, reason = _released(h.stored())
    assert released
    assert released_at == format_time(at(7 * HOUR))
    assert datetime.fromisoformat(released_at) <= release_by
    assert reason == "provider-outage"
    assert h.sample("greenlight_releases_total", reason="provider-outage") == 1.0


# --- Re-plans -------------------------------------------------------------------------------


def test_a_cleaner_later_window_at_the_planned_time_moves_the_release() -> None:
    # At the planned +6 h the grid is as dirty as at admission; +10 h to +14 h is far cleaner.
    h = _harness(_hourly({range(10, 14): 20.0}, 400.0))
    h.see(deferred_job(release_at=at(6 * HOUR), release_by=at(20 * HOUR)))
    h.at(at(6 * HOUR))
    annotations = h.stored()["metadata"]["annotations"]
    assert h.stored()["spec"]["suspend"] is True
    assert annotations[keys.RELEASE_AT] == format_time(at(10 * HOUR))
    assert annotations[keys.REPLAN_COUNT] == "1"
    assert annotations[keys.REPLANNED_AT] == format_time(at(6 * HOUR))
    assert keys.RELEASED_AT not in annotations
    assert h.sample("greenlight_replans_total", outcome="moved") == 1.0

    h.at(at(10 * HOUR))
    assert _released(h.stored()) == (True, format_time(at(10 * HOUR)), "replanned")
    h.record_events()
    assert h.kube.reasons() == ["Deferred", "Released", "Replanned"]


# --- Conflicts ------------------------------------------------------------------------------


def test_a_conflict_is_answered_by_reading_the_job_again_and_deciding_on_it() -> None:
    h = _harness()
    h.see(deferred_job(release_at=at(HOUR)))
    # Someone labels the Job; the watch event has not arrived when the release is due.
    h.kube.edit_job(
        "ml", "train", lambda job: job["metadata"].setdefault("labels", {}).update(team="vision")
    )
    h.at(at(HOUR))
    assert len(h.kube.patches) == 2  # refused at the old version, then sent at the fresh one
    first, second = (patch["metadata"]["resourceVersion"] for _, patch in h.kube.patches)
    assert first != second
    stored = h.stored()
    assert _released(stored)[::2] == (True, "window")
    assert stored["metadata"]["labels"] == {"team": "vision"}
    assert (
        h.sample(
            "greenlight_reconciler_api_requests_total",
            verb="patch",
            resource="jobs",
            outcome="conflict",
        )
        == 1.0
    )
    assert h.sample("greenlight_releases_total", reason="window") == 1.0


def test_a_conflict_with_a_users_own_release_records_it_without_touching_the_spec() -> None:
    h = _harness()
    h.see(deferred_job(release_at=at(HOUR)))
    h.kube.edit_job("ml", "train", lambda job: job["spec"].update(suspend=False))
    h.at(at(HOUR))
    assert len(h.kube.patches) == 2
    assert "spec" not in h.kube.patches[1][1]
    assert _released(h.stored())[::2] == (True, "manual")
    assert h.sample("greenlight_releases_total", reason="manual") == 1.0


def test_a_job_deleted_before_its_release_is_forgotten() -> None:
    h = _harness()
    h.see(deferred_job(release_at=at(HOUR)))
    del h.kube.jobs["ml", "train"]
    h.at(at(HOUR))
    assert (
        h.sample(
            "greenlight_reconciler_api_requests_total",
            verb="patch",
            resource="jobs",
            outcome="not-found",
        )
        == 1.0
    )
    h.at(at(2 * HOUR))
    assert len(h.kube.patches) == 1
    assert h.sample("greenlight_reconciler_tracked_jobs") == 0.0


# --- Leadership -----------------------------------------------------------------------------


def test_a_replica_that_lost_the_lease_stops_acting() -> None:
    h = _harness(renew_deadline_s=10.0, lease_duration_s=15.0)
    h.see(deferred_job(release_at=at(HOUR)))
    assert h.sample("greenlight_reconciler_leader") == 1.0
    # This replica missed its renewals; another took the Lease over.
    h.clock.to(at(30))
    h.other_replica_holds_the_lease()
    h.reconciler.renew_lease()
    h.settle()
    assert not h.reconciler.leading()
    assert h.sample("greenlight_reconciler_leader") == 0.0
    lease = h.kube.leases[NAMESPACE, "greenlight-reconciler"]
    assert lease["spec"]["holderIdentity"] == "replica-b"

    h.clock.to(at(HOUR))
    h.other_replica_holds_the_lease()  # and keeps renewing it
    h.at(at(HOUR))
    assert h.kube.patches == []
    assert h.stored()["spec"]["suspend"] is True


def test_a_follower_that_becomes_leader_releases_what_is_due_at_once() -> None:
    h = _harness(leader=False)
    h.other_replica_holds_the_lease()
    h.see(deferred_job(release_at=at(HOUR)))
    h.clock.to(at(HOUR))
    h.other_replica_holds_the_lease()
    h.at(at(HOUR))
    assert not h.reconciler.leading()
    assert h.kube.patches == []  # replica-b's to act on

    # replica-b stops renewing: once its lease has run out, this replica takes it over and
    # decides every Job again at once.
    h.at(at(HOUR + 20))
    assert h.reconciler.leading()
    assert _released(h.stored())[::2] == (True, "window")


# --- Accounting -----------------------------------------------------------------------------


def test_a_released_job_is_accounted_when_it_finishes() -> None:
    h = _harness()
    h.see(deferred_job(release_at=at(HOUR), duration_s=3600, energy_kwh=2.0))
    h.at(at(HOUR))
    assert _released(h.stored())[0]
    h.at(at(2.5 * HOUR))
    h.kube.edit_job(
        "ml", "train", lambda job: job.update(status=finished(at(HOUR + 60), at(2 * HOUR + 60)))
    )
    h.watch("ml", "train")
    h.settle()
    annotations = h.stored()["metadata"]["annotations"]
    assert annotations[keys.ACTUAL_RUN_S] == "3600"
    assert float(annotations[keys.ACTUAL_ENERGY_KWH]) == pytest.approx(2.0)
    emissions = float(annotations[keys.ACTUAL_EMISSIONS_G])
    # No intensity observed (empty history): the planned intensity, 100 g/kWh, is the basis.
    assert emissions == pytest.approx(200.0)
    assert float(annotations[keys.ACTUAL_SAVINGS_G]) == pytest.approx(600.0)
    assert h.sample("greenlight_actual_emissions_grams_total", namespace="ml") == pytest.approx(
        emissions
    )
    assert h.sample(
        "greenlight_counterfactual_emissions_grams_total", namespace="ml"
    ) == pytest.approx(800.0)
    assert h.sample("greenlight_completed_deferred_jobs_total", namespace="ml") == 1.0
    h.record_events()
    assert h.kube.reasons() == ["Completed", "Deferred", "Released"]

    # Accounted once: the Job is forgotten, and seeing it again writes nothing.
    patches = len(h.kube.patches)
    h.watch("ml", "train")
    h.at(at(2.5 * HOUR + 2))  # the gauges refresh every second
    assert len(h.kube.patches) == patches
    assert h.sample("greenlight_reconciler_tracked_jobs") == 0.0


# --- The intensity history ConfigMap --------------------------------------------------------


def _stored_zones(h: Harness) -> list[str]:
    stored = h.kube.get_config_map(NAMESPACE, h.reconciler._settings.history_configmap)
    assert stored is not None, "the history ConfigMap was not written"
    return sorted(json.loads(stored["data"][DATA_KEY])["zones"])


def test_observations_recorded_before_the_first_flush_are_written_once() -> None:
    h = _harness()
    # Recorded while the process starts, before the writer first looks (the e2e race).
    h.reconciler.history.record("GB", _hourly({}, 200.0, hours=2))
    h.reconciler.load_history()  # nothing stored yet
    assert h.reconciler.flush_history()
    assert _stored_zones(h) == ["GB"]
    assert not h.reconciler.flush_history()  # nothing new
    assert h.sample("greenlight_history_writes_total", outcome="ok") == 1.0


def test_a_loaded_history_is_not_rewritten_until_something_new_is_observed() -> None:
    first = _harness()
    first.reconciler.history.record("GB", _hourly({}, 200.0, hours=2))
    assert first.reconciler.flush_history()

    h = _harness()
    h.kube.config_maps = first.kube.config_maps
    h.reconciler.load_history()
    assert h.reconciler.history.zones == ["GB"]
    assert not h.reconciler.flush_history()
    h.reconciler.history.record("FR", _hourly({}, 50.0, hours=2))
    assert h.reconciler.flush_history()
    assert _stored_zones(h) == ["FR", "GB"]


def test_a_failed_history_write_is_retried_at_the_next_flush() -> None:
    h = _harness()
    h.reconciler.history.record("GB", _hourly({}, 200.0, hours=2))
    name = h.reconciler._settings.history_configmap
    h.kube.config_maps[NAMESPACE, name] = {"metadata": {"name": name, "resourceVersion": "1"}}
    stale = {"metadata": {"name": name, "resourceVersion": "0"}}
    real_get = h.kube.get_config_map
    h.kube.get_config_map = lambda namespace, name: stale  # type: ignore[method-assign]
    assert not h.reconciler.flush_history()  # a conflict: written by someone else meanwhile
    assert h.sample("greenlight_history_writes_total", outcome="conflict") == 1.0
    h.kube.get_config_map = real_get  # type: ignore[method-assign]
    assert h.reconciler.flush_history()
    assert _stored_zones(h) == ["GB"]


def test_the_gauges_count_the_waiting_jobs_and_the_overdue_ones() -> None:
    h = _harness(leader=False, overdue_grace_s=60.0)
    h.other_replica_holds_the_lease()
    h.see(
        deferred_job("a", release_at=at(HOUR), release_by=at(2 * HOUR)),
        deferred_job("b", release_at=at(HOUR), release_by=at(10 * HOUR)),
    )
    assert h.sample("greenlight_deferred_jobs") == 2.0
    assert h.sample("greenlight_reconciler_synced") == 1.0
    h.clock.to(at(2 * HOUR + 61))
    h.other_replica_holds_the_lease()
    h.at(at(2 * HOUR + 61))  # a follower: nothing is released, "a" is past its latest start
    assert h.sample("greenlight_overdue_deferred_jobs") == 1.0
    assert h.sample("greenlight_deferred_jobs") == 2.0


# --- Jobs set aside ---------------------------------------------------------------------------


def test_an_unreadable_job_gets_one_warning_per_version_and_the_others_are_released() -> None:
    h = _harness(replan_interval_s=24 * HOUR)
    h.see(deferred_job("good", release_at=at(HOUR)))
    unreadable = Unreadable("uid-ml-bad", "ml", "bad", "7", "metadata.name is ['x']")
    for _ in range(3):  # three relists of the same version
        h.reconciler.step(unreadable)
    h.reconciler.step(Unreadable("uid-ml-bad", "ml", "bad", "8", "metadata.name is ['y']"))
    h.at(at(HOUR))
    h.record_events()
    assert _released(h.stored("good"))[0]
    warnings = [e for e in h.kube.events.values() if e["reason"] == "Unreadable"]
    assert len(warnings) == 2
    assert {e["type"] for e in warnings} == {"Warning"}
    assert {e["involvedObject"]["uid"] for e in warnings} == {"uid-ml-bad"}
    assert h.sample("greenlight_unreadable_jobs_total") == 2.0
    assert not h.reconciler.stopped


def test_the_unreadable_counter_is_exported_at_zero() -> None:
    h = _harness()
    assert h.metrics.registry.get_sample_value("greenlight_unreadable_jobs_total") == 0.0


# --- Signed decisions (issue 17) ------------------------------------------------------------

SIGNER = SigningKeys((b"s" * 32,))


def _signed(job: dict[str, Any]) -> dict[str, Any]:
    """``job`` as the webhook would have signed it."""
    metadata = job["metadata"]
    annotations = metadata["annotations"]
    annotations[keys.ADMISSION_UID] = f"req-{metadata['name']}"
    annotations[keys.SIGNATURE] = SIGNER.signed(metadata, annotations)
    return job


def test_a_forged_job_is_never_patched_or_counted_and_warned_about_once() -> None:
    h = _harness(signing_keys=SIGNER, replan_interval_s=24 * HOUR)
    h.see(
        _signed(deferred_job("honest", release_at=at(HOUR))),
        deferred_job("forged", release_at=at(HOUR)),  # the same plan, unsigned
        deferred_job(
            "poison",
            annotations={keys.DECISION: "deferred", keys.ADMITTED_AT: "9999-12-31T23:59:59-14:00"},
        ),
    )
    before = {name: copy.deepcopy(h.stored(name)) for name in ("forged", "poison")}
    assert h.sample("greenlight_deferred_jobs") == 1.0
    h.at(at(HOUR))
    h.relist(*(h.stored(name) for name in ("honest", "forged", "poison")))
    h.watch("ml", "forged")
    h.at(at(30 * HOUR))  # past every latest start
    assert _released(h.stored("honest"))[0]
    for name, stored in before.items():
        assert h.stored(name) == stored  # never patched: same resourceVersion and annotations
    h.record_events()
    forged = [e for e in h.kube.events.values() if e["reason"] == "ForgedDecision"]
    assert sorted(e["involvedObject"]["name"] for e in forged) == ["forged", "poison"]
    assert {e["type"] for e in forged} == {"Warning"}
    assert h.sample("greenlight_forged_jobs_total") == 2.0
    assert h.sample("greenlight_releases_total", reason="window") == 1.0
    assert h.sample("greenlight_releases_total", reason="invalid-plan") == 0.0
    assert h.sample("greenlight_deferred_jobs") == 0.0
    assert not h.reconciler.stopped


def test_a_signed_job_edited_by_its_user_reads_as_forged() -> None:
    h = _harness(signing_keys=SIGNER)
    h.see(_signed(deferred_job(release_at=at(HOUR))))
    h.kube.edit_job(
        "ml",
        "train",
        lambda j: j["metadata"]["annotations"].update(
            {keys.RELEASE_BY: format_time(at(90 * HOUR))}
        ),
    )
    h.watch("ml", "train")
    h.at(at(60))  # the gauges' next update
    assert h.sample("greenlight_forged_jobs_total") == 1.0
    assert h.sample("greenlight_deferred_jobs") == 0.0


def test_a_re_plan_signs_the_moved_plan_so_the_job_is_still_released() -> None:
    h = _harness(_hourly({range(10, 14): 20.0}, 400.0), signing_keys=SIGNER)
    h.see(_signed(deferred_job(release_at=at(6 * HOUR), release_by=at(20 * HOUR))))
    h.at(at(6 * HOUR))
    moved = h.stored()
    assert moved["metadata"]["annotations"][keys.RELEASE_AT] == format_time(at(10 * HOUR))
    assert SIGNER.problem(moved["metadata"]) is None
    h.watch("ml", "train")
    h.at(at(10 * HOUR))
    assert _released(h.stored()) == (True, format_time(at(10 * HOUR)), "replanned")
    assert h.sample("greenlight_forged_jobs_total") == 0.0


def test_a_forged_job_seen_by_a_follower_is_warned_about_once_it_leads() -> None:
    h = _harness(signing_keys=SIGNER, leader=False)
    h.other_replica_holds_the_lease()
    h.see(deferred_job("forged"))
    h.record_events()
    assert h.kube.reasons() == []
    h.at(at(10))
    h.at(at(40))  # replica-b stopped renewing: its lease has run out
    assert h.reconciler.leading()
    h.record_events()
    assert h.kube.reasons() == ["ForgedDecision"]


def test_a_move_on_a_job_changed_since_it_was_decided_on_is_decided_again_then_signed() -> None:
    h = _harness(_hourly({range(10, 14): 20.0}, 400.0), signing_keys=SIGNER)
    h.see(_signed(deferred_job(release_at=at(6 * HOUR), release_by=at(20 * HOUR))))
    # Its user labels it; the watch event has not arrived when the move is written.
    h.kube.edit_job("ml", "train", lambda j: j["metadata"]["annotations"].update(team="vision"))
    h.at(at(6 * HOUR))
    moved = h.stored()
    assert moved["metadata"]["annotations"][keys.RELEASE_AT] == format_time(at(10 * HOUR))
    assert moved["metadata"]["annotations"]["team"] == "vision"
    assert SIGNER.problem(moved["metadata"]) is None
    assert (
        h.sample(
            "greenlight_reconciler_api_requests_total", verb="get", resource="jobs", outcome="ok"
        )
        == 2.0
    )  # the read that found it changed, and the one the move was signed over


# --- Every workload kind ----------------------------------------------------------------------


def _gang(kind: Workload, name: str = "train", **plan: Any) -> dict[str, Any]:
    """A deferred object of ``kind``: the deferred Job's metadata, the kind's own suspend flag."""
    obj = deferred_job(name, uid=f"uid-{kind.gvk.kind}-{name}", **plan)
    del obj["spec"]["suspend"]
    obj.update(apiVersion=kind.gvk.api_version, kind=kind.gvk.kind)
    node = obj
    for key in kind.suspend_path[:-1]:
        node = node.setdefault(key, {})
    node[kind.suspend_path[-1]] = True
    return obj


def _see_kind(h: Harness, kind: Workload, *objects: dict[str, Any]) -> list[dict[str, Any]]:
    """The first list of ``kind``'s feed: these objects, stored in that kind's API."""
    api = h.kube.for_workload(kind)
    stored = [api.add_job(obj) for obj in objects]
    records = [read_job(obj, None, kind) for obj in stored]
    tracked = [record for record in records if isinstance(record, TrackedJob)]
    assert len(tracked) == len(records)
    h.reconciler.step(Listed(tracked))
    h.reconciler.step(ListDone(frozenset(record.uid for record in tracked), 0.1, "start", kind))
    return stored


def test_a_deferred_jobset_is_released_through_its_own_api_and_suspend_flag() -> None:
    h = _harness(max_replans=0, workloads=(JOB, JOBSET))
    release_at = at(2 * HOUR)
    _see_kind(h, JOBSET, _gang(JOBSET, release_at=release_at))
    h.at(release_at)
    jobsets = h.kube.for_workload(JOBSET)
    stored = jobsets.get_job("ml", "train")
    assert stored["spec"]["suspend"] is False
    assert stored["metadata"]["annotations"][keys.RELEASE_REASON] == "window"
    assert h.kube.patches == []  # nothing went to the Jobs API
    h.record_events()
    released = next(e for e in h.kube.events.values() if e["reason"] == "Released")
    assert released["involvedObject"]["kind"] == "JobSet"
    assert released["involvedObject"]["apiVersion"] == "jobset.x-k8s.io/v1alpha2"


def test_a_pytorchjob_is_released_through_its_run_policy() -> None:
    h = _harness(max_replans=0, workloads=(PYTORCHJOB,))
    _see_kind(h, PYTORCHJOB, _gang(PYTORCHJOB, release_at=at(HOUR)))
    h.at(at(HOUR))
    stored = h.kube.for_workload(PYTORCHJOB).get_job("ml", "train")
    assert stored["spec"]["runPolicy"]["suspend"] is False
    assert "suspend" not in stored["spec"]


def test_a_relist_of_one_kind_forgets_only_that_kinds_vanished_objects() -> None:
    h = _harness(max_replans=0, workloads=(JOB, JOBSET))
    assert not h.reconciler.wait_synced(0)
    _see_kind(h, JOBSET, _gang(JOBSET, release_at=at(6 * HOUR)))
    assert not h.reconciler.wait_synced(0)  # the Jobs are not listed yet
    h.see()  # an empty list of Jobs
    assert h.reconciler.wait_synced(0)
    assert {job.workload for job in h.reconciler._jobs.values()} == {JOBSET}
    h.reconciler.step(ListDone(frozenset(), 0.1, "gone", JOBSET))  # the JobSet was deleted
    assert h.reconciler._jobs == {}


def test_a_finished_jobset_is_accounted_from_its_release() -> None:
    h = _harness(max_replans=0, workloads=(JOBSET,))
    _see_kind(h, JOBSET, _gang(JOBSET, release_at=at(HOUR), duration_s=3600, energy_kwh=2.0))
    h.at(at(HOUR))
    done = at(2 * HOUR)
    jobsets = h.kube.for_workload(JOBSET)
    jobsets.edit_job(
        "ml",
        "train",
        lambda obj: obj.update(
            status={
                "conditions": [
                    {"type": "Completed", "status": "True", "lastTransitionTime": format_time(done)}
                ]
            }
        ),
    )
    record = read_job(jobsets.get_job("ml", "train"), None, JOBSET)
    assert isinstance(record, TrackedJob)
    h.reconciler.step(Changed(record.uid, record))
    h.settle()
    annotations = jobsets.get_job("ml", "train")["metadata"]["annotations"]
    assert annotations[keys.ACTUAL_RUN_S] == "3600"  # from released-at: a JobSet has no startTime
    assert h.sample("greenlight_completed_deferred_jobs_total", namespace="ml") == 1.0


# --- Run-now and skip Events (issue 16) ----------------------------------------------------


def _created_to_run(name: str, decision: str, code: str, reason: str) -> NotDeferred:
    obj = deferred_job(
        name,
        suspend=False,
        annotations={keys.DECISION: decision, keys.REASON_CODE: code, keys.REASON: reason},
    )
    announced = read_not_deferred(obj)
    assert announced is not None
    return announced


def test_the_leader_records_one_event_per_job_created_to_run_now_or_skipped() -> None:
    h = _harness()
    ran = _created_to_run("ran", "run-now", "best-now", "no later window is cleaner")
    hook = _created_to_run("hook", "skipped", "helm-hook", "Helm hook Jobs run at once")
    for message in (ran, hook, ran):  # the second replica's, or a duplicate: one Event still
        h.reconciler.step(message)
    h.record_events()
    events = sorted(h.kube.events.values(), key=lambda e: e["involvedObject"]["name"])
    assert [(e["involvedObject"]["name"], e["reason"], e["type"]) for e in events] == [
        ("hook", "Skipped", "Normal"),
        ("ran", "RanNow", "Normal"),
    ]
    assert events[1]["message"] == "Ran at once [best-now]: no later window is cleaner"
    assert events[1]["involvedObject"]["uid"] == "uid-ml-ran"
    assert h.sample("greenlight_deferred_jobs") == 0.0  # announced, never tracked


def test_a_replica_that_does_not_lead_records_no_run_now_event() -> None:
    h = _harness(leader=False)
    h.reconciler.step(_created_to_run("ran", "run-now", "best-now", "x"))
    h.record_events()
    assert h.kube.events == {}

"""Leader election over a ``coordination.k8s.io`` Lease, as pure state: what to write next.

The protocol is client-go's ``leaderelection``: every ``retry_period`` each replica reads the
Lease and

- creates it, holding it, when there is none;
- renews it (``renewTime``) when it is the holder;
- takes it over (new ``holderIdentity``, ``acquireTime``, ``leaseTransitions + 1``) when the
  holder is empty or the record has not changed for ``leaseDurationSeconds`` *as measured on
  this replica's own monotonic clock* — never by comparing another machine's timestamps;
- otherwise follows.

Every write carries the resourceVersion that was read, so two replicas can never both win the
same round. A leader that has not renewed successfully for ``renew_deadline`` stops acting
before any other replica can take over (``renew_deadline < lease_duration``). On a clean
shutdown the leader empties ``holderIdentity`` so a follower takes over at its next try.

:class:`Elector` holds the observations and decides; the adapter reads and writes the Lease.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal


@dataclass(frozen=True)
class LeaseRecord:
    """The leader-election fields of a Lease's spec."""

    holder: str
    duration_s: int
    acquired_at: datetime | None = None
    renewed_at: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Attempt:
    """What the replica should do now: create or update the Lease with ``record``, or follow."""

    action: Literal["create", "update", "follow"]
    record: LeaseRecord | None = None
    holder: str = ""


class Elector:
    """One replica's view of the election. Times passed in are its monotonic clock (seconds)."""

    def __init__(self, identity: str, *, lease_duration_s: float, renew_deadline_s: float) -> None:
        if not identity:
            raise ValueError("a leader-election identity must not be empty")
        if renew_deadline_s >= lease_duration_s:
            raise ValueError(
                f"renew deadline ({renew_deadline_s} s) must be shorter than the lease "
                f"duration ({lease_duration_s} s)"
            )
        self.identity = identity
        self._duration_s = max(1, math.ceil(lease_duration_s))
        self._renew_deadline_s = renew_deadline_s
        self._observed: LeaseRecord | None = None
        self._observed_at = -math.inf
        self._renewed_at: float | None = None

    def plan(self, current: LeaseRecord | None, *, now: float, wall: datetime) -> Attempt:
        """Given the Lease as just read (None: it does not exist), what to write."""
        if current != self._observed:
            self._observed = current
            self._observed_at = now
        if current is None:
            return Attempt("create", LeaseRecord(self.identity, self._duration_s, wall, wall, 0))
        if current.holder == self.identity:
            renewed = replace(current, renewed_at=wall, duration_s=self._duration_s)
            return Attempt("update", renewed)
        # Someone else's (or nobody's) Lease: whatever this replica thought, it does not lead.
        self._renewed_at = None
        if current.holder and now < self._observed_at + current.duration_s:
            return Attempt("follow", holder=current.holder)
        taken = LeaseRecord(self.identity, self._duration_s, wall, wall, current.transitions + 1)
        return Attempt("update", taken)

    def written(self, record: LeaseRecord, *, now: float) -> None:
        """The write of ``record`` succeeded at ``now``."""
        self._observed = record
        self._observed_at = now
        if record.holder == self.identity:
            self._renewed_at = now

    def is_leader(self, now: float) -> bool:
        """True while the last successful renewal is younger than the renew deadline."""
        return self._renewed_at is not None and now - self._renewed_at < self._renew_deadline_s

    def step_down(self) -> None:
        self._renewed_at = None

    def released(self, current: LeaseRecord, wall: datetime) -> LeaseRecord | None:
        """The record that hands the Lease over on shutdown (None: not ours to release)."""
        if current.holder != self.identity:
            return None
        return replace(current, holder="", renewed_at=wall, duration_s=1)


def _micro_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def record_from_spec(spec: dict[str, Any] | None) -> LeaseRecord:
    """A Lease's ``spec`` (JSON) as a record; missing fields read as empty."""
    spec = spec or {}
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=int(duration) if isinstance(duration, int) else 0,
        acquired_at=_parse_time(spec.get("acquireTime")),
        renewed_at=_parse_time(spec.get("renewTime")),
        transitions=int(transitions) if isinstance(transitions, int) else 0,
    )


def spec_from_record(record: LeaseRecord) -> dict[str, Any]:
    """The Lease ``spec`` (JSON, MicroTime timestamps) for ``record``."""
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.duration_s,
        "acquireTime": _micro_time(record.acquired_at),
        "renewTime": _micro_time(record.renewed_at),
        "leaseTransitions": record.transitions,
    }

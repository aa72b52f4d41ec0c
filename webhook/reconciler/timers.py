"""One timer per Job: a heap of (due time, key) with lazy cancellation.

The reconciler never sweeps its whole list per tick: each tracked Job has at most one live
timer — its release target, or its next re-plan — and the controller sleeps until the earliest
one (or until the watch brings news). Rescheduling a key replaces its timer; cancelled and
replaced entries stay in the heap until they surface and are skipped, and the heap is rebuilt
when stale entries outnumber live ones, so memory stays proportional to the live timers.

Not thread-safe: the controller thread owns it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class TimerQueue(Generic[K]):
    """Timers keyed by ``K``; times are any monotonic float (the reconciler uses epoch seconds)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[float, int]] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def due_at(self, key: K) -> float | None:
        entry = self._live.get(key)
        return None if entry is None else entry[0]

    def schedule(self, key: K, at: float) -> None:
        """Fire ``key`` at ``at``, replacing any timer it had."""
        current = self._live.get(key)
        if current is not None and current[0] == at:
            return
        sequence = next(self._sequence)
        self._live[key] = (at, sequence)
        heapq.heappush(self._heap, (at, sequence, key))
        self._compact()

    def cancel(self, key: K) -> None:
        if self._live.pop(key, None) is not None:
            self._compact()

    def next_at(self) -> float | None:
        """When the earliest live timer fires (None: no timer)."""
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[K]:
        """Keys whose timers are due at ``now``, earliest first (at most ``limit``); each is
        removed (schedule it again to keep it)."""
        due: list[K] = []
        while self._heap and (limit is None or len(due) < limit):
            at, sequence, key = self._heap[0]
            if self._live.get(key) != (at, sequence):
                heapq.heappop(self._heap)
                continue
            if at > now:
                break
            heapq.heappop(self._heap)
            del self._live[key]
            due.append(key)
        return due

    def _drop_stale_head(self) -> None:
        while self._heap:
            at, sequence, key = self._heap[0]
            if self._live.get(key) == (at, sequence):
                return
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [(at, sequence, key) for key, (at, sequence) in self._live.items()]
            heapq.heapify(self._heap)

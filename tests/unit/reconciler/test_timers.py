from __future__ import annotations

import pytest

from webhook.reconciler.timers import TimerQueue


def test_due_timers_come_out_earliest_first_and_only_when_due() -> None:
    timers: TimerQueue[str] = TimerQueue()
    for key, at in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        timers.schedule(key, at)
    assert timers.next_at() == 10.0
    assert timers.pop_due(5.0) == []
    assert timers.pop_due(20.0) == ["a", "b"]
    assert timers.next_at() == 30.0
    assert len(timers) == 1


def test_rescheduling_replaces_the_timer_of_a_key() -> None:
    timers: TimerQueue[str] = TimerQueue()
    timers.schedule("job", 10.0)
    timers.schedule("job", 50.0)
    assert timers.pop_due(20.0) == []
    assert timers.due_at("job") == 50.0
    assert timers.pop_due(50.0) == ["job"]
    assert "job" not in timers


def test_a_cancelled_timer_never_fires() -> None:
    timers: TimerQueue[str] = TimerQueue()
    timers.schedule("kept", 10.0)
    timers.schedule("gone", 5.0)
    timers.cancel("gone")
    timers.cancel("never-scheduled")
    assert timers.next_at() == 10.0
    assert timers.pop_due(100.0) == ["kept"]


@pytest.mark.parametrize("limit", [1, 3], ids=["one", "three"])
def test_pop_due_honours_its_limit_and_keeps_the_rest(limit: int) -> None:
    timers: TimerQueue[int] = TimerQueue()
    for key in range(5):
        timers.schedule(key, float(key))
    assert timers.pop_due(10.0, limit=limit) == list(range(limit))
    assert len(timers) == 5 - limit


def test_memory_stays_proportional_to_live_timers_under_churn() -> None:
    timers: TimerQueue[int] = TimerQueue()
    for round_ in range(100):
        for key in range(10):
            timers.schedule(key, float(round_ * 10 + key))
    assert len(timers) == 10
    assert len(timers._heap) <= max(64, 2 * len(timers)) + 1
    assert timers.pop_due(10_000.0) == list(range(10))

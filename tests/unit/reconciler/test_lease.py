"""Leader election as pure state, driven by a fake monotonic clock."""

from __future__ import annotations

from dataclasses import replace

import pytest
from builders import T0, at

from webhook.reconciler.lease import (
    Elector,
    LeaseRecord,
    record_from_spec,
    spec_from_record,
)


def elector(identity: str = "a") -> Elector:
    return Elector(identity, lease_duration_s=15, renew_deadline_s=10)


def test_the_first_replica_creates_the_lease_and_leads() -> None:
    me = elector()
    attempt = me.plan(None, now=0.0, wall=T0)
    assert attempt.action == "create"
    assert attempt.record == LeaseRecord("a", 15, T0, T0, 0)
    assert not me.is_leader(0.0)
    me.written(attempt.record, now=0.0)
    assert me.is_leader(0.0)


def test_the_holder_renews_keeping_its_acquire_time_and_transitions() -> None:
    me = elector()
    held = LeaseRecord("a", 15, T0, T0, 3)
    attempt = me.plan(held, now=5.0, wall=at(5))
    assert attempt.action == "update"
    assert attempt.record == replace(held, renewed_at=at(5))


def test_a_follower_waits_while_the_holder_keeps_renewing() -> None:
    me = elector("b")
    record = LeaseRecord("a", 15, T0, T0, 0)
    assert me.plan(record, now=0.0, wall=T0).action == "follow"
    for second in range(2, 40, 2):
        record = replace(record, renewed_at=at(second))
        attempt = me.plan(record, now=float(second), wall=at(second))
        assert attempt.action == "follow"
        assert attempt.holder == "a"


def test_a_follower_takes_over_a_lease_unchanged_for_its_duration_on_its_own_clock() -> None:
    me = elector("b")
    # The holder's clock is far off: its renewTime is in the future. Only the observation
    # time on this replica's clock counts.
    stale = LeaseRecord("a", 15, at(3600), at(3600), 4)
    assert me.plan(stale, now=100.0, wall=T0).action == "follow"
    assert me.plan(stale, now=114.9, wall=T0).action == "follow"
    attempt = me.plan(stale, now=115.0, wall=at(15))
    assert attempt.action == "update"
    assert attempt.record == LeaseRecord("b", 15, at(15), at(15), 5)


def test_an_empty_holder_is_taken_at_once() -> None:
    me = elector("b")
    released = LeaseRecord("", 1, T0, T0, 2)
    attempt = me.plan(released, now=0.0, wall=T0)
    assert attempt.action == "update"
    assert attempt.record is not None
    assert (attempt.record.holder, attempt.record.transitions) == ("b", 3)


def test_a_leader_that_cannot_renew_stops_leading_before_anyone_can_take_over() -> None:
    me = elector()
    record = LeaseRecord("a", 15, T0, T0, 0)
    me.written(record, now=0.0)
    assert me.is_leader(9.9)
    assert not me.is_leader(10.0)  # renew deadline 10 s < lease duration 15 s


def test_a_leader_that_sees_another_holder_stops_leading_at_once() -> None:
    me = elector()
    me.written(LeaseRecord("a", 15, T0, T0, 0), now=0.0)
    me.plan(LeaseRecord("b", 15, at(1), at(1), 1), now=1.0, wall=at(1))
    assert not me.is_leader(1.0)


def test_shutdown_hands_the_lease_over_only_when_holding_it() -> None:
    me = elector()
    mine = LeaseRecord("a", 15, T0, T0, 0)
    handed = me.released(mine, at(5))
    assert handed == LeaseRecord("", 1, T0, at(5), 0)
    assert me.released(replace(mine, holder="b"), at(5)) is None


@pytest.mark.parametrize(
    ("duration", "deadline"), [(10, 10), (10, 12)], ids=["equal", "deadline-longer"]
)
def test_a_renew_deadline_not_shorter_than_the_lease_is_refused(
    duration: float, deadline: float
) -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        Elector("a", lease_duration_s=duration, renew_deadline_s=deadline)


def test_a_record_survives_the_round_trip_through_a_lease_spec() -> None:
    record = LeaseRecord("a", 15, at(0.123456), at(7.5), 2)
    spec = spec_from_record(record)
    assert spec["renewTime"] == "2025-06-02T12:00:07.500000Z"
    assert record_from_spec(spec) == record
    assert record_from_spec(None) == LeaseRecord("", 0)

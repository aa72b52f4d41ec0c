"""Jobs written by anyone: whatever their annotations and spec hold, reading and deciding on
them returns a record and an action, or a documented error, and never raises anything else
(one bad object must never stop the reconciler: issue 17)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from builders import T0, deferred_job, plan_annotations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.config.reconciler import ReconcilerSettings
from webhook.core import annotations as keys
from webhook.core.annotations import DeferralError, parse_deferral
from webhook.reconciler.decide import (
    Account,
    Forget,
    Knowledge,
    Move,
    RecordManual,
    Release,
    ReleaseReason,
    Track,
    UnreadableJobError,
    Wait,
    decide,
    patch_for,
    track,
)
from webhook.reconciler.feed import Unreadable, read_job
from webhook.workloads.ownership import read_deferral

ACTIONS = (Forget, Track, Wait, Release, RecordManual, Move, Account)

POISON = {
    keys.DECISION: "deferred",
    keys.ADMITTED_AT: "9999-12-31T23:59:59-14:00",
}


def test_the_poison_job_from_the_issue_is_read_as_an_unreadable_plan_not_an_overflow() -> None:
    job = deferred_job("poison", annotations=POISON)
    with pytest.raises(DeferralError, match=r"greenlight.dev/admitted-at=.*out of range"):
        read_deferral(job)
    record = track(job)
    assert record is not None
    assert record.deferral is None
    assert record.deferral_error is not None
    assert keys.ADMITTED_AT in record.deferral_error
    action = decide(record, Knowledge(now=T0))
    assert isinstance(action, Release)
    assert action.reason == ReleaseReason.INVALID_PLAN


GOOD = plan_annotations()


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (keys.ADMITTED_AT, "9999-12-31T23:59:59-14:00", "out of range"),
        (keys.RELEASE_AT, "0001-01-01T00:00:00+14:00", "out of range"),
        (keys.RELEASE_BY, "2025-06-02T12:00:00", "no UTC offset"),
        (keys.RELEASE_BY, "٢٠٢٥-06-02T12:00:00Z", "not ASCII"),
        (keys.RELEASE_AT, "9998-06-02T12:00:00Z", "out of range"),
        (keys.PLANNED_DURATION_S, "1" * 5000, "whole number of seconds"),
        (keys.PLANNED_DURATION_S, "1e9", "whole number of seconds"),
        (keys.PLANNED_DURATION_S, "0", "from 1 to"),
        (keys.PLANNED_DURATION_S, "99999999999", "from 1 to"),
        (keys.ENERGY_KWH, "nan", "finite"),
        (keys.ENERGY_KWH, "inf", "finite"),
        (keys.ENERGY_KWH, "1e400", "finite"),
        (keys.ENERGY_KWH, "-1", "0 or more"),
        (keys.ENERGY_KWH, "２", "not ASCII"),
        (keys.PLANNED_MIN_SAVINGS_PCT, "NaN", "from 0 to 100"),
        (keys.PLANNED_MIN_SAVINGS_PCT, "101", "from 0 to 100"),
        (keys.PLANNED_ZONE, "", "not a grid zone"),
        (keys.PLANNED_ZONE, "DE\n", "not a grid zone"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_a_bad_plan_value_is_a_deferral_error_naming_its_key(
    key: str, value: str, problem: str
) -> None:
    with pytest.raises(DeferralError) as raised:
        parse_deferral({**GOOD, key: value})
    assert str(raised.value).startswith(key)
    assert problem in str(raised.value)
    assert len(str(raised.value)) < 300  # a 5000-digit value is cut short in the message


@pytest.mark.parametrize("value", [None, 7, 1.5, ["2025-06-02T12:00:00Z"], {"a": 1}, True])
def test_a_plan_value_that_is_not_a_string_is_a_deferral_error_naming_its_key(
    value: object,
) -> None:
    with pytest.raises(DeferralError, match=keys.RELEASE_AT):
        parse_deferral({**GOOD, keys.RELEASE_AT: value})


def test_a_missing_plan_value_is_a_deferral_error_naming_its_key() -> None:
    annotations = {k: v for k, v in GOOD.items() if k != keys.RELEASE_BY}
    with pytest.raises(DeferralError, match=f"no {keys.RELEASE_BY} annotation"):
        parse_deferral(annotations)


@pytest.mark.parametrize("field", ["uid", "namespace", "name", "resourceVersion"])
@pytest.mark.parametrize("value", [None, "", 12, ["x"]])
def test_a_deferred_job_whose_identity_cannot_be_read_is_an_unreadable_job_error(
    field: str, value: object
) -> None:
    job = deferred_job()
    job["metadata"][field] = value
    with pytest.raises(UnreadableJobError, match=f"metadata.{field}"):
        track(job)
    unreadable = read_job(job)
    assert isinstance(unreadable, Unreadable)
    assert f"metadata.{field}" in unreadable.error


# --- Property: arbitrary annotations and spec.suspend -------------------------------------

_GREENLIGHT_KEYS = [*keys.INPUT_KEYS, *keys.WEBHOOK_OUTPUT_KEYS, *keys.RECONCILER_OUTPUT_KEYS]

_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "2025-06-02T18:00:00Z",
            "2025-06-02T18:00:00",
            "2025-06-02",
        ]
    ),
)
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["nan", "-inf", "1e400", "1" * 400, "٣", "０", "", " 7 "]),
)
_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=40),
    _TIMES,
    _NUMBERS,
    st.sampled_from(["deferred", "run-now", "true", "false", "window", "DE"]),
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
_ANNOTATIONS = st.dictionaries(
    st.one_of(st.sampled_from(_GREENLIGHT_KEYS), st.text(max_size=30)),
    _VALUES,
    max_size=30,
)


def _job(annotations: dict[str, Any], suspend: object, status: object) -> dict[str, Any]:
    job = deferred_job(annotations={})
    job["metadata"]["annotations"] = annotations
    job["spec"]["suspend"] = suspend
    job["status"] = status
    return job


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    annotations=_ANNOTATIONS,
    deferred=st.booleans(),
    with_plan=st.booleans(),
    suspend=_VALUES,
    status=st.one_of(
        _VALUES,
        st.fixed_dictionaries(
            {
                "startTime": _TIMES,
                "completionTime": _TIMES,
                "conditions": st.lists(
                    st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(["Complete", "Failed", "Suspended"]),
                            "status": st.sampled_from(["True", "False", True]),
                            "lastTransitionTime": _VALUES,
                        }
                    ),
                    max_size=2,
                ),
            }
        ),
    ),
    now_s=st.floats(min_value=-1e9, max_value=1e9),
)
def test_any_annotations_give_a_record_and_an_action_or_a_documented_error(
    annotations: dict[str, Any],
    deferred: bool,
    with_plan: bool,
    suspend: object,
    status: object,
    now_s: float,
) -> None:
    if with_plan:  # most fuzzed plans fail on their first key: also fuzz a plan one key off
        annotations = {**GOOD, **annotations}
    if deferred:
        annotations[keys.DECISION] = "deferred"
    job = _job(annotations, suspend, status)
    try:
        record = track(job)
    except UnreadableJobError:  # the one documented error (this builder's identity is sound)
        raise AssertionError("identity is readable here") from None
    assert isinstance(read_job(job), type(record))
    if record is None:
        assert annotations.get(keys.DECISION) != "deferred"
        return
    now = T0 + timedelta(seconds=now_s)
    config = ReconcilerSettings(release_spread_s=300.0)
    action = decide(record, Knowledge(now=now, settings=config))
    assert isinstance(action, ACTIONS)
    patch = patch_for(record, action, now)
    assert patch is None or patch["metadata"]["resourceVersion"] == record.resource_version

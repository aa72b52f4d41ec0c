from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from reviews import job

from webhook.core import annotations as keys
from webhook.core.annotations import DeferralError
from webhook.workloads.ownership import greenlight_owns, read_deferral

DEFERRED = {
    keys.DECISION: "deferred",
    keys.ADMITTED_AT: "2025-06-02T12:00:00Z",
    keys.RELEASE_AT: "2025-06-02T18:00:00Z",
    keys.RELEASE_BY: "2025-06-03T12:00:00Z",
    keys.PLANNED_ZONE: "DE",
    keys.PLANNED_DURATION_S: "3600",
    keys.ENERGY_KWH: "1.250",
}


@pytest.mark.parametrize(
    ("obj", "owned"),
    [
        pytest.param(job(annotations=DEFERRED, suspend=True), True, id="deferred-and-waiting"),
        pytest.param(
            job(annotations={**DEFERRED, keys.RELEASED_AT: "2025-06-02T18:00:01Z"}, suspend=False),
            False,
            id="released",
        ),
        pytest.param(job(annotations=DEFERRED, suspend=False), False, id="released-by-user"),
        pytest.param(
            job(
                annotations={keys.DECISION: "skipped", keys.REASON_CODE: "user-suspended"},
                suspend=True,
            ),
            False,
            id="user-suspended",
        ),
        pytest.param(
            job(annotations={**DEFERRED, keys.DECISION: "observed"}), False, id="observed"
        ),
        pytest.param(job(suspend=True), False, id="never-judged"),
        pytest.param({"metadata": "x"}, False, id="malformed"),
    ],
)
def test_greenlight_owns_exactly_the_jobs_it_deferred_and_has_not_released(
    obj: dict[str, Any], owned: bool
) -> None:
    assert greenlight_owns(obj) is owned


def test_the_recorded_plan_reads_back_typed() -> None:
    deferral = read_deferral(job(annotations=DEFERRED, suspend=True))
    assert deferral.release_at == datetime(2025, 6, 2, 18, tzinfo=UTC)
    assert deferral.release_by == datetime(2025, 6, 3, 12, tzinfo=UTC)
    assert (deferral.zone, deferral.duration_s, deferral.energy_kwh) == ("DE", 3600, 1.25)


def test_a_missing_plan_annotation_is_a_clear_error() -> None:
    broken = {k: v for k, v in DEFERRED.items() if k != keys.RELEASE_BY}
    with pytest.raises(DeferralError, match=keys.RELEASE_BY):
        read_deferral(job(annotations=broken, suspend=True))


def test_the_minimum_saving_the_plan_used_reads_back_and_is_optional() -> None:
    assert read_deferral(job(annotations=DEFERRED, suspend=True)).min_saving_pct is None
    recorded = {**DEFERRED, keys.PLANNED_MIN_SAVINGS_PCT: "12.5"}
    assert read_deferral(job(annotations=recorded, suspend=True)).min_saving_pct == 12.5


@pytest.mark.parametrize("value", ["lots", "", "-1", "150", "nan"])
def test_a_bad_recorded_minimum_saving_is_a_deferral_error(value: str) -> None:
    bad = {**DEFERRED, keys.PLANNED_MIN_SAVINGS_PCT: value}
    expected = f"greenlight.dev/planned-min-savings-pct='{value}': expected a number from 0 to 100"
    with pytest.raises(DeferralError, match=re.escape(expected)):
        read_deferral(job(annotations=bad, suspend=True))

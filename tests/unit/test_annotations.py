from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from webhook.core import annotations as keys
from webhook.core.annotations import Inputs, Mode, parse_inputs


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        pytest.param(keys.SKIP, "true", Inputs(skip=True), id="skip-true"),
        pytest.param(keys.SKIP, "False", Inputs(skip=False), id="skip-false-any-case"),
        pytest.param(keys.MAX_DELAY, "24h", Inputs(max_delay_s=86400), id="max-delay-hours"),
        pytest.param(keys.MAX_DELAY, "1h30m", Inputs(max_delay_s=5400), id="max-delay-mixed"),
        pytest.param(keys.MAX_DELAY, "0", Inputs(max_delay_s=0), id="max-delay-zero"),
        pytest.param(
            keys.DEADLINE,
            "2025-06-01T18:00:00+02:00",
            Inputs(deadline=datetime(2025, 6, 1, 16, tzinfo=UTC)),
            id="deadline-offset-to-utc",
        ),
        pytest.param(
            keys.DEADLINE,
            "2025-06-01T18:00:00Z",
            Inputs(deadline=datetime(2025, 6, 1, 18, tzinfo=UTC)),
            id="deadline-z",
        ),
        pytest.param(
            keys.EXPECTED_DURATION, "45m", Inputs(expected_duration_s=2700), id="duration"
        ),
        pytest.param(
            keys.WORKLOAD, "batch-inference", Inputs(workload="batch-inference"), id="workload"
        ),
        pytest.param(keys.GPU_MODEL, "H100-SXM", Inputs(gpu_model="H100-SXM"), id="gpu-model"),
        pytest.param(keys.ZONE, "US-CAL-CISO", Inputs(zone="US-CAL-CISO"), id="zone"),
        pytest.param(keys.MIN_SAVINGS, "12.5%", Inputs(min_savings_pct=12.5), id="savings-pct"),
        pytest.param(keys.MIN_SAVINGS, "10", Inputs(min_savings_pct=10.0), id="savings-plain"),
        pytest.param(keys.MODE, "observe", Inputs(mode=Mode.OBSERVE), id="mode"),
    ],
)
def test_each_input_parses_to_its_typed_value(key: str, value: str, expected: Inputs) -> None:
    parsed = parse_inputs({key: value})
    assert parsed.errors == ()
    assert parsed.inputs == expected


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        pytest.param(keys.SKIP, "yes", "", id="skip-not-bool"),
        pytest.param(keys.MAX_DELAY, "2d", "days are not a unit", id="max-delay-days"),
        pytest.param(keys.MAX_DELAY, "-1h", "negative", id="max-delay-negative"),
        pytest.param(keys.EXPECTED_DURATION, "0s", "longer than zero", id="duration-zero"),
        pytest.param(keys.EXPECTED_DURATION, "soon", "not a duration", id="duration-word"),
        pytest.param(keys.DEADLINE, "2025-06-01", "UTC offset", id="deadline-date-only"),
        pytest.param(keys.DEADLINE, "2025-06-01T18:00:00", "UTC offset", id="deadline-naive"),
        pytest.param(keys.DEADLINE, "tomorrow", "not an RFC 3339", id="deadline-word"),
        pytest.param(keys.WORKLOAD, "gaming", "", id="workload-unknown"),
        pytest.param(keys.ZONE, "", "", id="zone-empty"),
        pytest.param(keys.ZONE, "DE; drop", "", id="zone-bad-chars"),
        pytest.param(keys.MIN_SAVINGS, "150", "out of range", id="savings-over-100"),
        pytest.param(keys.MIN_SAVINGS, "nan", "out of range", id="savings-nan"),
        pytest.param(keys.MIN_SAVINGS, "lots", "not a number", id="savings-word"),
        pytest.param(keys.MODE, "enforce", "", id="mode-unknown"),
    ],
)
def test_a_bad_input_is_reported_with_key_value_and_accepted_form(
    key: str, value: str, problem: str
) -> None:
    parsed = parse_inputs({key: value})
    assert len(parsed.errors) == 1
    error = parsed.errors[0]
    assert (error.key, error.value, error.accepted) == (key, value, keys.ACCEPTED[key])
    assert problem in error.problem
    assert key in str(error)
    assert repr(value) in str(error)
    assert keys.ACCEPTED[key] in str(error)


def test_every_bad_input_is_collected_not_just_the_first() -> None:
    parsed = parse_inputs(
        {keys.MAX_DELAY: "forever", keys.MODE: "loud", keys.ZONE: "DE", keys.SKIP: "nope"}
    )
    assert {e.key for e in parsed.errors} == {keys.MAX_DELAY, keys.MODE, keys.SKIP}
    assert parsed.inputs.zone == "DE"


def test_unrelated_annotations_are_ignored() -> None:
    parsed = parse_inputs({"app.kubernetes.io/name": "x", "helm.sh/hook": "pre-install"})
    assert parsed == keys.ParsedInputs(Inputs(), ())


def test_inputs_given_at_a_level_win_over_its_defaults() -> None:
    job_level = Inputs(max_delay_s=3600, zone=None)
    namespace = Inputs(max_delay_s=7200, zone="DE", mode=Mode.OBSERVE)
    merged = job_level.over(namespace)
    assert merged == Inputs(max_delay_s=3600, zone="DE", mode=Mode.OBSERVE)


def test_false_and_zero_are_given_values_not_missing_ones() -> None:
    merged = Inputs(skip=False, max_delay_s=0).over(Inputs(skip=True, max_delay_s=3600))
    assert (merged.skip, merged.max_delay_s) == (False, 0)


@pytest.mark.parametrize(
    ("key", "is_output"),
    [
        pytest.param(keys.DECISION, True, id="webhook-output"),
        pytest.param(keys.RELEASED_AT, True, id="reconciler-output"),
        pytest.param("greenlight.dev/some-future-key", True, id="future-greenlight-key"),
        pytest.param(keys.MAX_DELAY, False, id="input"),
        pytest.param("example.com/decision", False, id="other-prefix"),
    ],
)
def test_output_keys_are_every_greenlight_key_but_the_inputs(key: str, is_output: bool) -> None:
    assert keys.is_output_key(key) is is_output


def test_unknown_keys_are_greenlight_keys_neither_input_nor_output() -> None:
    found = keys.unknown_keys(
        {keys.MAX_DELAY: "1h", keys.DECISION: "deferred", "greenlight.dev/max-dealy": "1h"}
    )
    assert found == ["greenlight.dev/max-dealy"]


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        pytest.param(12.345, 1, "12.3", id="rounds"),
        pytest.param(-0.01, 1, "0.0", id="no-negative-zero"),
        pytest.param(3.0, 3, "3.000", id="fixed-digits"),
    ],
)
def test_numbers_are_written_fixed_point(value: float, digits: int, text: str) -> None:
    assert keys.format_number(value, digits) == text


def test_times_are_written_rfc3339_utc_whole_seconds() -> None:
    moment = datetime(2025, 6, 1, 16, 30, 5, 123456, tzinfo=UTC)
    assert keys.format_time(moment) == "2025-06-01T16:30:05Z"


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        pytest.param(datetime(2025, 6, 1, 16, 30, 5, 999999, tzinfo=UTC), "2025-06-01T16:30:05Z",
                     id="last-microsecond"),
        pytest.param(datetime(2025, 6, 1, 18, 30, 5, tzinfo=timezone(timedelta(hours=2))),
                     "2025-06-01T16:30:05Z", id="offset"),
        pytest.param(datetime(2025, 6, 1, 0, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))),
                     "2025-05-31T18:45:00Z", id="offset-previous-day"),
        pytest.param(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
                     "1969-12-31T23:59:59Z", id="before-the-epoch"),
        pytest.param(datetime.max.replace(tzinfo=UTC), "9999-12-31T23:59:59Z", id="latest"),
    ],
)  # fmt: skip
def test_any_aware_time_is_written_as_its_utc_second(moment: datetime, text: str) -> None:
    assert keys.format_time(moment) == text
    assert keys.format_time(moment) == text  # again, from the per-second memo


def test_repeated_inputs_parse_alike_and_a_value_that_is_not_a_string_is_reported() -> None:
    annotations = {keys.MAX_DELAY: "12h", keys.WORKLOAD: "training"}
    assert parse_inputs(annotations) == parse_inputs(dict(annotations))
    assert parse_inputs(annotations).inputs == Inputs(max_delay_s=43200, workload="training")
    odd: dict[str, object] = {keys.MAX_DELAY: 12, keys.ZONE: ["DE"]}
    errors = parse_inputs(odd).errors  # type: ignore[arg-type]
    assert [(e.key, e.problem) for e in errors] == [
        (keys.MAX_DELAY, "not a string"),
        (keys.ZONE, "not a string"),
    ]

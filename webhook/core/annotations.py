"""Every ``greenlight.dev/*`` annotation key, the typed parsing of the inputs, and the outputs.

Inputs are read from a Job's annotations, with the same keys on a Namespace giving that
namespace's defaults and settings giving the global ones. Parsing never stops at the first bad
value: it returns every error (key, value, accepted form) so validation can report them together.
Outputs are what greenlight writes on each Job it judges; :func:`parse_deferral` reads the
recorded plan back for the reconciler and the report, so writer and readers share one module.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from webhook.core.durations import parse_duration
from webhook.core.energy import WORKLOADS

PREFIX = "greenlight.dev/"

# --- Inputs: on a Job, or on a Namespace as that namespace's defaults -------------------------
SKIP = "greenlight.dev/skip"
MAX_DELAY = "greenlight.dev/max-delay"
DEADLINE = "greenlight.dev/deadline"
EXPECTED_DURATION = "greenlight.dev/expected-duration"
WORKLOAD = "greenlight.dev/workload"
GPU_MODEL = "greenlight.dev/gpu-model"
ZONE = "greenlight.dev/zone"
MIN_SAVINGS = "greenlight.dev/min-savings"
MODE = "greenlight.dev/mode"

# --- Outputs written by the webhook on every judged Job ----------------------------------------
DECISION = "greenlight.dev/decision"
REASON = "greenlight.dev/reason"
REASON_CODE = "greenlight.dev/reason-code"
ADMITTED_AT = "greenlight.dev/admitted-at"
# When deferred:
RELEASE_AT = "greenlight.dev/release-at"
RELEASE_BY = "greenlight.dev/release-by"  # latest start that still meets max-delay / deadline
PLANNED_ZONE = "greenlight.dev/planned-zone"  # the zone the plan used (input or default)
PLANNED_DURATION_S = "greenlight.dev/planned-duration-s"
# the minimum saving (%) the plan used: Job, namespace or global, for the reconciler's re-plans
PLANNED_MIN_SAVINGS_PCT = "greenlight.dev/planned-min-savings-pct"
ENERGY_KWH = "greenlight.dev/energy-kwh"
INTENSITY_NOW = "greenlight.dev/intensity-now-g-per-kwh"
INTENSITY_PLANNED = "greenlight.dev/intensity-planned-g-per-kwh"
EMISSIONS_NOW_G = "greenlight.dev/emissions-now-g"
EMISSIONS_PLANNED_G = "greenlight.dev/emissions-planned-g"
SAVINGS_G = "greenlight.dev/savings-g"
SAVINGS_PCT = "greenlight.dev/savings-pct"
COST_NOW_USD = "greenlight.dev/cost-now-usd"
COST_PLANNED_USD = "greenlight.dev/cost-planned-usd"
PROVIDER = "greenlight.dev/provider"
FORECAST_SOURCE = "greenlight.dev/forecast-source"
FORECAST_AGE_S = "greenlight.dev/forecast-age-s"
# When deferred on a forecast whose error was measured: that error (% of the level) at the
# planned lead, and the predicted saving (% of running now) one such error either side.
FORECAST_ERROR_PCT = "greenlight.dev/forecast-error-pct"
SAVINGS_PCT_LOW = "greenlight.dev/savings-pct-low"
SAVINGS_PCT_HIGH = "greenlight.dev/savings-pct-high"
# Provenance (webhook.core.provenance): the AdmissionReview request the decision was made in,
# and the HMAC over the decision that proves greenlight wrote it.
ADMISSION_UID = "greenlight.dev/admission-uid"
SIGNATURE = "greenlight.dev/signature"

# --- Outputs written by the reconciler (declared here so every key has one home) --------------
RELEASED_AT = "greenlight.dev/released-at"
RELEASE_REASON = "greenlight.dev/release-reason"
REPLANNED_AT = "greenlight.dev/replanned-at"  # when a re-plan last moved release-at
REPLAN_COUNT = "greenlight.dev/replan-count"  # how many re-plans moved release-at
# Every re-plan, kept or moved (a kept one writes only these two): when the last one ran and
# how many ran. Written at most once per replan_interval_s per Job.
REPLAN_CHECKED_AT = "greenlight.dev/replan-checked-at"
REPLAN_CHECKS = "greenlight.dev/replan-checks"
ACTUAL_RUN_S = "greenlight.dev/actual-run-s"  # on completion: the real run time
ACTUAL_ENERGY_KWH = "greenlight.dev/actual-energy-kwh"
ACTUAL_INTENSITY = "greenlight.dev/actual-intensity-g-per-kwh"  # over the real run window
ACTUAL_EMISSIONS_G = "greenlight.dev/actual-emissions-g"
ACTUAL_SAVINGS_G = "greenlight.dev/actual-savings-g"  # versus the same run at admission

INPUT_KEYS: tuple[str, ...] = (
    SKIP,
    MAX_DELAY,
    DEADLINE,
    EXPECTED_DURATION,
    WORKLOAD,
    GPU_MODEL,
    ZONE,
    MIN_SAVINGS,
    MODE,
)
WEBHOOK_OUTPUT_KEYS: tuple[str, ...] = (
    DECISION,
    REASON,
    REASON_CODE,
    ADMITTED_AT,
    RELEASE_AT,
    RELEASE_BY,
    PLANNED_ZONE,
    PLANNED_DURATION_S,
    PLANNED_MIN_SAVINGS_PCT,
    ENERGY_KWH,
    INTENSITY_NOW,
    INTENSITY_PLANNED,
    EMISSIONS_NOW_G,
    EMISSIONS_PLANNED_G,
    SAVINGS_G,
    SAVINGS_PCT,
    COST_NOW_USD,
    COST_PLANNED_USD,
    PROVIDER,
    FORECAST_SOURCE,
    FORECAST_AGE_S,
    FORECAST_ERROR_PCT,
    SAVINGS_PCT_LOW,
    SAVINGS_PCT_HIGH,
    ADMISSION_UID,
    SIGNATURE,
)
RECONCILER_OUTPUT_KEYS: tuple[str, ...] = (
    RELEASED_AT,
    RELEASE_REASON,
    REPLANNED_AT,
    REPLAN_COUNT,
    REPLAN_CHECKED_AT,
    REPLAN_CHECKS,
    ACTUAL_RUN_S,
    ACTUAL_ENERGY_KWH,
    ACTUAL_INTENSITY,
    ACTUAL_EMISSIONS_G,
    ACTUAL_SAVINGS_G,
)


def is_greenlight_key(key: str) -> bool:
    return key.startswith(PREFIX)


def is_output_key(key: str) -> bool:
    """Any greenlight key that is not an input is greenlight's own (reconciler keys included,
    present and future), so only greenlight may change it."""
    return key.startswith(PREFIX) and key not in INPUT_KEYS


class Decision(StrEnum):
    DEFERRED = "deferred"
    RUN_NOW = "run-now"
    OBSERVED = "observed"
    SKIPPED = "skipped"


class Mode(StrEnum):
    DEFER = "defer"
    OBSERVE = "observe"


_ZONE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_GPU_MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,127}$")

ACCEPTED: Mapping[str, str] = {
    SKIP: '"true" or "false"',
    MAX_DELAY: 'a duration such as "24h", "90m" or "1h30m" (0 or more)',
    DEADLINE: 'an RFC 3339 time with a UTC offset, such as "2025-06-01T18:00:00Z"',
    EXPECTED_DURATION: 'a duration above zero, such as "2h", "45m" or "1h30m"',
    WORKLOAD: "one of " + ", ".join(WORKLOADS),
    GPU_MODEL: 'a GPU product name such as "H100-SXM" or "A100" (letters, digits, " _.+-")',
    ZONE: 'a grid zone such as "DE", "US-CAL-CISO" or "GB" (letters, digits, "_.:-")',
    MIN_SAVINGS: 'a percentage from 0 to 100, such as "10" or "12.5%"',
    MODE: '"defer" or "observe"',
}


@dataclass(frozen=True)
class AnnotationError:
    """One bad annotation: which key, the value given, and what would have been accepted."""

    key: str
    value: str
    accepted: str
    problem: str = ""

    def __str__(self) -> str:
        detail = f" ({self.problem})" if self.problem else ""
        return f"{self.key}={self.value!r}{detail}: expected {self.accepted}"


@dataclass(frozen=True)
class Inputs:
    """greenlight's inputs as given at one level (Job, Namespace or global); None = not given."""

    skip: bool | None = None
    max_delay_s: int | None = None
    deadline: datetime | None = None
    expected_duration_s: int | None = None
    workload: str | None = None
    gpu_model: str | None = None
    zone: str | None = None
    min_savings_pct: float | None = None
    mode: Mode | None = None

    def over(self, defaults: Inputs) -> Inputs:
        """These inputs, with each one not given here taken from ``defaults``."""
        return Inputs(
            **{
                name: value
                if (value := getattr(self, name)) is not None
                else getattr(defaults, name)
                for name in _INPUT_FIELDS
            }
        )


_INPUT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Inputs))


@dataclass(frozen=True)
class ParsedInputs:
    inputs: Inputs
    errors: tuple[AnnotationError, ...]


class _BadValueError(ValueError):
    """A value that does not parse; the message says what is wrong with it."""


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise _BadValueError("")


def _parse_duration(value: str, *, positive: bool) -> int:
    try:
        seconds = parse_duration(value, allow_zero=not positive)
    except ValueError as e:
        # The parser's message repeats the value and the form; keep what is wrong, and its hint.
        problem = str(e).split(": ", 1)[-1]
        if problem.startswith("expected"):
            problem = problem.split("; ", 1)[1] if "; " in problem else "not a duration"
        raise _BadValueError(problem) from e
    if seconds > MAX_RECORDED_DURATION_S:
        raise _BadValueError("longer than ten years")
    return seconds


def _parse_time(value: str) -> datetime:
    text = value.strip()
    if not text.isascii():  # fromisoformat() accepts other scripts' digits
        raise _BadValueError("not ASCII")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise _BadValueError("not an RFC 3339 time") from e
    if moment.tzinfo is None or "T" not in text.upper():
        raise _BadValueError("needs a date, a time and a UTC offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError as e:  # e.g. 9999-12-31T23:59:59-14:00: after the last UTC time
        raise _BadValueError("out of range") from e


def _parse_choice(value: str, choices: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise _BadValueError("")
    return lowered


def _parse_pattern(value: str, pattern: re.Pattern[str]) -> str:
    text = value.strip()
    if not pattern.match(text):
        raise _BadValueError("")
    return text


def _parse_percent(value: str) -> float:
    text = value.strip().removesuffix("%").strip()
    if not text.isascii():  # float() accepts other scripts' digits
        raise _BadValueError("not ASCII")
    try:
        number = float(text)
    except ValueError as e:
        raise _BadValueError("not a number") from e
    if not math.isfinite(number) or not 0.0 <= number <= 100.0:
        raise _BadValueError("out of range")
    return number


_PARSERS: dict[str, tuple[str, Callable[[str], object]]] = {
    SKIP: ("skip", _parse_bool),
    MAX_DELAY: ("max_delay_s", lambda v: _parse_duration(v, positive=False)),
    DEADLINE: ("deadline", _parse_time),
    EXPECTED_DURATION: ("expected_duration_s", lambda v: _parse_duration(v, positive=True)),
    WORKLOAD: ("workload", lambda v: _parse_choice(v, WORKLOADS)),
    GPU_MODEL: ("gpu_model", lambda v: _parse_pattern(v, _GPU_MODEL_PATTERN)),
    ZONE: ("zone", lambda v: _parse_pattern(v, _ZONE_PATTERN)),
    MIN_SAVINGS: ("min_savings_pct", _parse_percent),
    MODE: ("mode", lambda v: Mode(_parse_choice(v, tuple(Mode)))),
}


def parse_inputs(annotations: Mapping[str, str]) -> ParsedInputs:
    """The greenlight inputs in ``annotations`` and every error among them (never raises)."""
    raw = tuple(map(annotations.get, INPUT_KEYS))
    if _TEXT_OR_NONE.issuperset(map(type, raw)):
        # Jobs from one template carry the same few input values: parse each combination once
        # (the result is immutable and depends on nothing but the values).
        return _parse_input_values(raw)
    return _parse_input_values.__wrapped__(raw)


_TEXT_OR_NONE = frozenset({str, type(None)})


@functools.lru_cache(maxsize=512)
def _parse_input_values(raw: tuple[object, ...]) -> ParsedInputs:
    """``parse_inputs`` on the values of ``INPUT_KEYS``, in that order (None: not given)."""
    errors: list[AnnotationError] = []
    values: dict[str, object] = {}
    for key, value in zip(INPUT_KEYS, raw, strict=True):
        if value is None:
            continue
        field_name, parser = _PARSERS[key]
        if not isinstance(value, str):
            errors.append(AnnotationError(key, repr(value), ACCEPTED[key], "not a string"))
            continue
        try:
            values[field_name] = parser(value)
        except _BadValueError as e:
            errors.append(AnnotationError(key, value, ACCEPTED[key], str(e)))
    return ParsedInputs(Inputs(**values), tuple(errors))  # type: ignore[arg-type]


def unknown_keys(annotations: Mapping[str, str]) -> list[str]:
    """greenlight keys that are neither inputs nor greenlight's outputs (typos, mostly)."""
    known = set(INPUT_KEYS) | set(WEBHOOK_OUTPUT_KEYS) | set(RECONCILER_OUTPUT_KEYS)
    return sorted(k for k in annotations if k.startswith(PREFIX) and k not in known)


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, whole seconds: the form every greenlight time annotation uses."""
    if moment.tzinfo is None:  # local time: depends on the process's zone
        return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    # Formatted once per second: every decision made in the same second writes the same
    # admission time, and a memoised plan's times come back in each decision that shares it.
    return _format_epoch_second((moment - _EPOCH) // _SECOND)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@functools.lru_cache(maxsize=256)
def _format_epoch_second(second: int) -> str:
    return (_EPOCH + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


def format_number(value: float, digits: int = 1) -> str:
    """A fixed-point number, never "-0.0"."""
    rounded = round(value, digits)
    return f"{rounded + 0.0 if rounded else 0.0:.{digits}f}"


def format_energy(kwh: float) -> str:
    """A kWh figure: 0.001 kWh, or three significant digits below 0.1 kWh.

    The reconciler re-plans and accounts a deferred Job on the energy read back from its
    annotation: at a fixed 0.001 a small Job's energy would read back as zero, and its first
    re-plan would release it for saving 0 g."""
    magnitude = abs(kwh)
    if not 0.0 < magnitude < 0.1 or not math.isfinite(magnitude):
        return format_number(kwh, 3)
    return format_number(kwh, min(2 - math.floor(math.log10(magnitude)), 12))


# --- Reading back the recorded plan (the reconciler and the report) -----------------------


@dataclass(frozen=True)
class Deferral:
    """The plan the webhook recorded on a deferred Job."""

    admitted_at: datetime
    release_at: datetime
    release_by: datetime
    zone: str
    duration_s: int
    energy_kwh: float
    min_saving_pct: float | None = None
    """The minimum saving the plan used (absent on Jobs deferred before it was recorded)."""


class DeferralError(ValueError):
    """A Job marked deferred whose plan annotations are missing or unreadable."""


def parse_deferral(annotations: Mapping[str, Any]) -> Deferral:
    """The plan the webhook recorded on a deferred workload, read back from its annotations.

    Every value is read defensively (it may have been written by anyone who can create a
    Job): a missing key, a value that is not an ASCII string, a time out of range or without
    an offset, a number that is not finite or out of range is a :class:`DeferralError`
    naming the key; nothing else is ever raised."""
    return Deferral(
        admitted_at=_recorded(annotations, ADMITTED_AT, _time),
        release_at=_recorded(annotations, RELEASE_AT, _time),
        release_by=_recorded(annotations, RELEASE_BY, _time),
        zone=_recorded(annotations, PLANNED_ZONE, _zone),
        duration_s=_recorded(annotations, PLANNED_DURATION_S, _whole_seconds),
        energy_kwh=_recorded(annotations, ENERGY_KWH, _energy),
        min_saving_pct=(
            _recorded(annotations, PLANNED_MIN_SAVINGS_PCT, _percent)
            if PLANNED_MIN_SAVINGS_PCT in annotations
            else None
        ),
    )


_T = TypeVar("_T")

# The longest a recorded duration may be: ten years (a plan's numbers stay in datetime range).
MAX_RECORDED_DURATION_S = 10 * 366 * 24 * 3600
# Recorded times are RFC 3339 with an offset: at most "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM".
_MAX_TIME_LENGTH = 40
_MAX_NUMBER_LENGTH = 40


def _recorded(annotations: Mapping[str, Any], key: str, parse: Callable[[str], _T]) -> _T:
    """The value of ``key`` read with ``parse``; :class:`DeferralError` naming the key."""
    if key not in annotations:
        raise DeferralError(f"deferred Job has no {key} annotation")
    value = annotations[key]
    if not isinstance(value, str):
        raise DeferralError(f"{key}: expected a string, got {type(value).__name__}")
    if not value.isascii():
        raise DeferralError(f"{key}={_shown(value)}: not ASCII")
    try:
        return parse(value)
    except (ValueError, OverflowError, TypeError) as e:
        raise DeferralError(f"{key}={_shown(value)}: {e}") from e


def _shown(value: str) -> str:
    """A value for an error message: quoted, and cut short (it may be 256 KiB of anything)."""
    return repr(value if len(value) <= 64 else value[:61] + "...")


def _percent(value: str) -> float:
    try:
        percent = _finite(value)
    except ValueError:
        percent = math.nan
    if not 0.0 <= percent <= 100.0:
        raise ValueError("expected a number from 0 to 100")
    return percent


def _energy(value: str) -> float:
    energy = _finite(value)
    if energy < 0.0:
        raise ValueError("expected a number of kWh, 0 or more")
    return energy


def _finite(value: str) -> float:
    if len(value) > _MAX_NUMBER_LENGTH:
        raise ValueError("too long for a number")
    try:
        number = float(value)
    except ValueError as e:
        raise ValueError("not a number") from e
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _whole_seconds(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or len(text) > _MAX_NUMBER_LENGTH:
        raise ValueError("expected a whole number of seconds")
    seconds = int(text)
    if not 0 < seconds <= MAX_RECORDED_DURATION_S:
        raise ValueError(f"expected from 1 to {MAX_RECORDED_DURATION_S} seconds")
    return seconds


def _zone(value: str) -> str:
    if not _ZONE_PATTERN.fullmatch(value):
        raise ValueError("not a grid zone")
    return value


def _time(value: str) -> datetime:
    if len(value) > _MAX_TIME_LENGTH:
        raise ValueError("too long for an RFC 3339 time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("time has no UTC offset")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError as e:  # 9999-12-31T23:59:59-14:00 is after datetime.max in UTC
        raise ValueError("out of range") from e
    if not _EARLIEST_RECORDED <= moment < _LATEST_RECORDED:
        # Plans add durations and offsets to these: keep them far from datetime's limits.
        raise ValueError(f"out of range (expected a year from 1970 to {_LATEST_RECORDED.year - 1})")
    return moment


_EARLIEST_RECORDED = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_RECORDED = datetime(2200, 1, 1, tzinfo=UTC)

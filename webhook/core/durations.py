"""Go/Kubernetes-style duration strings ("24h", "90m", "1h30m", "1.5h") to and from seconds.

The grammar is Go's ``time.ParseDuration``: an optional sign, then one or more decimal numbers
each followed by a unit (``h``, ``m``, ``s``, ``ms``, ``us``/``µs``, ``ns``); ``"0"`` alone is
zero. Days are not a unit in Go, so ``"1d"`` is refused with a hint to write ``"24h"``.
Durations are returned as whole seconds (a fractional second is rounded up), which is the
resolution the planner works at.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal

ACCEPTED_FORM = "a Go duration such as '90m', '1h30m', '1.5h' or '45s' (units h, m, s, ms, us, ns)"

_UNIT_SECONDS: dict[str, Decimal] = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),  # U+00B5 micro sign
    "μs": Decimal("0.000001"),  # U+03BC greek mu
    "ns": Decimal("0.000000001"),
}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"  # ASCII only (\d is any script's digits)
_UNIT = r"(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"(?P<sign>[-+]?)(?P<body>(?:{_NUMBER}{_UNIT})+)")
_COMPONENT = re.compile(rf"({_NUMBER})({_UNIT})")


def parse_duration(value: str, *, allow_zero: bool = True, allow_negative: bool = False) -> int:
    """Seconds in ``value`` (e.g. ``"1h30m"`` -> 5400), rounded up to a whole second.

    Raises ``ValueError`` naming the value and the accepted form when it is not a Go duration,
    is zero and ``allow_zero`` is false, or is negative and ``allow_negative`` is false.
    """
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected a string, {ACCEPTED_FORM}")
    # Annotations repeat the same few durations ("24h", "57m") on every request: parse once.
    return _parse_duration(value, allow_zero, allow_negative)


@functools.lru_cache(maxsize=1024)
def _parse_duration(value: str, allow_zero: bool, allow_negative: bool) -> int:
    text = value.strip()
    if text in ("0", "+0", "-0"):
        seconds = Decimal(0)
    else:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise ValueError(f"invalid duration {value!r}: expected {ACCEPTED_FORM}{_hint(text)}")
        seconds = sum(
            (
                Decimal(number) * _UNIT_SECONDS[unit]
                for number, unit in _COMPONENT.findall(match["body"])
            ),
            Decimal(0),
        )
        if match["sign"] == "-":
            seconds = -seconds
    if seconds < 0 and not allow_negative:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"invalid duration {value!r}: must be longer than zero")
    return math.ceil(seconds)


def _hint(text: str) -> str:
    if re.fullmatch(r"[-+]?\d+(?:\.\d*)?", text):
        return f"; a unit is required, e.g. '{text}s' or '{text}m'"
    if re.fullmatch(rf"[-+]?(?:{_NUMBER}[a-zµμ]+)+", text) and re.search(r"\dd", text):
        return "; days are not a unit, write hours instead (e.g. '24h')"
    return ""


def format_duration(seconds: float) -> str:
    """The shortest Go duration for ``seconds``, whole components only: 5400 -> ``"1h30m"``,
    3605 -> ``"1h5s"``, 0 -> ``"0s"``. A fractional second is kept as decimals (``"1.5s"``)."""
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a non-finite duration ({seconds})")
    sign = "-" if seconds < 0 else ""
    remaining = Decimal(str(abs(seconds)))
    if remaining == 0:
        return "0s"
    hours, remaining = divmod(remaining, 3600)
    minutes, remaining = divmod(remaining, 60)
    parts = []
    if hours:
        parts.append(f"{int(hours)}h")
    if minutes:
        parts.append(f"{int(minutes)}m")
    if remaining:
        parts.append(f"{remaining.normalize():f}s")
    return sign + "".join(parts)

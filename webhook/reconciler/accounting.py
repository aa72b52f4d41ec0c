"""What a deferred Job really emitted, and what waiting saved (pure).

Energy: the estimate made at admission is a power draw over the planned duration
(``energy-kwh / planned-duration-s``); the real run used that power for the real run time
(``status.startTime`` — reset when a suspended Job is resumed — to its completion or failure).

Intensity: the mean observed carbon intensity over the real run window, from the intensity
history the reconciler records per zone. Where no observation covers the window (every provider
down for the whole run), the intensity the plan expected for its window is used instead, and
the result says so (``basis``).

Saving: the same run (same energy, same length) started at admission, at the intensity observed
over ``[admitted-at, admitted-at + run time)`` (or, unobserved, the intensity the webhook saw at
admission), minus what the run really emitted. It can be negative: a forecast that was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from webhook.core.annotations import Deferral
from webhook.core.series import StepSeries, to_epoch

Basis = Literal["observed", "planned"]


class AccountingError(ValueError):
    """Not enough to account a run: no observation and no planned intensity to fall back on."""


@dataclass(frozen=True)
class Accounting:
    """The real run, its emissions, and those of the same run at admission time."""

    run_s: float
    energy_kwh: float
    intensity_g_per_kwh: float
    emissions_g: float
    basis: Basis
    intensity_at_admission_g_per_kwh: float
    emissions_at_admission_g: float
    admission_basis: Basis

    @property
    def savings_g(self) -> float:
        return self.emissions_at_admission_g - self.emissions_g


def _mean_intensity(
    observed: StepSeries | None, start: float, end: float, fallback: float | None, what: str
) -> tuple[float, Basis]:
    if observed is not None and observed.covers(start, max(end, start + 1)):
        return observed.mean(start, end), "observed"
    if fallback is None:
        raise AccountingError(f"no observed intensity covers {what} and the plan names none")
    return fallback, "planned"


def account(
    deferral: Deferral,
    *,
    started_at: datetime,
    finished_at: datetime,
    observed: StepSeries | None,
    intensity_planned_g_per_kwh: float | None,
    intensity_at_admission_g_per_kwh: float | None,
) -> Accounting:
    """Account one finished run (see the module docstring)."""
    start = to_epoch(started_at)
    end = max(to_epoch(finished_at), start)
    run_s = float(end - start)
    energy_kwh = deferral.energy_kwh * run_s / deferral.duration_s
    intensity, basis = _mean_intensity(
        observed, start, end, intensity_planned_g_per_kwh, "the run window"
    )
    admitted = to_epoch(deferral.admitted_at)
    counterfactual, admission_basis = _mean_intensity(
        observed,
        admitted,
        admitted + run_s,
        intensity_at_admission_g_per_kwh,
        "the window at admission",
    )
    return Accounting(
        run_s=run_s,
        energy_kwh=energy_kwh,
        intensity_g_per_kwh=intensity,
        emissions_g=energy_kwh * intensity,
        basis=basis,
        intensity_at_admission_g_per_kwh=counterfactual,
        emissions_at_admission_g=energy_kwh * counterfactual,
        admission_basis=admission_basis,
    )

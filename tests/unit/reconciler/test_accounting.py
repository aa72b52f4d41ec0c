from __future__ import annotations

import pytest
from builders import T0, at

from webhook.core.annotations import Deferral
from webhook.core.series import StepSeries, to_epoch
from webhook.reconciler.accounting import AccountingError, account

HOUR = 3600
PLAN = Deferral(
    admitted_at=T0,
    release_at=at(6 * HOUR),
    release_by=at(20 * HOUR),
    zone="DE",
    duration_s=2 * HOUR,
    energy_kwh=4.0,
)
# 400 g/kWh for six hours from T0, then 100.
OBSERVED = StepSeries.regular(to_epoch(T0), 6 * HOUR, [400.0, 100.0])


@pytest.mark.parametrize(
    ("start_h", "end_h", "energy", "emissions", "at_admission"),
    [
        pytest.param(6, 8, 4.0, 400.0, 1600.0, id="ran-as-planned"),
        pytest.param(6, 7, 2.0, 200.0, 800.0, id="ran-half-as-long"),
        pytest.param(6, 10, 8.0, 800.0, 3200.0, id="ran-twice-as-long"),
        pytest.param(5, 7, 4.0, 1000.0, 1600.0, id="released-an-hour-early"),
    ],
)
def test_energy_follows_the_real_run_time_and_intensity_the_real_window(
    start_h: float, end_h: float, energy: float, emissions: float, at_admission: float
) -> None:
    result = account(
        PLAN,
        started_at=at(start_h * HOUR),
        finished_at=at(end_h * HOUR),
        observed=OBSERVED,
        intensity_planned_g_per_kwh=100.0,
        intensity_at_admission_g_per_kwh=400.0,
    )
    assert result.energy_kwh == pytest.approx(energy)
    assert result.emissions_g == pytest.approx(emissions)
    assert result.emissions_at_admission_g == pytest.approx(at_admission)
    assert result.savings_g == pytest.approx(at_admission - emissions)
    assert (result.basis, result.admission_basis) == ("observed", "observed")


def test_a_saving_can_be_negative_when_the_forecast_was_wrong() -> None:
    dirtier_later = StepSeries.regular(to_epoch(T0), 6 * HOUR, [100.0, 400.0])
    result = account(
        PLAN,
        started_at=at(6 * HOUR),
        finished_at=at(8 * HOUR),
        observed=dirtier_later,
        intensity_planned_g_per_kwh=50.0,
        intensity_at_admission_g_per_kwh=400.0,
    )
    assert result.savings_g == pytest.approx(400.0 - 1600.0)


def test_unobserved_windows_fall_back_to_the_plans_intensities_and_say_so() -> None:
    result = account(
        PLAN,
        started_at=at(30 * HOUR),
        finished_at=at(32 * HOUR),
        observed=OBSERVED,
        intensity_planned_g_per_kwh=120.0,
        intensity_at_admission_g_per_kwh=None,
    )
    assert result.basis == "planned"
    assert result.intensity_g_per_kwh == 120.0
    assert result.admission_basis == "observed"
    with pytest.raises(AccountingError, match="run window"):
        account(
            PLAN,
            started_at=at(30 * HOUR),
            finished_at=at(32 * HOUR),
            observed=None,
            intensity_planned_g_per_kwh=None,
            intensity_at_admission_g_per_kwh=400.0,
        )


def test_a_run_that_ends_before_it_starts_counts_as_zero_length() -> None:
    result = account(
        PLAN,
        started_at=at(7 * HOUR),
        finished_at=at(6 * HOUR),
        observed=OBSERVED,
        intensity_planned_g_per_kwh=100.0,
        intensity_at_admission_g_per_kwh=400.0,
    )
    assert (result.run_s, result.energy_kwh, result.emissions_g) == (0.0, 0.0, 0.0)

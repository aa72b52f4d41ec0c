"""The annotation contract, end to end: what the webhook writes is what its readers read.

For random plans (forecast, arrival, duration, energy, minimum saving, prices, provider and
source) a real AdmissionRequest for a Job goes through the real :func:`judge`; its JSONPatch is
applied with ``jsonpatch``, as the apiserver would; then the reconciler's readers (``track``,
``read_deferral``) and the report's (``job_row``) read the stored Job back. Every field must
come back as the plan had it, exactly where the annotation is exact (times at whole seconds,
zone, duration, minimum saving, provider, source) and to the annotation's stated precision where
it is a rounded figure (energy 0.001 kWh, intensities/emissions/savings 0.1, costs 0.0001 USD).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reviews import body, job, review

from webhook.admission.mutate import Judgement, MutationContext, judge
from webhook.admission.review import decode_review
from webhook.config.settings import Settings
from webhook.core import annotations as keys
from webhook.core.annotations import Decision, Inputs, format_energy, format_number
from webhook.core.cost import FlatPrice
from webhook.core.energy import load_catalog
from webhook.core.forecast import ForecastResult, SourceKind
from webhook.core.series import StepSeries, to_epoch
from webhook.reconciler.decide import track
from webhook.reconciler.report import job_row
from webhook.workloads.ownership import read_deferral

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
HOUR = 3600
SETTINGS = Settings()
CATALOG = load_catalog(SETTINGS.energy)
SOURCES: tuple[SourceKind, ...] = ("provider", "stale-cache", "history")

# Half a unit of each rounded annotation's last digit (format_number's precision); energy is
# written to 0.001 kWh, or to three significant digits below 0.1 kWh (format_energy).
# Half a unit of the annotation's last digit, plus a hair for the binary representation of
# the decimal text (0.75 renders "0.8", and 0.8 - 0.75 is 0.05000000000000004 in floats).
_HAIR = 1e-9
ENERGY_PRECISION = 0.0005 + _HAIR
ENERGY_RELATIVE_PRECISION = 0.005 + _HAIR
FIGURE_PRECISION = 0.05 + _HAIR
COST_PRECISION = 0.00005 + _HAIR


class OneForecast:
    """A forecast held in memory, the same for every zone."""

    def __init__(self, result: ForecastResult) -> None:
        self.result = result

    def snapshot(self, zone: str, now: float | None = None) -> ForecastResult:
        return ForecastResult(
            zone,
            self.result.provider,
            self.result.source,
            self.result.series,
            self.result.age_s,
            self.result.estimated,
            self.result.reason,
        )


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    start = T0 - timedelta(hours=1)
    hours = draw(st.integers(min_value=30, max_value=72))
    values = draw(
        st.lists(
            st.floats(min_value=0.0, max_value=900.0, allow_nan=False),
            min_size=hours,
            max_size=hours,
        )
    )
    return {
        "series": StepSeries.regular(to_epoch(start), HOUR, values),
        # anywhere in the first forecast hour, with a fraction of a second
        "now": T0 + timedelta(microseconds=draw(st.integers(0, HOUR * 1_000_000 - 1))),
        "duration_min": draw(st.integers(min_value=1, max_value=8 * 60)),
        "max_delay_h": draw(st.integers(min_value=1, max_value=24)),
        "min_savings": draw(
            st.one_of(st.none(), st.floats(min_value=0.0, max_value=60.0, allow_nan=False))
        ),
        "gpus": draw(st.integers(min_value=0, max_value=8)),
        # from a sidecar-sized Job (a few microwatt-hours) to a node-sized one
        "cpu_millis": draw(st.integers(min_value=10, max_value=64_000)),
        "memory_mi": draw(st.integers(min_value=16, max_value=512 * 1024)),
        "price": draw(
            st.one_of(st.none(), st.floats(min_value=0.0, max_value=2.0, allow_nan=False))
        ),
        "provider": draw(
            st.sampled_from(["replay", "electricitymaps", "watttime", "carbon-aware"])
        ),
        "source": draw(st.sampled_from(SOURCES)),
        "age_s": draw(st.floats(min_value=0.0, max_value=3000.0, allow_nan=False)),
        "zone": draw(st.sampled_from(["DE", "US-CAL-CISO", "GB", "FR"])),
    }


def _judged(plan: dict[str, Any]) -> tuple[Judgement, dict[str, Any]]:
    """The judgement on a Job built from ``plan`` and the Job as the apiserver stores it."""
    annotations = {
        keys.EXPECTED_DURATION: f"{plan['duration_min']}m",
        keys.MAX_DELAY: f"{plan['max_delay_h']}h",
        keys.ZONE: plan["zone"],
    }
    if plan["min_savings"] is not None:
        annotations[keys.MIN_SAVINGS] = repr(plan["min_savings"])
    obj = job(annotations=annotations, gpus=plan["gpus"])
    resources = obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    resources["requests"].update(cpu=f"{plan['cpu_millis']}m", memory=f"{plan['memory_mi']}Mi")
    resources["limits"]["memory"] = f"{plan['memory_mi']}Mi"
    request = decode_review(body(review(obj)))
    forecast = ForecastResult(
        plan["zone"], plan["provider"], plan["source"], plan["series"], plan["age_s"], False, None
    )
    context = MutationContext(
        settings=SETTINGS,
        catalog=CATALOG,
        prices=FlatPrice(plan["price"]) if plan["price"] is not None else None,
        forecasts=OneForecast(forecast),
        namespace_defaults=lambda namespace: Inputs(),
    )
    judgement = judge(request, context, plan["now"])
    assert judgement.response.allowed
    stored: dict[str, Any] = jsonpatch.apply_patch(
        request.object, list(judgement.response.patch), in_place=False
    )
    # What the apiserver adds on create, which the reconciler reads too.
    stored["metadata"].update(uid="uid-roundtrip", resourceVersion="1")
    return judgement, stored


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _energy_precision(kwh: float) -> float:
    return ENERGY_PRECISION if kwh >= 0.1 else ENERGY_RELATIVE_PRECISION * kwh


@settings(max_examples=150)
@given(plan=plans())
def test_every_annotation_the_webhook_writes_reads_back_the_same(plan: dict[str, Any]) -> None:
    judgement, stored = _judged(plan)
    result = judgement.plan
    assert judgement.decision in (Decision.DEFERRED, Decision.RUN_NOW)
    assert result is not None
    assert judgement.energy_kwh is not None
    energy_kwh = judgement.energy_kwh
    annotations = stored["metadata"]["annotations"]
    deferred = judgement.decision == Decision.DEFERRED
    assert stored["spec"].get("suspend", False) is deferred

    # Recorded as made, and nowhere read back as a number: compared as written.
    assert annotations[keys.PROVIDER] == plan["provider"]
    assert annotations[keys.FORECAST_SOURCE] == plan["source"]
    assert annotations[keys.FORECAST_AGE_S] == str(round(plan["age_s"]))
    assert annotations[keys.DECISION] == judgement.decision.value
    assert annotations[keys.REASON_CODE] == judgement.code

    # The report, for every decision.
    row = job_row(stored)
    assert row is not None
    assert (row.namespace, row.name) == ("ml", "train")
    assert row.decision == judgement.decision.value
    assert row.reason_code == judgement.code
    assert row.admitted_at == _whole_second(plan["now"])
    assert row.released_at is None
    assert row.delay_s is None
    assert row.actual_emissions_g is None
    assert row.actual_savings_g is None
    has_cost = result.cost_now_usd is not None and result.cost_planned_usd is not None
    if deferred:
        assert row.estimated_emissions_g == pytest.approx(
            result.emissions_planned_g, abs=FIGURE_PRECISION
        )
        assert row.estimated_savings_g == pytest.approx(result.savings_g, abs=FIGURE_PRECISION)
        if has_cost:
            assert result.cost_now_usd is not None
            assert result.cost_planned_usd is not None
            assert row.cost_usd == pytest.approx(result.cost_planned_usd, abs=COST_PRECISION)
            assert row.cost_savings_usd == pytest.approx(
                result.cost_now_usd - result.cost_planned_usd, abs=2 * COST_PRECISION
            )
        else:
            assert row.cost_usd is None
            assert row.cost_savings_usd is None
    else:
        assert row.estimated_emissions_g == pytest.approx(
            result.emissions_now_g, abs=FIGURE_PRECISION
        )
        assert row.estimated_savings_g == 0.0
        # a plan that runs now writes no cost annotations
        assert row.cost_usd is None
        assert row.cost_savings_usd is None

    # The reconciler, for the Jobs it owns.
    tracked = track(stored)
    if not deferred:
        assert tracked is None
        return
    assert tracked is not None
    assert tracked.deferral_error is None
    assert (tracked.uid, tracked.namespace, tracked.name) == ("uid-roundtrip", "ml", "train")
    assert tracked.resource_version == "1"
    assert tracked.waiting
    assert not tracked.skip
    assert not tracked.accounted
    assert tracked.released_at is None
    assert tracked.replan_count == 0
    assert tracked.min_savings_pct == plan["min_savings"]
    assert tracked.intensity_now_g_per_kwh == pytest.approx(
        result.intensity_now_g_per_kwh, abs=FIGURE_PRECISION
    )
    assert tracked.intensity_planned_g_per_kwh == pytest.approx(
        result.intensity_planned_g_per_kwh, abs=FIGURE_PRECISION
    )
    assert tracked.savings_g == pytest.approx(result.savings_g, abs=FIGURE_PRECISION)
    assert tracked.savings_pct == pytest.approx(result.savings_pct, abs=FIGURE_PRECISION)

    deferral = read_deferral(stored)
    assert tracked.deferral == deferral
    assert deferral.admitted_at == _whole_second(plan["now"])
    assert deferral.release_at == result.start
    assert deferral.release_by == result.latest_start
    assert deferral.zone == plan["zone"]
    assert deferral.duration_s == plan["duration_min"] * 60
    assert deferral.energy_kwh == pytest.approx(energy_kwh, abs=_energy_precision(energy_kwh))
    # Exact: the reconciler's re-plans must use the very threshold admission used.
    expected_min = plan["min_savings"]
    if expected_min is None:
        expected_min = SETTINGS.planner.min_saving_pct
    assert deferral.min_saving_pct == expected_min


def test_a_small_jobs_energy_reads_back_as_itself_not_zero() -> None:
    """A 10m-CPU, 16 MiB, one-minute Job uses a few microwatt-hours: at a fixed 0.001 kWh it
    read back as 0, and the reconciler's first re-plan released it for saving 0 g."""
    plan = {
        "series": StepSeries.regular(to_epoch(T0) - HOUR, HOUR, [800.0] * 3 + [10.0] * 40),
        "now": T0,
        "duration_min": 1,
        "max_delay_h": 12,
        "min_savings": None,
        "gpus": 0,
        "cpu_millis": 10,
        "memory_mi": 16,
        "price": None,
        "provider": "replay",
        "source": "provider",
        "age_s": 0.0,
        "zone": "DE",
    }
    judgement, stored = _judged(plan)
    assert judgement.decision == Decision.DEFERRED
    assert judgement.energy_kwh is not None
    assert judgement.energy_kwh < 0.0005
    assert read_deferral(stored).energy_kwh == pytest.approx(
        judgement.energy_kwh, rel=ENERGY_RELATIVE_PRECISION
    )


@pytest.mark.parametrize(
    ("kwh", "text"),
    [
        pytest.param(10.7394, "10.739", id="large-at-0.001"),
        pytest.param(0.1, "0.100", id="at-the-bound"),
        pytest.param(0.0677293, "0.0677", id="below-the-bound"),
        pytest.param(3.3245833e-06, "0.00000332", id="microwatt-hours"),
        pytest.param(0.0, "0.000", id="zero"),
    ],
)
def test_energy_is_written_to_three_significant_digits_below_a_tenth(kwh: float, text: str) -> None:
    assert format_energy(kwh) == text


@pytest.mark.parametrize(
    ("value", "digits"),
    [
        pytest.param(0.04999, 1, id="below-half-a-unit"),
        pytest.param(123.45, 1, id="a-binary-half"),
        pytest.param(-0.04, 1, id="negative-zero"),
        pytest.param(0.00049, 3, id="tiny-energy"),
        pytest.param(1e9 + 0.123456, 4, id="large-cost"),
    ],
)
def test_a_rounded_figure_reads_back_within_half_a_unit_of_its_last_digit(
    value: float, digits: int
) -> None:
    text = format_number(value, digits)
    assert not text.startswith("-0.")
    assert abs(float(text) - value) <= 0.5 * 10**-digits + 1e-9 * abs(value)

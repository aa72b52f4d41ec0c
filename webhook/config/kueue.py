"""The Kueue AdmissionCheck section (``GREENLIGHT_KUEUE__*``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from webhook.core.durations import parse_duration

CONTROLLER_NAME = "greenlight.dev/carbon"
"""The ``spec.controllerName`` of the AdmissionChecks greenlight answers for."""


def _seconds(value: Any) -> Any:
    """Durations may be written as "5m" as well as a number of seconds."""
    if isinstance(value, str) and not value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        return parse_duration(value)
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]


class KueueSettings(BaseModel):
    """greenlight as a Kueue AdmissionCheck: the reconciler holds each Kueue Workload whose
    ClusterQueue names an AdmissionCheck with controllerName greenlight.dev/carbon until its
    cleanest window, and never past its latest start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    admission_check_enabled: bool = Field(
        default=False,
        description="Run the AdmissionCheck controller in the (leading) reconciler. Needs "
        "Kueue's CRDs; the Workload API version (v1beta2, else v1beta1) is discovered.",
    )
    recheck_s: Seconds = Field(
        default=60.0,
        gt=0,
        description="How often a Workload held without a usable forecast (its zone's forecast "
        "not loaded yet, or every provider down) is looked at again; it is admitted at its "
        "latest start whatever the forecast.",
    )
    relist_s: Seconds = Field(
        default=300.0,
        gt=0,
        description="How long one watch of Workloads and AdmissionChecks runs before it is "
        "renewed (a relist re-judges every Workload).",
    )

"""greenlight's one settings object: environment ``GREENLIGHT_*`` (nested with ``__``), composed
of the sections each module declares. Built in ``main()``/``create_app()`` and injected; never
created at import time.

Examples: ``GREENLIGHT_WEBHOOK__MAX_DELAY_S=12h``, ``GREENLIGHT_WEBHOOK__MODE=observe``,
``GREENLIGHT_PLANNER__MIN_SAVING_PCT=10``, ``GREENLIGHT_SERVER__PORT=9443``,
``GREENLIGHT_ENERGY__PUE=1.2``. The provider section keeps the provider
layer's own documented names (``GREENLIGHT_PROVIDER=electricitymaps``,
``GREENLIGHT_ELECTRICITYMAPS_API_KEY``...): :func:`load_settings` reads it that way. The global
default workload and GPU model are ``energy.default_workload``/``energy.default_gpu_model``;
the default minimum saving is ``planner.min_saving_pct``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from webhook.carbon.config import ProviderSettings, load_provider_settings
from webhook.config.kueue import KueueSettings
from webhook.config.reconciler import ReconcilerSettings
from webhook.config.workloads import WorkloadSettings
from webhook.core.annotations import Mode
from webhook.core.cost import CostSettings
from webhook.core.durations import parse_duration
from webhook.core.energy import EnergySettings
from webhook.core.planner import PlannerSettings
from webhook.core.provenance import SigningKeys, load_keys


def _seconds(value: Any) -> Any:
    """Durations in settings may be written as "24h" as well as a number of seconds."""
    if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
        return parse_duration(value)
    return value


Seconds = Annotated[int, BeforeValidator(_seconds)]

DEFAULT_SERVICE_ACCOUNT = "system:serviceaccount:greenlight:greenlight"


class ServerSettings(BaseModel):
    """Where and how the webhook serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="0.0.0.0", description="Address the HTTPS server binds.")  # noqa: S104
    port: int = Field(default=8443, ge=1, le=65535, description="HTTPS port.")
    cert_dir: Path = Field(
        default=Path("~/.cache/greenlight/certs"),
        description="Directory with tls.crt and tls.key (a mounted Secret in a cluster); "
        "rotated files are picked up without a restart. When absent, a self-signed set is "
        "generated there.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve /metrics over plain HTTP on this port (None: HTTPS port only).",
    )
    service: str = Field(
        default="greenlight-webhook",
        description="Service name, for the SANs of a generated certificate.",
    )
    namespace: str = Field(
        default="greenlight",
        description="greenlight's namespace: never judged, and part of the generated SANs.",
    )


class WebhookSettings(BaseModel):
    """Global defaults of the Job inputs and the admission rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_delay_s: Seconds = Field(
        default=24 * 3600,
        ge=0,
        description="Default greenlight.dev/max-delay: how long a Job may wait (e.g. 24h).",
    )
    expected_duration_s: Seconds = Field(
        default=3600,
        gt=0,
        description="Default greenlight.dev/expected-duration when a Job names none.",
    )
    zone: str = Field(default="DE", description="Default greenlight.dev/zone (grid zone).")
    mode: Mode = Field(
        default=Mode.DEFER,
        description="Default greenlight.dev/mode: defer, or observe (annotate, never suspend).",
    )
    forecast_max_age_s: Seconds = Field(
        default=6 * 3600,
        gt=0,
        description="Forecast data older than this is not planned on: the Job runs now.",
    )
    min_wait_s: Seconds = Field(
        default=60,
        ge=0,
        description="A latest start less than this after admission leaves no room to wait.",
    )
    trusted_usernames: tuple[str, ...] = Field(
        default=(DEFAULT_SERVICE_ACCOUNT,),
        description="userInfo.username values allowed to change greenlight's output "
        "annotations (greenlight's own service accounts).",
    )
    excluded_namespaces: tuple[str, ...] = Field(
        default=("kube-system",),
        description="Namespaces never judged, on top of greenlight's own namespace (the "
        "webhook configuration's namespaceSelector should exclude them too).",
    )
    forecast_refresh_s: Seconds = Field(
        default=600,
        gt=0,
        description="How often the background refresher renews the forecast of each zone in use.",
    )
    on_demand_fetch_timeout_s: float = Field(
        default=2.0,
        ge=0,
        le=25,
        description="How long admission waits for the forecast of a zone not fetched yet "
        "(the first Job in it), fetched on demand; past it the Job runs now, saying so. Keep it "
        "well inside the webhook's timeoutSeconds; 0 = never wait.",
    )


class ProvenanceSettings(BaseModel):
    """The key that proves greenlight wrote a Job's decision (webhook.core.provenance)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys_file: Path | None = Field(
        default=None,
        description="File with the HMAC signing keys, one a line (a mounted Secret): the "
        "webhook signs each decision with the first, the reconciler acts only on Jobs whose "
        "signature one of them verifies, and the validating webhook refuses greenlight "
        "annotations without one. Unset: nothing is signed or checked, and anyone who can "
        "create a Job can forge a deferral (docs/security.md).",
    )


class Settings(BaseSettings):
    """All of greenlight's settings, from ``GREENLIGHT_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="GREENLIGHT_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    providers: ProviderSettings = Field(default_factory=ProviderSettings)
    reconciler: ReconcilerSettings = Field(default_factory=ReconcilerSettings)
    provenance: ProvenanceSettings = Field(default_factory=ProvenanceSettings)
    kueue: KueueSettings = Field(default_factory=KueueSettings)
    workloads: WorkloadSettings = Field(default_factory=WorkloadSettings)


def load_signing_keys(settings: Settings) -> SigningKeys | None:
    """The signing keys the settings name (None: none configured); ``KeyFileError`` names
    a missing or bad file."""
    path = settings.provenance.keys_file
    return None if path is None else load_keys(path.expanduser())


def load_settings() -> Settings:
    """Settings from the environment; the provider section from its own variable names."""
    return Settings().model_copy(update={"providers": load_provider_settings()})

"""Provider settings from GREENLIGHT_* variables, and building each provider."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from webhook.carbon.base import PROVIDER_NAMES, ProviderConfigError, ProviderName
from webhook.carbon.config import ProviderSettings, load_provider_settings
from webhook.carbon.registry import PROVIDERS, build_forecast_source, build_provider


def test_documented_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENLIGHT_PROVIDER", "electricitymaps")
    monkeypatch.setenv("GREENLIGHT_ELECTRICITYMAPS_API_KEY", "k-123")
    monkeypatch.setenv("GREENLIGHT_ELECTRICITYMAPS_BASE_URL", "http://mirror/v3")
    monkeypatch.setenv("GREENLIGHT_WATTTIME_USERNAME", "alice")
    monkeypatch.setenv("GREENLIGHT_WATTTIME_PASSWORD", "pw")
    monkeypatch.setenv("GREENLIGHT_CACHE_TTL_S", "120")
    monkeypatch.setenv("GREENLIGHT_HTTP_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("GREENLIGHT_ZONES", '{"dc-1": "DE"}')
    monkeypatch.setenv("GREENLIGHT_ELECTRICITYMAPS_EMISSION_FACTOR_TYPE", "direct")
    monkeypatch.setenv("GREENLIGHT_REPLAY_FILES", '{"FR": "/data/FR.csv"}')
    monkeypatch.setenv("GREENLIGHT_REPLAY_EMBEDDED", "false")
    monkeypatch.setenv("GREENLIGHT_HTTP_CONNECT_TIMEOUT_S", "1.5")
    monkeypatch.setenv("GREENLIGHT_CACHE_MAX_STALENESS_S", "7200")
    monkeypatch.setenv("GREENLIGHT_FORECAST_HORIZON_S", "172800")
    monkeypatch.setenv("GREENLIGHT_WEBHOOK__MODE", "observe")  # another section's: ignored
    settings = load_provider_settings()
    assert type(settings) is ProviderSettings
    assert settings.provider == "electricitymaps"
    assert settings.electricitymaps.api_key is not None
    assert settings.electricitymaps.api_key.get_secret_value() == "k-123"
    assert settings.electricitymaps.base_url == "http://mirror/v3"
    assert settings.watttime.username == "alice"
    assert settings.cache.ttl_s == 120
    assert settings.http.max_attempts == 5
    assert settings.zone_map().resolve("dc-1") == "DE"
    assert settings.electricitymaps.emission_factor_type == "direct"
    assert settings.replay.files == {"FR": Path("/data/FR.csv")}
    assert settings.replay.embedded is False
    assert settings.http.connect_timeout_s == 1.5
    assert settings.cache.max_staleness_s == 7200
    assert settings.forecast.horizon_s == 172800
    assert "k-123" not in repr(settings)


def test_defaults_are_the_offline_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GREENLIGHT_PROVIDER", "GREENLIGHT_ELECTRICITYMAPS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = load_provider_settings()
    assert settings.provider == "replay"
    assert settings.electricitymaps.base_url == "https://api.electricitymaps.com/v3"
    assert settings.electricitymaps.emission_factor_type == "lifecycle"


@pytest.mark.parametrize("name", ["replay", "ukci", "carbonaware"])
async def test_keyless_providers_build_from_defaults(name: ProviderName) -> None:
    provider = build_provider(ProviderSettings(), name)
    assert provider.name == name
    await provider.aclose()


@pytest.mark.parametrize("name", ["electricitymaps", "watttime"])
def test_keyed_providers_without_credentials_are_configuration_errors(
    name: ProviderName,
) -> None:
    with pytest.raises(ProviderConfigError, match="GREENLIGHT_"):
        build_provider(ProviderSettings(), name)


def test_every_provider_name_is_buildable() -> None:
    settings = ProviderSettings.model_validate(
        {"electricitymaps": {"api_key": "k"}, "watttime": {"username": "u", "password": "p"}}
    )
    assert [build_provider(settings, name).name for name in PROVIDER_NAMES] == list(PROVIDER_NAMES)


async def test_the_forecast_source_uses_the_configured_provider() -> None:
    source = build_forecast_source(ProviderSettings())
    assert source.provider.name == "replay"
    await source.refresh("DE")
    assert source.snapshot("DE").source == "provider"
    await source.aclose()


def test_the_registry_the_names_and_the_settings_sections_agree() -> None:
    assert set(PROVIDERS) == set(PROVIDER_NAMES) == set(get_args(ProviderName))
    sections = set(ProviderSettings.model_fields)
    assert set(PROVIDER_NAMES) <= sections, "each provider needs its settings section"

"""How `greenlight serve` wires the webhook app (without a cluster)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from webhook.admission.tls import ReloadingTLS
from webhook.cli import reconcile, serve
from webhook.cli.reconcile import InProcess
from webhook.config.settings import load_settings


async def _idle() -> None:
    return None


class _Source:
    """Stands in for the reconciler's ForecastSource: only its identity matters here."""


def test_with_reconciler_the_webhook_shares_the_reconcilers_forecast_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _Source()
    seen: dict[str, Any] = {}

    def fake_in_process(*_: object) -> InProcess:
        return InProcess(_idle, source)  # type: ignore[arg-type]

    def fake_create_app(settings: object, **kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    monkeypatch.setattr(reconcile, "in_process", fake_in_process)
    monkeypatch.setattr("webhook.admission.server.create_app", fake_create_app)
    tls = cast(ReloadingTLS, object())  # passed through untouched

    serve.build_app(load_settings(), tls, None, with_reconciler=True)
    assert seen["forecasts"] is source
    assert _idle in seen["background"]

    seen.clear()
    serve.build_app(load_settings(), tls, None, with_reconciler=False)
    assert seen["forecasts"] is None  # the app builds its own
    assert _idle not in seen["background"]

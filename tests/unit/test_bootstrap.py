"""Self-managed certificates: what the Secret should hold, and the caBundle patch (pure parts).
The cluster side runs against the real apiserver in tests/e2e/test_chart_on_apiserver.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store

from webhook.admission import certs
from webhook.admission.bootstrap import (
    BootstrapSettings,
    CertificatePlan,
    ca_bundle_patch,
    mounted_matches,
    plan_certificates,
    sans_of,
    split_pem_certificates,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = BootstrapSettings(
    namespace="greenlight",
    secret="greenlight-webhook-tls",
    service="greenlight-webhook",
    webhook_configuration="greenlight",
)
NAMES = SETTINGS.dns_names()


def plan(
    current: dict[str, bytes] | None, now: datetime = NOW, sans: str | None = sans_of(NAMES)
) -> CertificatePlan:
    return plan_certificates(current, dns_names=NAMES, now=now, current_sans=sans)


def verifies(plan: CertificatePlan, name: str, at: datetime) -> bool:
    """The serving certificate chains to the trust bundle for ``name`` at ``at``."""
    roots = [x509.load_pem_x509_certificate(c) for c in split_pem_certificates(plan.ca_bundle_pem)]
    verifier = PolicyBuilder().store(Store(roots)).time(at).build_server_verifier(DNSName(name))
    leaf = x509.load_pem_x509_certificate(plan.data[certs.TLS_CERT_FILE])
    verifier.verify(leaf, [])
    return True


def test_empty_secret_gets_a_ca_and_a_serving_certificate_for_the_service() -> None:
    result = plan({})
    assert result.changed
    assert result.why == "no certificates yet"
    assert set(result.data) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert verifies(result, "greenlight-webhook.greenlight.svc", NOW)
    assert len(split_pem_certificates(result.ca_bundle_pem)) == 1


def test_valid_certificates_are_kept_as_they_are() -> None:
    first = plan(None)
    again = plan(first.data, NOW + timedelta(days=100))
    assert not again.changed
    assert again.data == first.data


@pytest.mark.parametrize(
    ("later", "sans", "why"),
    [
        pytest.param(timedelta(days=340), sans_of(NAMES), "nears expiry", id="serving-expiring"),
        pytest.param(timedelta(days=1), "old-name,old-name.greenlight", "names changed", id="sans"),
        pytest.param(timedelta(days=1), None, "names changed", id="sans-unknown"),
    ],
)
def test_serving_certificate_is_renewed_under_the_same_ca(
    later: timedelta, sans: str | None, why: str
) -> None:
    first = plan(None)
    renewed = plan(first.data, NOW + later, sans)
    assert renewed.changed
    assert why in renewed.why
    assert renewed.data["ca.crt"] == first.data["ca.crt"], "the registered caBundle stays valid"
    assert renewed.data["ca.key"] == first.data["ca.key"]
    assert renewed.data["tls.crt"] != first.data["tls.crt"]
    assert verifies(renewed, "greenlight-webhook.greenlight.svc.cluster.local", NOW + later)


def test_ca_near_expiry_is_replaced_and_the_old_ca_stays_trusted() -> None:
    first = plan(None)  # CA valid 3650 days; a 365-day certificate must fit in it
    later = NOW + timedelta(days=3650 - 200)
    rotated = plan(first.data, later)
    assert rotated.changed
    assert rotated.why == "the CA nears expiry"
    bundle = split_pem_certificates(rotated.ca_bundle_pem)
    assert len(bundle) == 2
    assert bundle[1] == first.data["ca.crt"], "the previous CA is trusted while it is valid"
    assert rotated.data["ca.key"] != first.data["ca.key"]
    assert verifies(rotated, "greenlight-webhook", later)


def test_expired_ca_is_dropped_from_the_bundle() -> None:
    first = plan(None)
    rotated = plan(first.data, NOW + timedelta(days=3700))
    assert len(split_pem_certificates(rotated.ca_bundle_pem)) == 1


def test_incomplete_secret_is_regenerated() -> None:
    first = plan(None)
    partial = {k: v for k, v in first.data.items() if k != "ca.key"}
    result = plan(partial)
    assert result.changed
    assert result.data["ca.key"] != first.data["ca.key"]


def webhooks(*bundles: str | None) -> dict[str, Any]:
    return {
        "webhooks": [
            {
                "name": f"hook{i}.greenlight.dev",
                "clientConfig": {} if b is None else {"caBundle": b},
            }
            for i, b in enumerate(bundles)
        ]
    }


@pytest.mark.parametrize(
    ("configuration", "expected"),
    [
        pytest.param({}, [], id="no-webhooks"),
        pytest.param(webhooks("QQ=="), [], id="already-set"),
        pytest.param(
            webhooks(None),
            [
                {"op": "test", "path": "/webhooks/0/name", "value": "hook0.greenlight.dev"},
                {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "QQ=="},
            ],
            id="missing",
        ),
        pytest.param(
            webhooks("QQ==", "old"),
            [
                {"op": "test", "path": "/webhooks/1/name", "value": "hook1.greenlight.dev"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "QQ=="},
            ],
            id="one-stale",
        ),
    ],
)
def test_ca_bundle_patch_sets_only_what_differs(
    configuration: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    assert ca_bundle_patch(configuration, "QQ==") == expected


def test_mounted_matches_once_the_volume_shows_the_serving_pair(tmp_path: Path) -> None:
    result = plan(None)
    assert not mounted_matches(tmp_path, result.data)
    certs.write_cert_dir(tmp_path, {"tls.crt": b"old", "tls.key": b"old"})
    assert not mounted_matches(tmp_path, result.data)
    certs.write_cert_dir(tmp_path, result.data)
    assert mounted_matches(tmp_path, result.data)

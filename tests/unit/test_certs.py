"""Certificates: SANs, key usage, validity, chain verification, atomic directory updates."""

from __future__ import annotations

import argparse
import base64
import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from webhook.admission import certs
from webhook.cli import certs as certs_command

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SERVICE_NAMES = certs.service_dns_names("greenlight-webhook", "greenlight")


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def serving_pair(
    ca: certs.KeyPair,
    dns: tuple[str, ...] = tuple(SERVICE_NAMES),
    ips: tuple[str, ...] = certs.LOOPBACK_IPS,
    days: int = 365,
) -> certs.KeyPair:
    return certs.build_serving_cert(ca, dns_names=dns, ip_addresses=ips, now=NOW, days=days)


def verify_server(
    ca: certs.KeyPair, leaf: certs.KeyPair, subject: x509.verification.Subject
) -> None:
    store = Store([load(ca.cert_pem)])
    verifier = PolicyBuilder().store(store).time(NOW).build_server_verifier(subject)
    verifier.verify(load(leaf.cert_pem), [])


@pytest.fixture(scope="module")
def ca() -> certs.KeyPair:
    return certs.build_ca(now=NOW)


def test_service_dns_names_cover_every_in_cluster_form_and_localhost() -> None:
    assert SERVICE_NAMES == [
        "greenlight-webhook",
        "greenlight-webhook.greenlight",
        "greenlight-webhook.greenlight.svc",
        "greenlight-webhook.greenlight.svc.cluster.local",
        "localhost",
    ]


def test_serving_certificate_carries_dns_and_ip_sans(ca: certs.KeyPair) -> None:
    leaf = load(serving_pair(ca, ips=("127.0.0.1", "::1", "10.0.0.7")).cert_pem)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == SERVICE_NAMES
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.0.0.7"),
    ]


def test_duplicate_sans_are_listed_once(ca: certs.KeyPair) -> None:
    leaf = load(serving_pair(ca, dns=("localhost", "localhost"), ips=("::1", "::1")).cert_pem)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert len(list(sans)) == 2


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(DNSName("greenlight-webhook.greenlight.svc"), id="service-dns"),
        pytest.param(DNSName("greenlight-webhook.greenlight.svc.cluster.local"), id="fqdn"),
        pytest.param(DNSName("localhost"), id="localhost"),
        pytest.param(IPAddress(ipaddress.ip_address("127.0.0.1")), id="ipv4-loopback"),
        pytest.param(IPAddress(ipaddress.ip_address("::1")), id="ipv6-loopback"),
    ],
)
def test_serving_chain_verifies_for_each_san(
    ca: certs.KeyPair, subject: x509.verification.Subject
) -> None:
    verify_server(ca, serving_pair(ca), subject)


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(DNSName("greenlight-webhook.other.svc"), id="other-namespace"),
        pytest.param(IPAddress(ipaddress.ip_address("10.9.9.9")), id="ip-not-listed"),
    ],
)
def test_serving_chain_refuses_names_outside_the_sans(
    ca: certs.KeyPair, subject: x509.verification.Subject
) -> None:
    with pytest.raises(VerificationError):
        verify_server(ca, serving_pair(ca), subject)


def test_serving_chain_refuses_another_ca(ca: certs.KeyPair) -> None:
    other = certs.build_ca(now=NOW)
    with pytest.raises(VerificationError):
        verify_server(other, serving_pair(ca), DNSName("localhost"))


def test_client_certificate_names_user_and_groups_and_verifies(ca: certs.KeyPair) -> None:
    pair = certs.build_client_cert(
        ca, common_name="admin", organizations=["system:masters"], now=NOW
    )
    leaf = load(pair.cert_pem)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    # The WebPKI client policy demands a SAN, which Kubernetes client certificates don't need:
    # check the signature and the validity directly.
    leaf.verify_directly_issued_by(load(ca.cert_pem))
    assert leaf.not_valid_before_utc < NOW < leaf.not_valid_after_utc


@pytest.mark.parametrize(
    ("build", "usage", "other"),
    [
        pytest.param(
            serving_pair,
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            id="serving",
        ),
        pytest.param(
            lambda ca: certs.build_client_cert(ca, common_name="admin", now=NOW),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.SERVER_AUTH,
            id="client",
        ),
    ],
)
def test_leaf_certificates_have_one_extended_key_usage_and_are_not_cas(
    ca: certs.KeyPair,
    build: object,
    usage: x509.ObjectIdentifier,
    other: x509.ObjectIdentifier,
) -> None:
    leaf = load(build(ca).cert_pem)  # type: ignore[operator]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert usage in eku
    assert other not in eku
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    key_usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature
    assert not key_usage.key_cert_sign


def test_ca_may_sign_leaves_only(ca: certs.KeyPair) -> None:
    cert = load(ca.cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.subject == cert.issuer


@pytest.mark.parametrize("days", [1, 90, 365], ids=["1d", "90d", "365d"])
def test_validity_starts_before_now_for_clock_skew_and_lasts_the_given_days(
    ca: certs.KeyPair, days: int
) -> None:
    leaf = load(serving_pair(ca, days=days).cert_pem)
    assert leaf.not_valid_before_utc == NOW - certs.CLOCK_SKEW
    assert leaf.not_valid_after_utc == NOW + timedelta(days=days)
    assert certs.not_valid_after(serving_pair(ca, days=days).cert_pem) == NOW + timedelta(days=days)


@pytest.mark.parametrize(
    ("now", "renew"),
    [
        pytest.param(NOW, False, id="fresh"),
        pytest.param(NOW + timedelta(days=334), False, id="31-days-left"),
        pytest.param(NOW + timedelta(days=335), True, id="30-days-left"),
        pytest.param(NOW + timedelta(days=400), True, id="expired"),
        pytest.param(NOW - timedelta(hours=1), True, id="not-yet-valid"),
    ],
)
def test_needs_renewal_within_the_window_before_expiry(
    ca: certs.KeyPair, now: datetime, renew: bool
) -> None:
    assert certs.needs_renewal(serving_pair(ca).cert_pem, now) is renew


def test_needs_renewal_honours_a_custom_window(ca: certs.KeyPair) -> None:
    pem = serving_pair(ca).cert_pem
    assert certs.needs_renewal(pem, NOW + timedelta(days=300), before=timedelta(days=90))
    assert not certs.needs_renewal(pem, NOW + timedelta(days=300), before=timedelta(days=7))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda ca: certs.build_serving_cert(ca, dns_names=["Bad_Name"], now=NOW),
            "DNS name 'Bad_Name'",
            id="bad-dns-name",
        ),
        pytest.param(
            lambda ca: certs.build_serving_cert(ca, dns_names=["a..b"], now=NOW),
            "DNS name 'a..b'",
            id="empty-label",
        ),
        pytest.param(
            lambda ca: certs.build_serving_cert(
                ca, dns_names=["x"], ip_addresses=["300.1.1.1"], now=NOW
            ),
            "IP address '300.1.1.1'",
            id="bad-ip",
        ),
        pytest.param(
            lambda ca: certs.build_serving_cert(ca, dns_names=[], now=NOW),
            "at least one DNS name or IP address",
            id="no-sans",
        ),
        pytest.param(
            lambda ca: certs.build_serving_cert(ca, dns_names=["x"], now=NOW, days=0),
            "validity of 0 days",
            id="zero-days",
        ),
        pytest.param(
            lambda ca: certs.build_ca(now=datetime(2026, 6, 1)),
            "naive datetime",
            id="naive-now",
        ),
        pytest.param(
            lambda ca: certs.build_client_cert(ca, common_name=" ", now=NOW),
            "non-empty common name",
            id="empty-client-cn",
        ),
        pytest.param(
            lambda ca: certs.service_dns_names("9webhook", "greenlight"),
            "service name '9webhook' is not a DNS-1035 label",
            id="service-starts-with-digit",
        ),
        pytest.param(
            lambda ca: certs.service_dns_names("webhook", "Green_Light"),
            "namespace 'Green_Light' is not a DNS-1123 label",
            id="bad-namespace",
        ),
        pytest.param(
            lambda ca: certs.needs_renewal(b"not a certificate", NOW),
            "not a PEM certificate",
            id="garbage-pem",
        ),
        pytest.param(
            lambda ca: certs.build_serving_cert(
                certs.KeyPair(cert_pem=ca.cert_pem, key_pem=b"junk"), dns_names=["x"], now=NOW
            ),
            "not an unencrypted PEM private key",
            id="garbage-ca-key",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(
    ca: certs.KeyPair, call: object, message: str
) -> None:
    with pytest.raises(certs.CertificateError, match=message):
        call(ca)  # type: ignore[operator]


def test_ca_bundle_is_base64_of_the_pem(ca: certs.KeyPair) -> None:
    assert base64.b64decode(certs.ca_bundle_b64(ca.cert_pem)) == ca.cert_pem


def test_signing_key_is_an_rsa_key_of_the_requested_size() -> None:
    key = serialization.load_pem_private_key(certs.build_signing_key_pem(2048), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def bundle(ca: certs.KeyPair) -> certs.ServingBundle:
    return certs.build_serving_bundle(dns_names=SERVICE_NAMES, now=NOW, ca=ca)


def test_write_cert_dir_writes_the_set_with_private_keys_owner_only(
    ca: certs.KeyPair, tmp_path: Path
) -> None:
    written = bundle(ca)
    certs.write_cert_dir(tmp_path / "certs", written.files())
    assert certs.read_cert_dir(tmp_path / "certs") == written
    assert stat.S_IMODE((tmp_path / "certs" / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "certs" / "tls.crt").stat().st_mode) == 0o644


def test_rewriting_a_cert_dir_swaps_the_whole_set_and_leaves_no_old_files(
    ca: certs.KeyPair, tmp_path: Path
) -> None:
    certs.write_cert_dir(tmp_path, bundle(ca).files())
    second = bundle(ca)
    certs.write_cert_dir(tmp_path, second.files())
    assert certs.read_cert_dir(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == [
        (tmp_path / "..data").readlink().name
    ]


def test_write_cert_dir_replaces_plain_files(ca: certs.KeyPair, tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_bytes(b"old")
    written = bundle(ca)
    certs.write_cert_dir(tmp_path, written.files())
    assert (tmp_path / "tls.crt").read_bytes() == written.serving.cert_pem


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b"], ids=["empty", "up", "dot", "sub"])
def test_write_cert_dir_refuses_file_names_outside_the_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(certs.CertificateError, match="bad file name"):
        certs.write_cert_dir(tmp_path, {name: b"x"})


def test_read_cert_dir_of_an_incomplete_set_is_none(ca: certs.KeyPair, tmp_path: Path) -> None:
    files = bundle(ca).files()
    del files[certs.TLS_KEY_FILE]
    certs.write_cert_dir(tmp_path, files)
    assert certs.read_cert_dir(tmp_path) is None


def test_ensure_cert_dir_generates_a_verifiable_set_when_absent(tmp_path: Path) -> None:
    assert certs.ensure_cert_dir(tmp_path, dns_names=SERVICE_NAMES, now=NOW)
    found = certs.read_cert_dir(tmp_path)
    assert found is not None
    assert found.ca_key_pem is not None
    authority = certs.KeyPair(cert_pem=found.ca_cert_pem, key_pem=found.ca_key_pem)
    verify_server(authority, found.serving, IPAddress(ipaddress.ip_address("127.0.0.1")))


def test_ensure_cert_dir_keeps_a_fresh_set(tmp_path: Path) -> None:
    certs.ensure_cert_dir(tmp_path, dns_names=SERVICE_NAMES, now=NOW)
    before = certs.read_cert_dir(tmp_path)
    assert not certs.ensure_cert_dir(tmp_path, dns_names=SERVICE_NAMES, now=NOW + timedelta(1))
    assert certs.read_cert_dir(tmp_path) == before


def test_ensure_cert_dir_renews_under_the_same_ca_so_the_ca_bundle_stays_valid(
    tmp_path: Path,
) -> None:
    certs.ensure_cert_dir(tmp_path, dns_names=SERVICE_NAMES, now=NOW)
    before = certs.read_cert_dir(tmp_path)
    later = NOW + timedelta(days=340)
    assert certs.ensure_cert_dir(tmp_path, dns_names=SERVICE_NAMES, now=later)
    after = certs.read_cert_dir(tmp_path)
    assert before is not None
    assert after is not None
    assert after.ca_cert_pem == before.ca_cert_pem
    assert after.serving != before.serving
    assert not certs.needs_renewal(after.serving.cert_pem, later)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="greenlight")
    certs_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certs", *argv])
    code: int = args.func(args)
    return code


def test_certs_command_writes_a_set_for_the_service_with_extra_ips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        run_cli("--out", str(out), "--service", "gw", "--namespace", "ops", "--ip", "10.0.0.9") == 0
    )
    found = certs.read_cert_dir(out)
    assert found is not None
    assert found.ca_key_pem is None
    sans = load(found.serving.cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "gw.ops.svc" in sans.value.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.0.0.9") in sans.value.get_values_for_type(x509.IPAddress)
    assert "create secret tls gw-tls" in capsys.readouterr().out


def test_certs_command_keeps_an_existing_set_unless_forced(tmp_path: Path) -> None:
    assert run_cli("--out", str(tmp_path)) == 0
    first = certs.read_cert_dir(tmp_path)
    assert run_cli("--out", str(tmp_path)) == 0
    assert certs.read_cert_dir(tmp_path) == first
    assert run_cli("--out", str(tmp_path), "--force", "--keep-ca-key") == 0
    forced = certs.read_cert_dir(tmp_path)
    assert forced is not None
    assert forced != first
    assert forced.ca_key_pem is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--service", "Bad_Name"], "service name 'Bad_Name'", id="bad-service"),
        pytest.param(["--ip", "300.1.1.1"], "IP address '300.1.1.1'", id="bad-ip"),
        pytest.param(["--days", "0"], "validity of 0 days", id="zero-days"),
    ],
)
def test_certs_command_reports_bad_input_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run_cli("--out", str(tmp_path / "out"), *argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

"""Certificates for greenlight's webhook and the local control plane, built with ``cryptography``.

Pure builders return PEM bytes: a CA (key + self-signed certificate), serving certificates with
DNS and IP SANs (Go ignores the CN since 1.15, so the SANs are what the apiserver checks),
client certificates (CN = user, O = groups) and the RSA key a kube-apiserver signs service
account tokens with. ``write_cert_dir`` puts a set into a directory atomically, the way the
kubelet updates a mounted Secret (files are links into a ``..data`` directory that is swapped in
one rename), so a server reloading rotated files never reads a new certificate with an old key.
This module is the only one that imports ``cryptography``.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"

LOOPBACK_IPS: tuple[str, ...] = ("127.0.0.1", "::1")
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
# Certificates start a little in the past so that a peer whose clock lags still accepts them.
CLOCK_SKEW = timedelta(minutes=5)

_DNS_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_LABEL_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DATA_LINK = "..data"


class CertificateError(ValueError):
    """Bad input for a certificate, or a certificate/key that cannot be read."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ServingBundle:
    """What a TLS server needs (its key pair) and what its clients trust (the CA certificate).

    ``ca_key_pem`` is kept only where the same CA must sign a renewed serving certificate, so
    that the ``caBundle`` registered with the apiserver stays valid across renewals.
    """

    serving: KeyPair
    ca_cert_pem: bytes
    ca_key_pem: bytes | None = None

    def files(self) -> dict[str, bytes]:
        """File name -> content, as :func:`write_cert_dir` writes them."""
        files = {
            TLS_CERT_FILE: self.serving.cert_pem,
            TLS_KEY_FILE: self.serving.key_pem,
            CA_CERT_FILE: self.ca_cert_pem,
        }
        if self.ca_key_pem is not None:
            files[CA_KEY_FILE] = self.ca_key_pem
        return files


def service_dns_names(
    service: str, namespace: str, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
) -> list[str]:
    """The names a Service is reached by inside a cluster, plus ``localhost``."""
    if not _DNS_LABEL_1035.fullmatch(service):
        raise CertificateError(
            f"service name {service!r} is not a DNS-1035 label "
            "(lower-case letters, digits and '-', starting with a letter, at most 63 characters)"
        )
    if not _DNS_LABEL_1123.fullmatch(namespace):
        raise CertificateError(
            f"namespace {namespace!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    _check_dns_name(cluster_domain)
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
        "localhost",
    ]


def build_ca(*, now: datetime, days: int = 3650, common_name: str = "greenlight-ca") -> KeyPair:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    _check_now(now)
    _check_days(days)
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _validity(x509.CertificateBuilder(), now, days)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def build_serving_cert(
    ca: KeyPair,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    now: datetime,
    days: int = 365,
) -> KeyPair:
    """A TLS server certificate (serverAuth) for ``dns_names`` and ``ip_addresses``, signed by
    ``ca``. The CN is the first DNS name (or IP), for humans; clients check the SANs."""
    dns = [_check_dns_name(name) for name in dns_names]
    ips = [_parse_ip(ip) for ip in ip_addresses]
    if not dns and not ips:
        raise CertificateError("a serving certificate needs at least one DNS name or IP address")
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(dns)]
    sans += [x509.IPAddress(ip) for ip in dict.fromkeys(ips)]
    common_name = dns[0] if dns else str(ips[0])
    return _build_leaf(
        ca,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
        now=now,
        days=days,
    )


def build_client_cert(
    ca: KeyPair,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    now: datetime,
    days: int = 365,
) -> KeyPair:
    """A TLS client certificate (clientAuth). Kubernetes reads the CN as the user name and each
    O as a group: ``organizations=["system:masters"]`` makes a cluster admin."""
    if not common_name.strip():
        raise CertificateError("a client certificate needs a non-empty common name (the user)")
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return _build_leaf(
        ca,
        subject=x509.Name(attributes),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[],
        now=now,
        days=days,
    )


def build_serving_bundle(
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = LOOPBACK_IPS,
    now: datetime,
    days: int = 365,
    ca: KeyPair | None = None,
    keep_ca_key: bool = False,
) -> ServingBundle:
    """A serving certificate and the CA that signed it: ``ca`` when given (renewal under the
    same ``caBundle``), else a new CA valid ten times as long as the serving certificate."""
    authority = ca if ca is not None else build_ca(now=now, days=days * 10)
    serving = build_serving_cert(
        authority, dns_names=dns_names, ip_addresses=ip_addresses, now=now, days=days
    )
    return ServingBundle(
        serving=serving,
        ca_cert_pem=authority.cert_pem,
        ca_key_pem=authority.key_pem if keep_ca_key else None,
    )


def build_signing_key_pem(bits: int = 2048) -> bytes:
    """An RSA private key (PKCS#8 PEM), e.g. for kube-apiserver's service account tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ca_bundle_b64(ca_cert_pem: bytes) -> str:
    """The ``caBundle`` field of a webhook configuration: base64 of the PEM CA certificate(s)."""
    return base64.b64encode(ca_cert_pem).decode("ascii")


def not_valid_after(cert_pem: bytes) -> datetime:
    """When a PEM certificate expires (aware UTC)."""
    return _load_cert(cert_pem).not_valid_after_utc


def needs_renewal(cert_pem: bytes, now: datetime, before: timedelta = timedelta(days=30)) -> bool:
    """True once ``now`` is within ``before`` of the certificate's expiry (or past it), or
    before its validity starts."""
    _check_now(now)
    cert = _load_cert(cert_pem)
    return now < cert.not_valid_before_utc or now >= cert.not_valid_after_utc - before


def write_cert_dir(directory: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (name -> content) into ``directory`` as one atomic update.

    The contents go into a fresh hidden directory; a ``..data`` link is renamed onto it and each
    name is a link through ``..data``, as in a Kubernetes Secret volume. Readers see the old set
    or the new set, never a mix. Private keys (``*.key``) are readable by the owner only.
    """
    for name in files:
        if not name or "/" in name or name.startswith("."):
            raise CertificateError(f"bad file name {name!r} for a certificate directory")
    directory.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="..cert-", dir=directory))
    try:
        for name, content in files.items():
            path = stage / name
            path.write_bytes(content)
            path.chmod(0o600 if name.endswith(".key") else 0o644)
        stage.chmod(0o755)
        data_link = directory / _DATA_LINK
        old_target = os.readlink(data_link) if data_link.is_symlink() else None
        _replace_with_symlink(data_link, stage.name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    for name in files:
        link = directory / name
        if not (link.is_symlink() and os.readlink(link) == f"{_DATA_LINK}/{name}"):
            _replace_with_symlink(link, f"{_DATA_LINK}/{name}")
    if old_target is not None and old_target != stage.name:
        shutil.rmtree(directory / old_target, ignore_errors=True)


def read_cert_dir(directory: Path) -> ServingBundle | None:
    """The set in ``directory``, or None when ``tls.crt``, ``tls.key`` or ``ca.crt`` is absent."""
    paths = {name: directory / name for name in (TLS_CERT_FILE, TLS_KEY_FILE, CA_CERT_FILE)}
    if not all(path.is_file() for path in paths.values()):
        return None
    ca_key_path = directory / CA_KEY_FILE
    return ServingBundle(
        serving=KeyPair(
            cert_pem=paths[TLS_CERT_FILE].read_bytes(), key_pem=paths[TLS_KEY_FILE].read_bytes()
        ),
        ca_cert_pem=paths[CA_CERT_FILE].read_bytes(),
        ca_key_pem=ca_key_path.read_bytes() if ca_key_path.is_file() else None,
    )


def ensure_cert_dir(
    directory: Path,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = LOOPBACK_IPS,
    now: datetime,
    days: int = 365,
    renew_before: timedelta = timedelta(days=30),
) -> bool:
    """Generate a self-signed set into ``directory`` when it is absent or due for renewal.

    The CA key is kept in the directory (``ca.key``) so that a renewal is signed by the same CA
    and a registered ``caBundle`` stays valid. Returns True when files were written.
    """
    current = read_cert_dir(directory)
    if current is not None and not needs_renewal(current.serving.cert_pem, now, renew_before):
        return False
    ca: KeyPair | None = None
    if (
        current is not None
        and current.ca_key_pem is not None
        and not needs_renewal(current.ca_cert_pem, now, timedelta(days=days))
    ):
        ca = KeyPair(cert_pem=current.ca_cert_pem, key_pem=current.ca_key_pem)
    bundle = build_serving_bundle(
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        now=now,
        days=days,
        ca=ca,
        keep_ca_key=True,
    )
    write_cert_dir(directory, bundle.files())
    return True


def _build_leaf(
    ca: KeyPair,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: Iterable[x509.GeneralName],
    now: datetime,
    days: int,
) -> KeyPair:
    _check_now(now)
    _check_days(days)
    ca_cert = _load_cert(ca.cert_pem)
    ca_key = _load_key(ca.key_pem)
    key = _new_key()
    builder = (
        _validity(x509.CertificateBuilder(), now, days)
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    san_list = list(sans)
    if san_list:
        builder = builder.add_extension(x509.SubjectAlternativeName(san_list), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def _validity(
    builder: x509.CertificateBuilder, now: datetime, days: int
) -> x509.CertificateBuilder:
    return builder.not_valid_before(now - CLOCK_SKEW).not_valid_after(now + timedelta(days=days))


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by Go's TLS stack and OpenSSL, and generated in microseconds (RSA 2048
    # takes tens of milliseconds, which adds up in tests).
    return ec.generate_private_key(ec.SECP256R1())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_cert(cert_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise CertificateError(f"not a PEM certificate: {e}") from e


def _load_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise CertificateError(f"not an unencrypted PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"unsupported CA key type {type(key).__name__}: use EC or RSA")
    return key


def _check_dns_name(name: str) -> str:
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL_1123.fullmatch(label) for label in labels):
        raise CertificateError(
            f"DNS name {name!r} is not a valid lower-case DNS name (RFC 1123: labels of "
            "letters, digits and '-', separated by '.')"
        )
    return name


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError as e:
        raise CertificateError(
            f"IP address {value!r} is not an IPv4 or IPv6 address (e.g. 127.0.0.1, ::1)"
        ) from e


def _check_days(days: int) -> None:
    if days < 1:
        raise CertificateError(f"validity of {days} days: must be at least 1 day")


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise CertificateError(f"naive datetime {now.isoformat()}: times must be timezone-aware")


def _replace_with_symlink(path: Path, target: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    temporary.replace(path)

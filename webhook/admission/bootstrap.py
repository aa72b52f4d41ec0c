"""Self-managed webhook certificates in a cluster: the chart's ``certificates.mode: bootstrap``.

``greenlight bootstrap-certs`` runs as an init container of each webhook Pod and as a daily
CronJob. It makes sure that

1. the chart's (initially empty) Secret holds a CA and a serving certificate for the webhook
   Service (``tls.crt``, ``tls.key``, ``ca.crt``, ``ca.key``): generated when absent, renewed
   under the same CA when the serving certificate nears expiry or its names changed, and under a
   new CA (trusted next to the old one) only when the CA itself nears expiry;
2. greenlight's own Mutating- and ValidatingWebhookConfiguration carry that CA as ``caBundle``
   (patched by name, each webhook guarded by a JSONPatch ``test`` of its name);
3. optionally, the Secret's files have reached the Pod's mounted volume, so the server never
   starts without them (the kubelet refreshes Secret volumes within about a minute).

The caBundle is patched *before* a new certificate is written, so the apiserver trusts every
certificate the server can present. Replicas racing on the Secret are settled by its
resourceVersion: the loser re-reads and keeps the winner's set.

The pure part (:func:`plan_certificates`, :func:`ca_bundle_patch`) decides; :class:`Bootstrap`
does the I/O. This is the only module of this feature that imports ``kubernetes``.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from webhook.admission import certs

log = logging.getLogger(__name__)

SANS_ANNOTATION = "greenlight.dev/certificate-sans"
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)
_JSON_PATCH = "application/json-patch+json"


class BootstrapError(RuntimeError):
    """The certificates could not be put in place (API refused, timed out, bad input)."""


@dataclass(frozen=True)
class BootstrapSettings:
    """What to bootstrap, as the chart passes it on the command line."""

    namespace: str
    secret: str
    service: str
    webhook_configuration: str
    cluster_domain: str = certs.DEFAULT_CLUSTER_DOMAIN
    days: int = 365
    renew_before: timedelta = timedelta(days=30)

    def dns_names(self) -> list[str]:
        return certs.service_dns_names(self.service, self.namespace, self.cluster_domain)


@dataclass(frozen=True)
class CertificatePlan:
    """What the Secret should hold (``data``) and whether that differs from what it holds."""

    data: dict[str, bytes]
    changed: bool
    why: str

    @property
    def ca_bundle_pem(self) -> bytes:
        return self.data[certs.CA_CERT_FILE]


def split_pem_certificates(bundle: bytes) -> list[bytes]:
    """The PEM certificates in a bundle, in order."""
    return [
        block if block.endswith(b"\n") else block + b"\n" for block in _PEM_BLOCK.findall(bundle)
    ]


def plan_certificates(
    current: Mapping[str, bytes] | None,
    *,
    dns_names: Sequence[str],
    now: datetime,
    days: int = 365,
    renew_before: timedelta = timedelta(days=30),
    current_sans: str | None = None,
) -> CertificatePlan:
    """Decide the Secret's contents from its current ``data`` (None or {} when empty).

    ``ca.crt`` is the trust bundle: the signing CA first, then a previous CA while it is still
    valid, so that a CA rotation never leaves the apiserver distrusting the server.
    """
    data = dict(current or {})
    names = sans_of(dns_names)
    files = (certs.TLS_CERT_FILE, certs.TLS_KEY_FILE, certs.CA_CERT_FILE, certs.CA_KEY_FILE)
    complete = all(data.get(name) for name in files)
    ca_bundle = split_pem_certificates(data.get(certs.CA_CERT_FILE, b""))
    ca: certs.KeyPair | None = None
    if complete and ca_bundle and not certs.needs_renewal(ca_bundle[0], now, timedelta(days=days)):
        ca = certs.KeyPair(cert_pem=ca_bundle[0], key_pem=data[certs.CA_KEY_FILE])

    if complete and ca is not None:
        if current_sans == names and not certs.needs_renewal(
            data[certs.TLS_CERT_FILE], now, renew_before
        ):
            return CertificatePlan(data=data, changed=False, why="current certificates are valid")
        why = (
            "the Service names changed"
            if current_sans != names
            else "the serving certificate nears expiry"
        )
        bundle = certs.build_serving_bundle(
            dns_names=dns_names, now=now, days=days, ca=ca, keep_ca_key=True
        )
        previous = [c for c in ca_bundle[1:] if not certs.needs_renewal(c, now, timedelta(0))]
        trust = b"".join([ca_bundle[0], *previous])
    else:
        why = "no certificates yet" if not complete else "the CA nears expiry"
        bundle = certs.build_serving_bundle(
            dns_names=dns_names, now=now, days=days, keep_ca_key=True
        )
        still_valid = [c for c in ca_bundle if not certs.needs_renewal(c, now, timedelta(0))]
        trust = bundle.ca_cert_pem + b"".join(still_valid[:1])
    new_data = bundle.files()
    new_data[certs.CA_CERT_FILE] = trust
    return CertificatePlan(data=new_data, changed=True, why=why)


def sans_of(dns_names: Sequence[str]) -> str:
    """The annotation value recording which names a certificate was issued for."""
    return ",".join(dns_names)


def ca_bundle_patch(configuration: Mapping[str, Any], ca_bundle_b64: str) -> list[dict[str, Any]]:
    """A JSONPatch setting ``caBundle`` on every webhook of a webhook configuration that does
    not carry it yet (empty when all do). Each change is guarded by a ``test`` of the webhook's
    name at that index, so a concurrent edit of the list makes the patch fail instead of
    landing on the wrong webhook."""
    ops: list[dict[str, Any]] = []
    for index, webhook in enumerate(configuration.get("webhooks") or []):
        client_config = webhook.get("clientConfig") or {}
        if client_config.get("caBundle") == ca_bundle_b64:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]})
        ops.append(
            {
                "op": "add",
                "path": f"/webhooks/{index}/clientConfig/caBundle",
                "value": ca_bundle_b64,
            }
        )
    return ops


def mounted_matches(directory: Path, data: Mapping[str, bytes]) -> bool:
    """True when ``directory`` (a mounted Secret volume) holds the serving pair in ``data``."""
    try:
        return all(
            (directory / name).read_bytes() == data[name]
            for name in (certs.TLS_CERT_FILE, certs.TLS_KEY_FILE)
        )
    except OSError:
        return False


# --- the cluster side ------------------------------------------------------------------------

WEBHOOK_KINDS: tuple[str, ...] = (
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)


class Bootstrap:
    """Puts the planned certificates into the Secret and the caBundles (the I/O half)."""

    def __init__(
        self,
        settings: BootstrapSettings,
        *,
        kubeconfig: str | None = None,
        clock: Callable[[], datetime],
        timeout_s: float = 300.0,
        interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        import kubernetes  # noqa: PLC0415 (only when bootstrapping in a cluster)

        # The client's generated types mark every field optional; handled as plain data here.
        self._k8s: Any = kubernetes
        config: Any = kubernetes.config
        try:
            if kubeconfig:
                api_client = config.new_client_from_config(config_file=kubeconfig)
            else:
                config.load_incluster_config()
                api_client = kubernetes.client.ApiClient()
        except Exception as e:  # the client raises several unrelated types here
            raise BootstrapError(f"no cluster to bootstrap certificates in: {e}") from e
        self._api_client: Any = api_client
        self._core: Any = kubernetes.client.CoreV1Api(api_client)
        self._admission: Any = kubernetes.client.AdmissionregistrationV1Api(api_client)

    def close(self) -> None:
        self._api_client.close()

    def run(self, wait_mounted: Path | None = None) -> CertificatePlan:
        """Ensure Secret and caBundles; then wait for ``wait_mounted`` to show the files."""
        plan = self._ensure()
        if wait_mounted is not None:
            self._wait(
                lambda: mounted_matches(wait_mounted, plan.data),
                what=f"the Secret {self.settings.secret}'s certificates to appear in "
                f"{wait_mounted} (the kubelet refreshes Secret volumes about once a minute)",
            )
            log.info("certificates are mounted in %s", wait_mounted)
        return plan

    def _ensure(self) -> CertificatePlan:
        s = self.settings
        for _attempt in range(5):
            secret = self._read_secret()
            metadata = secret.get("metadata") or {}
            current = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            plan = plan_certificates(
                current,
                dns_names=s.dns_names(),
                now=self._clock(),
                days=s.days,
                renew_before=s.renew_before,
                current_sans=(metadata.get("annotations") or {}).get(SANS_ANNOTATION),
            )
            # Trust first, then the new certificate: the apiserver must accept whatever the
            # server presents at any moment.
            self._inject_ca_bundle(plan.ca_bundle_pem)
            if not plan.changed:
                log.info("secret %s/%s: %s", s.namespace, s.secret, plan.why)
                return plan
            if self._write_secret(metadata, plan):
                log.info(
                    "secret %s/%s: wrote new certificates (%s)", s.namespace, s.secret, plan.why
                )
                return plan
            log.info("secret %s/%s changed meanwhile; reading it again", s.namespace, s.secret)
        raise BootstrapError(f"secret {s.namespace}/{s.secret} kept changing under us; giving up")

    def _read_secret(self) -> dict[str, Any]:
        s = self.settings
        try:
            secret = self._core.read_namespaced_secret(s.secret, s.namespace)
        except self._k8s.client.ApiException as e:
            hint = " (the chart creates it empty; was it deleted?)" if e.status == 404 else ""
            raise BootstrapError(
                f"cannot read secret {s.namespace}/{s.secret}: {e.status} {e.reason}{hint}"
            ) from e
        result: dict[str, Any] = self._api_client.sanitize_for_serialization(secret)
        return result

    def _write_secret(self, metadata: Mapping[str, Any], plan: CertificatePlan) -> bool:
        """Replace the Secret's data at the resourceVersion read; False on a conflict."""
        s = self.settings
        annotations = {
            **(metadata.get("annotations") or {}),
            SANS_ANNOTATION: sans_of(s.dns_names()),
        }
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {**metadata, "annotations": annotations},
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode("ascii") for k, v in plan.data.items()},
        }
        try:
            self._core.replace_namespaced_secret(s.secret, s.namespace, body)
        except self._k8s.client.ApiException as e:
            if e.status == 409:
                return False
            raise BootstrapError(
                f"cannot update secret {s.namespace}/{s.secret}: {e.status} {e.reason}"
            ) from e
        return True

    def _inject_ca_bundle(self, ca_bundle_pem: bytes) -> None:
        encoded = certs.ca_bundle_b64(ca_bundle_pem)
        name = self.settings.webhook_configuration
        for kind in WEBHOOK_KINDS:
            self._wait(
                functools.partial(self._patch_ca_bundle, kind, name, encoded), what=f"{kind} {name}"
            )

    def _patch_ca_bundle(self, kind: str, name: str, encoded: str) -> bool:
        """True once ``kind``/``name`` carries the bundle; False to try again (absent yet, or
        changed between read and patch)."""
        snake = "mutating" if kind.startswith("Mutating") else "validating"
        read = getattr(self._admission, f"read_{snake}_webhook_configuration")
        patch = getattr(self._admission, f"patch_{snake}_webhook_configuration")
        try:
            configuration = self._api_client.sanitize_for_serialization(read(name))
        except self._k8s.client.ApiException as e:
            if e.status == 404:
                log.info("%s %s does not exist yet; waiting for it", kind, name)
                return False
            raise BootstrapError(f"cannot read {kind} {name}: {e.status} {e.reason}") from e
        ops = ca_bundle_patch(configuration, encoded)
        if not ops:
            return True
        try:
            patch(name, ops, _content_type=_JSON_PATCH)
        except self._k8s.client.ApiException as e:
            if e.status in (404, 409, 422):  # gone, or changed under us: read again
                return False
            raise BootstrapError(f"cannot patch {kind} {name}: {e.status} {e.reason}") from e
        log.info("%s %s: caBundle set on %d webhook(s)", kind, name, len(ops) // 2)
        return True

    def _wait(self, done: Callable[[], bool], *, what: str) -> None:
        deadline = time.monotonic() + self._timeout_s
        while not done():
            if time.monotonic() >= deadline:
                raise BootstrapError(f"timed out after {self._timeout_s:.0f} s waiting for {what}")
            time.sleep(self._interval_s)

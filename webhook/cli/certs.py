"""``greenlight certs``: generate a CA and a serving certificate for the webhook's Service."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="generate a CA and the webhook's serving certificate (tls.crt, tls.key, ca.crt)",
        description=(
            "Generate a CA and a serving certificate for the webhook Service into DIR "
            "(tls.crt, tls.key, ca.crt). SANs: SERVICE, SERVICE.NAMESPACE, "
            "SERVICE.NAMESPACE.svc, SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN, localhost, "
            "127.0.0.1 and ::1, plus any --dns/--ip. An existing complete set is kept "
            "unless --force."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--service", default="greenlight-webhook", help="Service name")
    parser.add_argument("--namespace", default="greenlight", help="Service namespace")
    parser.add_argument(
        "--cluster-domain", default="cluster.local", help="cluster DNS domain (cluster.local)"
    )
    parser.add_argument(
        "--dns", action="append", default=[], metavar="NAME", help="extra DNS SAN (repeatable)"
    )
    parser.add_argument(
        "--ip", action="append", default=[], metavar="ADDR", help="extra IP SAN (repeatable)"
    )
    parser.add_argument(
        "--days", type=int, default=365, help="serving certificate validity in days (365)"
    )
    parser.add_argument(
        "--keep-ca-key",
        action="store_true",
        help="also write ca.key, to sign renewals with the same CA (keep it out of the Secret)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing set")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.admission import certs  # here, not at the top: cryptography loads only when used

    out: Path = args.out
    now = datetime.now(UTC)
    try:
        existing = certs.read_cert_dir(out)
        if existing is not None and not args.force:
            expiry = certs.not_valid_after(existing.serving.cert_pem)
            print(
                f"{out}: certificates already present (expire {expiry:%Y-%m-%d}); "
                "kept them (--force replaces them)"
            )
            return 0
        dns_names = certs.service_dns_names(args.service, args.namespace, args.cluster_domain)
        bundle = certs.build_serving_bundle(
            dns_names=[*dns_names, *args.dns],
            ip_addresses=[*certs.LOOPBACK_IPS, *args.ip],
            now=now,
            days=args.days,
            keep_ca_key=args.keep_ca_key,
        )
        certs.write_cert_dir(out, bundle.files())
    except (certs.CertificateError, OSError) as e:
        print(f"greenlight certs: {e}", file=sys.stderr)
        return 1
    expiry = certs.not_valid_after(bundle.serving.cert_pem)
    written = ", ".join(sorted(bundle.files()))
    print(f"wrote {written} to {out} (serving certificate expires {expiry:%Y-%m-%d})")
    print(f"SANs: {', '.join([*dns_names, *args.dns, *certs.LOOPBACK_IPS, *args.ip])}")
    print(
        f"Secret: kubectl -n {args.namespace} create secret tls {args.service}-tls "
        f"--cert={out}/tls.crt --key={out}/tls.key"
    )
    print(f"caBundle: base64 -w0 {out}/ca.crt")
    return 0

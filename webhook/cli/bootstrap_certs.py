"""``greenlight bootstrap-certs``: self-managed webhook certificates in a cluster (the chart's
``certificates.mode: bootstrap``): fill the Secret, inject ``caBundle``, wait for the mount."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bootstrap-certs",
        help="in a cluster: keep the webhook's certificate Secret and caBundle current",
        description=(
            "Make sure SECRET (in NAMESPACE) holds a CA and a serving certificate for SERVICE "
            "(generated when absent; renewed under the same CA before expiry), and that the "
            "Mutating- and ValidatingWebhookConfiguration named WEBHOOK_CONFIGURATION carry "
            "that CA as caBundle. With --wait-mounted, then wait until the Secret's files show "
            "in DIR (a mounted volume of the Secret). Idempotent: run it as an init container "
            "and on a schedule."
        ),
    )
    parser.add_argument("--namespace", required=True, help="namespace of the Secret and Service")
    parser.add_argument("--secret", required=True, help="the Secret that holds the certificates")
    parser.add_argument("--service", required=True, help="the webhook's Service (for the SANs)")
    parser.add_argument(
        "--webhook-configuration",
        required=True,
        metavar="NAME",
        help="name of greenlight's Mutating- and ValidatingWebhookConfiguration",
    )
    parser.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain")
    parser.add_argument("--days", type=int, default=365, help="serving certificate validity")
    parser.add_argument(
        "--renew-before-days",
        type=int,
        default=30,
        help="renew the serving certificate this many days before it expires (30)",
    )
    parser.add_argument("--wait-mounted", type=Path, metavar="DIR", help="mounted Secret volume")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for each step (300)"
    )
    parser.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from webhook.admission.bootstrap import Bootstrap, BootstrapError, BootstrapSettings
    from webhook.admission.certs import CertificateError

    if args.days < 1 or not 0 <= args.renew_before_days < args.days:
        print(
            f"greenlight bootstrap-certs: --days {args.days} must be at least 1 and "
            f"--renew-before-days {args.renew_before_days} between 0 and --days",
            file=sys.stderr,
        )
        return 2
    settings = BootstrapSettings(
        namespace=args.namespace,
        secret=args.secret,
        service=args.service,
        webhook_configuration=args.webhook_configuration,
        cluster_domain=args.cluster_domain,
        days=args.days,
        renew_before=timedelta(days=args.renew_before_days),
    )
    try:
        bootstrap = Bootstrap(
            settings,
            kubeconfig=args.kubeconfig,
            clock=lambda: datetime.now(UTC),
            timeout_s=args.timeout,
        )
        try:
            plan = bootstrap.run(wait_mounted=args.wait_mounted)
        finally:
            bootstrap.close()
    except (BootstrapError, CertificateError) as e:
        print(f"greenlight bootstrap-certs: {e}", file=sys.stderr)
        return 1
    print(f"secret {args.namespace}/{args.secret}: {plan.why}; caBundle in place")
    return 0

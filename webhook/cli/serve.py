"""``greenlight serve``: the admission webhook over HTTPS (and /metrics over HTTP if asked).

On its embedded defaults (replay provider, a self-signed certificate generated into the cert
dir when none is there) it serves with no other configuration. Settings come from
``GREENLIGHT_*`` variables; the flags override the server section.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from webhook.admission.tls import ReloadingTLS
    from webhook.config.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the admission webhook (HTTPS: /mutate, /validate, /healthz, /readyz, /metrics)",
        description=(
            "Run the admission webhook. Certificates are read from --cert-dir (tls.crt, "
            "tls.key) and reloaded when they change; a self-signed set is generated there when "
            "absent. Namespace defaults are watched when a cluster is reachable (--kubeconfig "
            "or in-cluster)."
        ),
    )
    parser.add_argument("--host", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="HTTPS port (default 8443)")
    parser.add_argument("--cert-dir", type=Path, help="certificate directory")
    parser.add_argument("--metrics-port", type=int, help="also serve /metrics over plain HTTP")
    parser.add_argument(
        "--kubeconfig",
        help="watch Namespaces through this kubeconfig (default: in-cluster when running in a "
        "Pod, else no watch: global defaults only)",
    )
    parser.add_argument(
        "--with-reconciler",
        action="store_true",
        help="also run the reconciler in this process (one-replica installs; needs a cluster)",
    )
    parser.set_defaults(func=run)


def _server_overrides(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        "host": args.host,
        "port": args.port,
        "cert_dir": args.cert_dir,
        "metrics_port": args.metrics_port,
    }
    return {key: value for key, value in flags.items() if value is not None}


def load_tls(settings: Settings) -> ReloadingTLS:
    """The serving certificate from the cert dir, generated there (self-signed) when absent."""
    from datetime import UTC, datetime

    from webhook.admission import certs
    from webhook.admission.tls import ReloadingTLS

    cert_dir = settings.server.cert_dir.expanduser()
    if certs.read_cert_dir(cert_dir) is None:
        dns_names = certs.service_dns_names(settings.server.service, settings.server.namespace)
        certs.ensure_cert_dir(cert_dir, dns_names=dns_names, now=datetime.now(UTC))
    return ReloadingTLS(cert_dir / certs.TLS_CERT_FILE, cert_dir / certs.TLS_KEY_FILE)


def build_app(
    settings: Settings, tls: ReloadingTLS, kubeconfig: str | None, with_reconciler: bool = False
) -> FastAPI:
    from webhook.admission.namespaces import NamespaceDefaults, NamespaceWatch
    from webhook.admission.server import create_app
    from webhook.telemetry.metrics import Metrics

    namespaces = NamespaceDefaults()
    background = []
    metrics = Metrics()
    forecasts = None  # the app builds its own source
    if kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST"):
        background.append(NamespaceWatch(namespaces, kubeconfig=kubeconfig).run)
    if with_reconciler:
        from webhook.cli.reconcile import in_process

        reconciler = in_process(settings, kubeconfig, metrics)
        background.append(reconciler.run)
        # One forecast source for both: a zone is fetched once, not once per component.
        forecasts = reconciler.forecasts
    return create_app(
        settings,
        tls=tls,
        forecasts=forecasts,
        namespaces=namespaces,
        background=background,
        metrics=metrics,
    )


async def serve(settings: Settings, app: FastAPI, tls: ReloadingTLS) -> None:
    """Serve ``app`` over HTTPS, and /metrics over HTTP when a metrics port is set."""
    import asyncio
    import contextlib

    import uvicorn

    from webhook.admission.server import create_metrics_app, https_server

    server = https_server(app, tls, host=settings.server.host, port=settings.server.port)
    if settings.server.metrics_port is None:
        await server.serve()
        return

    class _QuietServer(uvicorn.Server):
        """The metrics server leaves signal handling to the main server."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    metrics_server = _QuietServer(
        uvicorn.Config(
            create_metrics_app(app.state.metrics),
            host=settings.server.host,
            port=settings.server.metrics_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    metrics_task = asyncio.create_task(metrics_server.serve())
    try:
        await server.serve()
    finally:
        metrics_server.should_exit = True
        await metrics_task


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    from pydantic import ValidationError

    from webhook.admission.certs import CertificateError
    from webhook.admission.tls import TLSError
    from webhook.config.settings import load_settings

    try:
        settings = load_settings()
        server = settings.server.model_validate(
            {**settings.server.model_dump(), **_server_overrides(args)}
        )
        settings = settings.model_copy(update={"server": server})
        tls = load_tls(settings)
        app = build_app(settings, tls, args.kubeconfig, args.with_reconciler)
    except (ValidationError, CertificateError, TLSError, OSError, ValueError) as e:
        print(f"greenlight serve: {e}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info(
        "serving on https://%s:%d (certificates in %s)",
        settings.server.host,
        settings.server.port,
        settings.server.cert_dir.expanduser(),
    )
    asyncio.run(serve(settings, app, tls))
    return 0

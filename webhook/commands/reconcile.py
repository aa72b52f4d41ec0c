"""``greenlight reconcile``: release deferred Jobs on time, re-plan them, account their runs.

Runs until SIGTERM/SIGINT (the leader hands its Lease over on the way out). Several replicas
may run; one leads through a coordination.k8s.io Lease. ``--metrics-port`` serves ``/metrics``,
``/healthz`` and ``/readyz`` (ready once the first list of Jobs is read) over plain HTTP.
Settings: ``GREENLIGHT_RECONCILER__*`` (README, "The reconciler"), and the provider, planner
and cost settings the webhook uses.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.reconciler.service import ReconcilerService


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="release deferred Jobs at their window and by their deadline (leader-elected)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kubeconfig",
        help="cluster to reconcile (default: in-cluster in a Pod, else $KUBECONFIG or "
        "~/.kube/config)",
    )
    parser.add_argument("--metrics-port", type=int, help="serve /metrics over HTTP on this port")
    parser.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port")  # noqa: S104
    parser.add_argument(
        "--identity", help="this replica's name in the Lease (default: $POD_NAME, else host-pid)"
    )
    parser.set_defaults(func=run)


def metrics_app(service: ReconcilerService) -> Any:
    """``/metrics``, ``/healthz`` and ``/readyz`` of a running reconciler."""
    from fastapi import FastAPI, Response

    from webhook.metrics import CONTENT_TYPE

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> Response:
        alive = not service.reconciler.stopped
        return Response("ok" if alive else "stopped", status_code=200 if alive else 503)

    @app.get("/readyz")
    async def readyz() -> Response:
        ready = service.reconciler.wait_synced(0)
        return Response("ready" if ready else "listing", status_code=200 if ready else 503)

    return app


async def reconcile(service: ReconcilerService, port: int | None, host: str) -> None:
    """Run ``service`` (and its metrics server) until SIGTERM/SIGINT."""
    import asyncio
    import contextlib
    import signal

    import uvicorn

    class _Server(uvicorn.Server):
        """Signals are handled below, for the reconciler and the server together."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    loop = asyncio.get_running_loop()
    main = asyncio.create_task(service.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    server = None
    serving = None
    if port is not None:
        config = uvicorn.Config(
            metrics_app(service),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve())
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await main
    finally:
        if server is not None and serving is not None:
            server.should_exit = True
            await serving


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    from pydantic import ValidationError

    from webhook.providers.base import ProviderError
    from webhook.reconciler.kube import Kube, KubeError
    from webhook.reconciler.service import ReconcilerService
    from webhook.settings import load_settings

    try:
        settings = load_settings()
        kube = Kube.connect(
            args.kubeconfig,
            pool_size=settings.reconciler.api_workers + 4,
            timeout_s=settings.reconciler.api_timeout_s,
        )
        service = ReconcilerService(settings, kube, identity=args.identity)
    except (ValidationError, KubeError, ProviderError, OSError, ValueError) as e:
        print(f"greenlight reconcile: {e}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info(
        "reconciling as %s (lease %s/%s)",
        service.reconciler.identity,
        settings.reconciler.lease_namespace,
        settings.reconciler.lease_name,
    )
    try:
        asyncio.run(reconcile(service, args.metrics_port, args.metrics_host))
    except RuntimeError as e:
        print(f"greenlight reconcile: {e}: {e.__cause__}", file=sys.stderr)
        return 1
    finally:
        kube.close()
    return 0

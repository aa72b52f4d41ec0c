"""``greenlight reconcile``: release deferred Jobs on time, re-plan them, account their runs.

Runs until SIGTERM/SIGINT (the leader hands its Lease over on the way out). Several replicas
may run; one leads through a coordination.k8s.io Lease. ``--metrics-port`` serves ``/metrics``,
``/healthz`` and ``/readyz`` (ready once the first list of Jobs is read) over plain HTTP.
Settings: ``GREENLIGHT_RECONCILER__*`` (README, "The reconciler"), and the provider, planner
and cost settings the webhook uses.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from webhook.carbon.source import ForecastSource
    from webhook.config.settings import Settings
    from webhook.reconciler.service import ReconcilerService
    from webhook.telemetry.metrics import Metrics


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

    from webhook.telemetry.metrics import CONTENT_TYPE

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


class InProcess(NamedTuple):
    """The reconciler inside ``greenlight serve``: its task, and the forecast source it owns,
    which the webhook shares (one provider client, one cache, one record of observations)."""

    run: Callable[[], Coroutine[Any, Any, None]]
    forecasts: ForecastSource


def in_process(settings: Settings, kubeconfig: str | None, metrics: Metrics) -> InProcess:
    """The reconciler as a background task of ``greenlight serve --with-reconciler``, its
    metrics in the webhook's registry. Raises ``KubeError`` (a ValueError for serve) when no
    cluster is configured. The source is closed when the task ends."""
    from webhook.reconciler.kube import Kube, KubeError
    from webhook.reconciler.service import ReconcilerService
    from webhook.telemetry.metrics import ReconcilerMetrics

    try:
        kube = Kube.connect(
            kubeconfig,
            pool_size=settings.reconciler.api_workers + 4,
            timeout_s=settings.reconciler.api_timeout_s,
        )
    except KubeError as e:
        raise ValueError(f"--with-reconciler: {e}") from e
    service = ReconcilerService(
        settings,
        kube,
        metrics=ReconcilerMetrics(metrics.registry),
        webhook_metrics=metrics,
    )

    async def run() -> None:
        import logging
        import os
        import signal

        try:
            await service.run()
        except Exception:
            # A dead reconciler must not hide behind a live webhook (which also shares its
            # forecast source, closed now): stop the whole server, so that its supervisor (the
            # kubelet) restarts both. Cancellation at shutdown is not an Exception.
            logging.getLogger(__name__).exception("the in-process reconciler stopped")
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            logging.getLogger(__name__).error("the in-process reconciler stopped unasked")
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            kube.close()

    return InProcess(run, service.source)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    from pydantic import ValidationError

    from webhook.carbon.base import ProviderError
    from webhook.config.settings import load_settings
    from webhook.reconciler.kube import Kube, KubeError
    from webhook.reconciler.service import ReconcilerService

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


BENCH_DESCRIPTION = """\
The reconciler at scale on a real apiserver (a local control plane unless --kubeconfig is
given): creates --jobs deferred Jobs (suspended, with the webhook's plan annotations, planned
releases spread over --spread-s seconds), runs `greenlight reconcile`, kills it with SIGKILL once
it tracks them all and starts it again, then measures: release lateness (first seen released
by a watch here, minus the Job's release target) p50/p99, apiserver requests on Jobs per
release, peak memory (VmHWM) of the reconciler, and its relist time after the restart.
"""


def register_bench(benches: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``greenlight bench reconcile`` (registered by ``greenlight bench``)."""
    parser = benches.add_parser(
        "reconcile",
        help="reconciler at scale: release lateness, requests per release, memory, relist time",
        description=BENCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="deferred Jobs (10000)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--kubeconfig", help="a cluster to use (default: start a local control plane)"
    )
    parser.add_argument(
        "--spread-s", type=float, default=120.0, help="planned releases spread over (120 s)"
    )
    parser.add_argument(
        "--lead-s",
        type=float,
        help="seconds from the start to the first planned release (default 60 + 0.012 x jobs)",
    )
    parser.add_argument("--creators", type=int, default=8, help="threads creating the Jobs (8)")
    parser.set_defaults(func=run_bench)


BENCH_JSON_KEYS = (
    "jobs",
    "lateness_p50_s",
    "lateness_p99_s",
    "requests_per_release",
    "peak_rss_mb",
    "relist_s",
)


def run_bench(args: argparse.Namespace) -> int:
    import json
    import sys

    from webhook.devtools.localcluster import ControlPlaneError
    from webhook.devtools.reconcile_bench import BenchConfig, run_benchmark
    from webhook.reconciler.kube import KubeError

    config = BenchConfig(
        jobs=args.jobs,
        spread_s=args.spread_s,
        lead_s=args.lead_s,
        creators=args.creators,
        kubeconfig=args.kubeconfig,
    )
    try:
        results = run_benchmark(config)
    except (ControlPlaneError, KubeError, TimeoutError, OSError) as e:
        print(f"greenlight bench reconcile: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({key: results[key] for key in BENCH_JSON_KEYS}))
        return 0
    for key, value in results.items():
        print(f"{key:<28}{value}")
    return 0

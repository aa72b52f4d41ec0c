"""The webhook's HTTP surface (FastAPI): routes decode, call a pure handler, encode.

``POST /mutate`` and ``POST /validate`` take AdmissionReview v1; a body that is not one is
HTTP 400 with the reason, never a 5xx. An exception inside a handler is answered ``allowed``
with no patch (fail open: the worst case of greenlight is "the Job runs now"), logged and
counted. ``GET /healthz`` (alive), ``GET /readyz`` (certificates loaded and the first forecast
refresh done), ``GET /metrics`` (Prometheus text). The forecast refresher runs in the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from webhook.admission.mutate import Admission, MutationContext
from webhook.admission.namespaces import NamespaceDefaults
from webhook.admission.review import (
    MAX_BODY_BYTES,
    AdmissionRequest,
    AdmissionResponse,
    MalformedReviewError,
    decode_review,
    encode_response,
)
from webhook.admission.tls import ReloadingTLS
from webhook.carbon.refresher import Refreshable, Refresher, WarmForecasts
from webhook.carbon.registry import build_forecast_source
from webhook.config.settings import Settings, load_signing_keys
from webhook.core.cost import build_price_model
from webhook.core.energy import load_catalog
from webhook.telemetry.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

JSON = "application/json"

Handler = Callable[[AdmissionRequest], AdmissionResponse | Awaitable[AdmissionResponse]]
BackgroundTask = Callable[[], Coroutine[Any, Any, None]]


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON)


def _outcome(response: AdmissionResponse) -> str:
    if not response.allowed:
        return "denied"
    return "patched" if response.patch else "allowed"


def admission_route(
    endpoint: str, handler: Handler, metrics: Metrics
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """An async route answering AdmissionReviews with ``handler`` (a pure function, or a
    coroutine function where the answer may wait on I/O)."""
    requests = {
        outcome: metrics.requests.labels(endpoint=endpoint, outcome=outcome)
        for outcome in ("allowed", "patched", "denied", "malformed", "fail_open")
    }
    latency = metrics.latency.labels(endpoint=endpoint)
    fail_open = metrics.fail_open.labels(endpoint=endpoint)

    async def route(request: Request) -> Response:
        started = time.perf_counter()
        try:
            declared = int(request.headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > MAX_BODY_BYTES:
            requests["malformed"].inc()
            return _json(
                {
                    "error": f"request body of {declared} bytes is over the "
                    f"{MAX_BODY_BYTES}-byte limit"
                },
                400,
            )
        body = await request.body()
        try:
            review = decode_review(body)
        except MalformedReviewError as e:
            requests["malformed"].inc()
            return _json({"error": str(e)}, 400)
        try:
            answer = handler(review)
            response = answer if isinstance(answer, AdmissionResponse) else await answer
            outcome = _outcome(response)
        except Exception:
            log.exception(
                "%s failed for %s/%s (uid %s); allowing it unchanged (fail open)",
                endpoint,
                review.namespace,
                review.name,
                review.uid,
            )
            fail_open.inc()
            response = AdmissionResponse(uid=review.uid, allowed=True)
            outcome = "fail_open"
        content = encode_response(response)
        requests[outcome].inc()
        latency.observe(time.perf_counter() - started)
        return Response(content, media_type=JSON)

    return route


def create_app(
    settings: Settings,
    *,
    forecasts: Refreshable | None = None,
    tls: ReloadingTLS | None = None,
    namespaces: NamespaceDefaults | None = None,
    metrics: Metrics | None = None,
    background: Sequence[BackgroundTask] = (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """The webhook app on ``settings``. The edges can be injected: ``forecasts`` (default: the
    configured provider's forecast chain), ``tls`` (the serving certificate; None = not loaded,
    so not ready), ``namespaces`` (defaults kept current by a watch in ``background``),
    ``metrics`` (a fresh registry by default) and ``clock``."""
    metrics = metrics if metrics is not None else Metrics()
    source = forecasts if forecasts is not None else build_forecast_source(settings.providers)
    forecasts = WarmForecasts(source)
    namespaces = namespaces if namespaces is not None else NamespaceDefaults()
    refresher = Refresher(
        forecasts,
        [settings.webhook.zone],
        interval_s=settings.webhook.forecast_refresh_s,
        metrics=metrics,
    )
    context = MutationContext(
        settings=settings,
        catalog=load_catalog(settings.energy),
        prices=build_price_model(settings.cost),
        forecasts=forecasts,
        namespace_defaults=namespaces.get,
        want_zone=refresher.want,
        signing_keys=load_signing_keys(settings),
        fetch_zone=functools.partial(
            refresher.fetch_now, timeout_s=settings.webhook.on_demand_fetch_timeout_s
        ),
    )
    handlers = Admission(context, metrics, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        coroutines = [task() for task in background]
        coroutines.append(refresher.run())
        tasks = [asyncio.create_task(c) for c in coroutines]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(
        title="greenlight webhook",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.refresher = refresher
    app.state.admission = handlers
    app.add_api_route(
        "/mutate", admission_route("mutate", handlers.admit, metrics), methods=["POST"]
    )
    app.add_api_route(
        "/validate", admission_route("validate", handlers.validate, metrics), methods=["POST"]
    )

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = {
            "certificates": tls is not None,
            "forecasts": refresher.first_round.is_set(),
        }
        ready = all(checks.values())
        return _json({"ready": ready, "checks": checks}, 200 if ready else 503)

    app.add_api_route("/metrics", metrics_route(metrics), methods=["GET"])
    return app


def metrics_route(metrics: Metrics) -> Callable[[], Coroutine[Any, Any, Response]]:
    async def route() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return route


def create_metrics_app(metrics: Metrics) -> FastAPI:
    """``/metrics`` alone, for the optional plain-HTTP metrics port."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_api_route("/metrics", metrics_route(metrics), methods=["GET"])
    return app


class _ReloadingTLSConfig(uvicorn.Config):
    """A uvicorn config that serves with a :class:`ReloadingTLS` context instead of building a
    fixed one from the certificate files."""

    def __init__(self, app: FastAPI, tls: ReloadingTLS, **kwargs: Any) -> None:
        super().__init__(
            app, ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file), **kwargs
        )
        self._tls = tls

    def load(self) -> None:
        super().load()
        self.ssl = self._tls.context


def https_server(
    app: FastAPI, tls: ReloadingTLS, *, host: str, port: int, **kwargs: Any
) -> uvicorn.Server:
    """A uvicorn server for ``app`` over HTTPS that picks up rotated certificate files."""
    config = _ReloadingTLSConfig(
        app, tls, host=host, port=port, log_config=None, access_log=False, **kwargs
    )
    return uvicorn.Server(config)

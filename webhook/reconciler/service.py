"""The reconciler wired from settings: the controller, its forecasts and their refresher.

``ReconcilerService(settings, kube).run()`` is what ``greenlight reconcile`` runs, and what
``greenlight serve --with-reconciler`` adds to the webhook's background tasks. Forecasts come
from the configured provider through a :class:`RecordingProvider` (observations recorded into
the intensity history, which answers for the provider when it is down), refreshed in the
background by the webhook's own :class:`Refresher` for every zone a deferred Job names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from webhook.carbon.refresher import Refresher, WarmForecasts
from webhook.carbon.registry import build_provider
from webhook.carbon.source import ForecastSource
from webhook.config.settings import Settings, load_signing_keys
from webhook.core.annotations import Inputs
from webhook.core.cost import build_price_model
from webhook.core.energy import load_catalog
from webhook.core.forecast import ForecastResult
from webhook.reconciler.accounting import Accounting
from webhook.reconciler.controller import Reconciler, ReconcilerAPI, default_identity
from webhook.reconciler.history import IntensityHistory, RecordingProvider
from webhook.reconciler.kueue_check import CheckKnowledge
from webhook.reconciler.kueue_controller import KueueAPI, KueueChecks
from webhook.telemetry.metrics import KueueCheckMetrics, Metrics, ReconcilerMetrics

log = logging.getLogger(__name__)


class ReconcilerService:
    """The reconciler and its forecast refresher, built from ``settings``."""

    def __init__(
        self,
        settings: Settings,
        kube: ReconcilerAPI,
        *,
        metrics: ReconcilerMetrics | None = None,
        webhook_metrics: Metrics | None = None,
        identity: str | None = None,
    ) -> None:
        section = settings.reconciler
        self.metrics = metrics if metrics is not None else ReconcilerMetrics()
        self.history = IntensityHistory(
            points_per_zone=section.history_points_per_zone, max_zones=section.history_max_zones
        )
        self._wanted: set[str] = set()
        # Only the zones of the Jobs it tracks: a webhook sharing this source (serve
        # --with-reconciler) refreshes every zone a Job names, and the history holds few zones.
        provider = RecordingProvider(
            build_provider(settings.providers), self.history, records=self._wanted.__contains__
        )
        self.source = ForecastSource(
            provider, cache=settings.providers.cache, settings=settings.providers.forecast
        )
        self.forecasts = WarmForecasts(self.source)
        self.refresher = Refresher(
            self.forecasts,
            [],
            interval_s=settings.webhook.forecast_refresh_s,
            metrics=webhook_metrics or Metrics(self.metrics.registry),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._prices = build_price_model(settings.cost)
        self.reconciler = Reconciler(
            kube,
            settings=section,
            metrics=self.metrics,
            planner=settings.planner,
            forecast_max_age_s=settings.webhook.forecast_max_age_s,
            forecasts=self.forecasts,
            forecast_ready=self.forecasts.ready,
            history=self.history,
            prices=self._prices,
            want_zone=self._want_zone,
            identity=identity,
            signing_keys=load_signing_keys(settings),
            workloads=settings.workloads.workloads,
        )
        self.kueue: KueueChecks | None = None
        if settings.kueue.admission_check_enabled:
            self.kueue = self._kueue_checks(settings, kube, identity)

    def _kueue_checks(
        self, settings: Settings, kube: ReconcilerAPI, identity: str | None
    ) -> KueueChecks:
        """The Kueue AdmissionCheck controller, on the leader's Lease and this forecast."""
        if not isinstance(kube, KueueAPI):
            raise TypeError(f"{type(kube).__name__} cannot serve the Kueue admission check")
        webhook = settings.webhook
        defaults = Inputs(
            skip=False,
            max_delay_s=webhook.max_delay_s,
            expected_duration_s=webhook.expected_duration_s,
            workload=settings.energy.default_workload.value,
            zone=webhook.zone,
            min_savings_pct=settings.planner.min_saving_pct,
            mode=webhook.mode,
        )
        catalog = load_catalog(settings.energy)

        def knowledge(now: datetime) -> CheckKnowledge:
            def forecast(zone: str) -> ForecastResult | None:
                if not self.forecasts.ready(zone):
                    return None
                return self.forecasts.snapshot(zone, now.timestamp())

            return CheckKnowledge(
                now=now,
                defaults=defaults,
                catalog=catalog,
                energy=settings.energy,
                planner=settings.planner,
                forecast=forecast,
                forecast_max_age_s=webhook.forecast_max_age_s,
                min_wait_s=webhook.min_wait_s,
                recheck_s=settings.kueue.recheck_s,
                prices=self._prices,
            )

        return KueueChecks(
            kube,
            settings=settings.kueue,
            metrics=KueueCheckMetrics(self.metrics.registry),
            knowledge=knowledge,
            want_zone=self._want_zone,
            leading=self.reconciler.leading,
            identity=identity or settings.reconciler.identity or default_identity(),
            # The process stops (and is restarted) rather than run without its check.
            on_failure=self.reconciler.stop,
            observed=self.history.series,
            on_accounted=self._accounted,
        )

    def _accounted(self, namespace: str, run: Accounting) -> None:
        """A finished Kueue Workload counts like a finished deferred Job."""
        self.metrics.finished_run(namespace, run.emissions_g, run.emissions_at_admission_g)

    def _want_zone(self, zone: str) -> None:
        self._wanted.add(zone)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.refresher.want, zone)

    async def run(self) -> None:
        """Reconcile until cancelled (or until a reconciler thread dies: then raise)."""
        self._loop = asyncio.get_running_loop()
        refreshing = asyncio.create_task(self.refresher.run())
        try:
            await asyncio.to_thread(self.reconciler.start)
            if self.kueue is not None:
                self.kueue.start()
            await asyncio.to_thread(self.reconciler.wait_stopped)
            if self.reconciler.failure is not None:
                raise RuntimeError("the reconciler stopped") from self.reconciler.failure
            if self.kueue is not None and self.kueue.failure is not None:
                raise RuntimeError("the Kueue admission check stopped") from self.kueue.failure
        finally:
            if self.kueue is not None:
                await asyncio.to_thread(self.kueue.stop)
            refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refreshing
            await asyncio.to_thread(self.reconciler.stop)
            await self.source.aclose()

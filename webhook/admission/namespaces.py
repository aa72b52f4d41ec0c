"""Per-namespace defaults of greenlight's inputs, from Namespace annotations.

A Namespace carries the same ``greenlight.dev/*`` keys as a Job; they are the defaults for
Jobs in it. The pure part (:func:`namespace_inputs`, :class:`NamespaceDefaults`) maps
annotations to defaults; :class:`NamespaceWatch` is the thin adapter that keeps the map current
from a cluster (list + watch Namespaces). Without a cluster the map stays empty and the global
defaults apply. A bad annotation on a Namespace is logged and ignored (that key only): a
namespace default must never make admission fail.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from webhook.core.annotations import Inputs, parse_inputs

log = logging.getLogger(__name__)


def namespace_inputs(name: str, annotations: Mapping[str, str]) -> Inputs:
    """The defaults a Namespace's annotations give its Jobs (bad values logged and dropped)."""
    parsed = parse_inputs(annotations)
    for error in parsed.errors:
        log.warning("namespace %s: ignoring bad default %s", name, error)
    return parsed.inputs


class NamespaceDefaults:
    """Namespace name -> the defaults it gives (empty for a namespace not seen)."""

    def __init__(self) -> None:
        self._defaults: dict[str, Inputs] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str) -> Inputs:
        return self._defaults.get(namespace, _NONE)

    def put(self, namespace: str, annotations: Mapping[str, str]) -> None:
        inputs = namespace_inputs(namespace, annotations)
        with self._lock:
            if inputs == _NONE:
                self._defaults.pop(namespace, None)
            else:
                self._defaults[namespace] = inputs

    def remove(self, namespace: str) -> None:
        with self._lock:
            self._defaults.pop(namespace, None)

    def replace_all(self, namespaces: Mapping[str, Mapping[str, str]]) -> None:
        fresh = {name: namespace_inputs(name, a) for name, a in namespaces.items()}
        with self._lock:
            self._defaults = {name: inputs for name, inputs in fresh.items() if inputs != _NONE}


_NONE = Inputs()


class NamespaceWatch:
    """Keeps :class:`NamespaceDefaults` in step with the cluster's Namespaces.

    The ``kubernetes`` client is synchronous; the list + watch loop runs in a worker thread and
    relists after any error (including 410 Gone) with a short back-off.
    """

    def __init__(
        self, defaults: NamespaceDefaults, *, kubeconfig: str | None = None, retry_s: float = 5.0
    ) -> None:
        self._defaults = defaults
        self._kubeconfig = kubeconfig
        self._retry_s = retry_s
        self._stop = threading.Event()

    async def run(self) -> None:
        """Watch until cancelled (the worker is a daemon thread: it never holds up exit)."""
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def work() -> None:
            try:
                self._loop()
            finally:
                loop.call_soon_threadsafe(finished.set)

        threading.Thread(target=work, name="namespace-watch", daemon=True).start()
        try:
            await finished.wait()
        finally:
            self._stop.set()

    def _loop(self) -> None:
        import kubernetes  # noqa: PLC0415 (only with a cluster)

        # The client's generated types mark every field optional; handled as plain data here.
        client: Any = kubernetes.client
        config: Any = kubernetes.config
        watch: Any = kubernetes.watch

        try:
            if self._kubeconfig:
                config.load_kube_config(config_file=self._kubeconfig)
            else:
                config.load_incluster_config()
        except Exception as e:  # the client raises several unrelated types here
            log.info("no cluster reachable (%s): namespace defaults are the global ones", e)
            return
        api: Any = client.CoreV1Api()
        while not self._stop.is_set():
            try:
                listing: Any = api.list_namespace(_request_timeout=30)
                self._defaults.replace_all(
                    {ns.metadata.name: dict(ns.metadata.annotations or {}) for ns in listing.items}
                )
                stream = watch.Watch().stream(
                    api.list_namespace,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                    _request_timeout=90,
                )
                for event in stream:
                    _apply(self._defaults, event)
                    if self._stop.is_set():
                        return
            except Exception as e:  # relist on anything: 410 Gone, connection loss
                log.warning("namespace watch interrupted, relisting: %s", e)
                self._stop.wait(self._retry_s)


def _apply(defaults: NamespaceDefaults, event: Mapping[str, Any]) -> None:
    obj = event.get("object")
    metadata = getattr(obj, "metadata", None)
    if metadata is None:
        return
    if event.get("type") == "DELETED":
        defaults.remove(metadata.name)
    else:
        defaults.put(metadata.name, dict(metadata.annotations or {}))

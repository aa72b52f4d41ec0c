"""The reconciler's Kubernetes adapter: the only reconciler module that imports ``kubernetes``.

Objects travel as plain JSON (dicts), never as the client's generated models: every call asks
for the raw response (``_preload_content=False``) and parses it with orjson. That keeps a list
of 10,000 Jobs cheap in time and memory, and a watch stream is read line by line.

What it offers: paginated lists and a watch of Jobs across namespaces (with bookmarks; a
``410 Gone`` surfaces as :class:`GoneError` so the caller relists), a merge-PATCH of a Job (the
caller puts ``metadata.resourceVersion`` in the patch as a precondition: a concurrent change
surfaces as :class:`ConflictError`), Events, the leader-election Lease (CoordinationV1Api) and
the intensity-history ConfigMap, plus what the benchmark needs (create Jobs and Namespaces, the
apiserver's request counters). Every client, HTTP or connection error is wrapped once here into
:class:`KubeError` or a subclass naming the call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.workloads.base import Workload
from webhook.workloads.job import JOB

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the call and the answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConflictError(KubeError):
    """409 Conflict: the object changed since the resourceVersion the write was based on."""


class NotFoundError(KubeError):
    """404: the object (or its namespace) does not exist."""


class AlreadyExistsError(KubeError):
    """409 AlreadyExists on a create."""


class GoneError(KubeError):
    """410 Gone: the resourceVersion a watch resumed from is too old; relist."""


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, the list's resourceVersion and the continue token."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None


def _reason(body: object) -> tuple[str, str]:
    try:
        status = orjson.loads(body) if isinstance(body, str | bytes) and body else {}
    except orjson.JSONDecodeError:
        return "", str(body)[:300]
    if not isinstance(status, dict):
        return "", ""
    return str(status.get("reason", "")), str(status.get("message", ""))


def _wrap(what: str, error: Exception) -> KubeError:
    """The project's exception for a client error during ``what``."""
    if isinstance(error, ApiException):
        status = error.status
        reason, message = _reason(error.body)
        text = f"{what}: HTTP {status} {reason or error.reason}: {message}".rstrip(": ")
        if status == 409 and reason == "AlreadyExists":
            return AlreadyExistsError(text, status)
        if status == 409:
            return ConflictError(text, status)
        if status == 404:
            return NotFoundError(text, status)
        if status == 410:
            return GoneError(text, status)
        return KubeError(text, status)
    return KubeError(f"{what}: {type(error).__name__}: {error}")


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    try:
        yield
    except KubeError:
        raise
    except Exception as e:  # the client raises ApiException, urllib3 and socket errors
        raise _wrap(what, e) from e


def _json(response: Any) -> Any:
    try:
        data = response.data
    finally:
        response.release_conn()
    return orjson.loads(data)


class WatchStream:
    """The events of one watch request, as ``(type, object)``; ``close()`` from another thread
    ends the iteration. ``ERROR`` events raise (:class:`GoneError` for 410)."""

    def __init__(self, response: Any, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):
            shutdown = getattr(self._response, "shutdown", None)
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(Exception):
            self._response.close()

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        buffer = b""
        try:
            with _calling(self._what):
                for chunk in self._response.stream(65536, decode_content=True):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield self._event(line)
        except KubeError:
            if self._closed.is_set():
                return
            raise
        finally:
            with contextlib.suppress(Exception):
                self._response.release_conn()

    def _event(self, line: bytes) -> tuple[str, dict[str, Any]]:
        event = orjson.loads(line)
        kind = str(event.get("type", ""))
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            text = f"{self._what}: watch error {code} {obj.get('reason')}: {obj.get('message')}"
            if code == 410:
                raise GoneError(text, 410)
            raise KubeError(text, code if isinstance(code, int) else None)
        return kind, obj


class Kube:
    """The calls the reconciler, ``greenlight report`` and the benchmark make."""

    def __init__(self, api_client: Any, *, timeout_s: float = 30.0) -> None:
        self._api = api_client
        self._timeout = timeout_s
        self._batch: Any = client.BatchV1Api(api_client)
        self._core: Any = client.CoreV1Api(api_client)
        self._coordination: Any = client.CoordinationV1Api(api_client)
        self._custom: Any = client.CustomObjectsApi(api_client)

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, *, pool_size: int = 16, timeout_s: float = 30.0
    ) -> Kube:
        """A client from ``kubeconfig``, else in-cluster credentials when running in a Pod,
        else the default kubeconfig ($KUBECONFIG, ~/.kube/config)."""
        configuration = client.Configuration()
        loader: Any = config
        try:
            if kubeconfig:
                loader.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                loader.load_incluster_config(client_configuration=configuration)
            else:
                loader.load_kube_config(client_configuration=configuration)
        except Exception as e:  # ConfigException, file and YAML errors
            where = kubeconfig or "in-cluster or default kubeconfig"
            raise KubeError(f"no usable cluster configuration ({where}): {e}") from e
        configuration.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(configuration), timeout_s=timeout_s)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api.close()

    # -- Jobs, and the other workload kinds --------------------------------------------------

    def all_objects(self, workload: Workload, *, namespace: str | None = None) -> list[Any]:
        """Every object of ``workload``'s kind (of ``namespace``, else of all), page by page;
        :class:`NotFoundError` when the kind is not served (its CRD is not installed)."""
        api = self.for_workload(workload)
        objects: list[Any] = []
        token: str | None = None
        while True:
            page = api.list_jobs(limit=500, continue_token=token, namespace=namespace)
            objects.extend(page.items)
            token = page.continue_token
            if not token:
                return objects

    def custom_resource(self, group: str, version: str, plural: str) -> CustomWorkloads:
        """The list/watch/get/patch calls on one custom resource (Kueue's Workloads ...)."""
        return CustomWorkloads(self, group, version, plural)

    def for_workload(self, workload: Workload) -> Kube | CustomWorkloads:
        """The list/watch/get/patch calls for ``workload``'s objects: this adapter itself for
        ``batch/v1`` Jobs, the custom-objects API for every other kind."""
        if workload is JOB:
            return self
        gvk = workload.gvk
        return CustomWorkloads(self, gvk.group, gvk.version, workload.plural)

    def list_jobs(
        self, *, limit: int, continue_token: str | None = None, namespace: str | None = None
    ) -> Page:
        what = f"list jobs in {namespace}" if namespace else "list jobs in all namespaces"
        kwargs: dict[str, Any] = {
            "limit": limit,
            "_preload_content": False,
            "_request_timeout": self._timeout,
        }
        if continue_token:
            kwargs["_continue"] = continue_token
        with _calling(what):
            if namespace:
                body = _json(self._batch.list_namespaced_job(namespace, **kwargs))
            else:
                body = _json(self._batch.list_job_for_all_namespaces(**kwargs))
        metadata = body.get("metadata") or {}
        return Page(
            list(body.get("items") or []),
            str(metadata.get("resourceVersion", "")),
            metadata.get("continue") or None,
        )

    def watch_jobs(self, resource_version: str, *, timeout_s: int) -> WatchStream:
        """Job events in all namespaces after ``resource_version`` (bookmarks included), for
        at most ``timeout_s`` seconds."""
        what = "watch jobs in all namespaces"
        with _calling(what):
            response = self._batch.list_job_for_all_namespaces(
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                _preload_content=False,
                _request_timeout=(self._timeout, timeout_s + self._timeout),
            )
        return WatchStream(response, what)

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        with _calling(f"get job {namespace}/{name}"):
            body: dict[str, Any] = _json(
                self._batch.read_namespaced_job(
                    name, namespace, _preload_content=False, _request_timeout=self._timeout
                )
            )
        return body

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a Job; the updated Job."""
        with _calling(f"patch job {namespace}/{name}"):
            body: dict[str, Any] = _json(
                self._batch.patch_namespaced_job(
                    name,
                    namespace,
                    patch,
                    _preload_content=False,
                    _content_type=MERGE_PATCH,
                    _request_timeout=self._timeout,
                )
            )
        return body

    def create_job(self, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
        name = (job.get("metadata") or {}).get("name", "")
        with _calling(f"create job {namespace}/{name}"):
            body: dict[str, Any] = _json(
                self._batch.create_namespaced_job(
                    namespace, job, _preload_content=False, _request_timeout=self._timeout
                )
            )
        return body

    # -- Events ------------------------------------------------------------------------------

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        name = (event.get("metadata") or {}).get("name", "")
        with _calling(f"create event {namespace}/{name}"):
            _json(
                self._core.create_namespaced_event(
                    namespace, event, _preload_content=False, _request_timeout=self._timeout
                )
            )

    def list_events(
        self, *, field_selector: str, limit: int, continue_token: str | None = None
    ) -> Page:
        kwargs: dict[str, Any] = {
            "field_selector": field_selector,
            "limit": limit,
            "_preload_content": False,
            "_request_timeout": self._timeout,
        }
        if continue_token:
            kwargs["_continue"] = continue_token
        with _calling(f"list events ({field_selector})"):
            body = _json(self._core.list_event_for_all_namespaces(**kwargs))
        metadata = body.get("metadata") or {}
        return Page(
            list(body.get("items") or []),
            str(metadata.get("resourceVersion", "")),
            metadata.get("continue") or None,
        )

    # -- Lease -------------------------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when it does not exist."""
        try:
            with _calling(f"get lease {namespace}/{name}"):
                body: dict[str, Any] = _json(
                    self._coordination.read_namespaced_lease(
                        name, namespace, _preload_content=False, _request_timeout=self._timeout
                    )
                )
        except NotFoundError:
            return None
        return body

    def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        with _calling(f"create lease {namespace}"):
            body: dict[str, Any] = _json(
                self._coordination.create_namespaced_lease(
                    namespace, lease, _preload_content=False, _request_timeout=self._timeout
                )
            )
        return body

    def replace_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> dict[str, Any]:
        """Replace the Lease; ``lease.metadata.resourceVersion`` makes it conditional."""
        with _calling(f"update lease {namespace}/{name}"):
            body: dict[str, Any] = _json(
                self._coordination.replace_namespaced_lease(
                    name, namespace, lease, _preload_content=False, _request_timeout=self._timeout
                )
            )
        return body

    # -- ConfigMap ---------------------------------------------------------------------------

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            with _calling(f"get configmap {namespace}/{name}"):
                body: dict[str, Any] = _json(
                    self._core.read_namespaced_config_map(
                        name, namespace, _preload_content=False, _request_timeout=self._timeout
                    )
                )
        except NotFoundError:
            return None
        return body

    def create_config_map(self, namespace: str, config_map: dict[str, Any]) -> None:
        with _calling(f"create configmap {namespace}"):
            _json(
                self._core.create_namespaced_config_map(
                    namespace, config_map, _preload_content=False, _request_timeout=self._timeout
                )
            )

    def replace_config_map(self, namespace: str, name: str, config_map: dict[str, Any]) -> None:
        with _calling(f"update configmap {namespace}/{name}"):
            _json(
                self._core.replace_namespaced_config_map(
                    name,
                    namespace,
                    config_map,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
            )

    # -- Custom resources (the Kueue AdmissionCheck) ------------------------------------------

    def served_versions(self, group: str) -> list[str]:
        """The versions of API ``group`` the apiserver serves, by discovery (empty: none)."""
        with _calling(f"discover API group {group}"):
            body = _json(
                client.ApisApi(self._api).get_api_versions(
                    _preload_content=False, _request_timeout=self._timeout
                )
            )
        for entry in body.get("groups") or []:
            if entry.get("name") == group:
                return [str(v.get("version")) for v in entry.get("versions") or []]
        return []

    def list_custom(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        limit: int,
        continue_token: str | None = None,
        namespace: str | None = None,
    ) -> Page:
        """One page of custom objects of ``namespace``, else of every namespace (or of
        cluster-scoped ones)."""
        kwargs: dict[str, Any] = {
            "limit": limit,
            "_preload_content": False,
            "_request_timeout": self._timeout,
        }
        if continue_token:
            kwargs["_continue"] = continue_token
        with _calling(f"list {plural}.{group}/{version}"):
            if namespace:
                body = _json(
                    self._custom.list_namespaced_custom_object(
                        group, version, namespace, plural, **kwargs
                    )
                )
            else:
                body = _json(
                    self._custom.list_cluster_custom_object(group, version, plural, **kwargs)
                )
        metadata = body.get("metadata") or {}
        return Page(
            list(body.get("items") or []),
            str(metadata.get("resourceVersion", "")),
            metadata.get("continue") or None,
        )

    def watch_custom(
        self, group: str, version: str, plural: str, resource_version: str, *, timeout_s: int
    ) -> WatchStream:
        what = f"watch {plural}.{group}/{version}"
        with _calling(what):
            response = self._custom.list_cluster_custom_object(
                group,
                version,
                plural,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                _preload_content=False,
                _request_timeout=(self._timeout, timeout_s + self._timeout),
            )
        return WatchStream(response, what)

    def get_custom(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any]:
        with _calling(f"get {plural}.{group} {namespace}/{name}"):
            body: dict[str, Any] = _json(
                self._custom.get_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
            )
        return body

    def patch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str,
        name: str,
        patch: dict[str, Any],
    ) -> dict[str, Any]:
        """Merge-patch a namespaced custom object (a resourceVersion in the patch is a
        precondition: :class:`ConflictError`)."""
        with _calling(f"patch {plural}.{group} {namespace}/{name}"):
            body: dict[str, Any] = _json(
                self._custom.patch_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    patch,
                    _preload_content=False,
                    _content_type=MERGE_PATCH,
                    _request_timeout=self._timeout,
                )
            )
        return body

    def apply_custom_status(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        field_manager: str,
    ) -> dict[str, Any]:
        """Server-side apply (forced) of ``body`` to the status subresource: the fields in
        ``body`` become ``field_manager``'s, every other field stays its owner's (list-maps
        such as a Workload's ``status.admissionChecks`` merge by key)."""
        where = f"{namespace}/{name}" if namespace else name
        common: dict[str, Any] = {
            "field_manager": field_manager,
            "force": True,
            "_preload_content": False,
            "_content_type": APPLY_PATCH,
            "_request_timeout": self._timeout,
        }
        with _calling(f"apply status of {plural}.{group} {where}"):
            if namespace:
                response = self._custom.patch_namespaced_custom_object_status(
                    group, version, namespace, plural, name, body, **common
                )
            else:
                response = self._custom.patch_cluster_custom_object_status(
                    group, version, plural, name, body, **common
                )
            result: dict[str, Any] = _json(response)
        return result

    def get_object(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any]:
        """Any namespaced object of a named API group (a Kueue Workload's owner: a Job, a
        JobSet ...); the core group is not served here."""
        group, _, version = api_version.rpartition("/")
        if not group:
            raise KubeError(f"get {plural} {namespace}/{name}: the core API group is not served")
        return self.get_custom(group, version, plural, namespace, name)

    def namespace_annotations(self, name: str) -> dict[str, str]:
        with _calling(f"get namespace {name}"):
            body = _json(
                self._core.read_namespace(
                    name, _preload_content=False, _request_timeout=self._timeout
                )
            )
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return {str(k): str(v) for k, v in annotations.items()}

    # -- For the benchmark -------------------------------------------------------------------

    def create_namespace(self, name: str) -> None:
        try:
            with _calling(f"create namespace {name}"):
                _json(
                    self._core.create_namespace(
                        {"metadata": {"name": name}},
                        _preload_content=False,
                        _request_timeout=self._timeout,
                    )
                )
        except AlreadyExistsError:
            pass

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(NotFoundError), _calling(f"delete namespace {name}"):
            _json(
                self._core.delete_namespace(
                    name, _preload_content=False, _request_timeout=self._timeout
                )
            )

    def apiserver_metrics(self) -> str:
        """The apiserver's ``/metrics`` text (needs the permission to read it)."""
        with _calling("get apiserver /metrics"):
            request = self._api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
            response = self._api.call_api(*request, _request_timeout=self._timeout)
            response.read()
            return str(response.data.decode())


class CustomWorkloads:
    """The Job calls of :class:`Kube` (``list_jobs``, ``watch_jobs``, ``get_job``,
    ``patch_job``) for a resource served by a custom resource definition (a JobSet,
    PyTorchJob ... or Kueue's Workloads), so one list-and-watch loop and one controller
    interface serve every kind."""

    def __init__(self, kube: Kube, group: str, version: str, plural: str) -> None:
        self._kube = kube
        self._resource = (group, version, plural)

    def list_jobs(
        self, *, limit: int, continue_token: str | None = None, namespace: str | None = None
    ) -> Page:
        return self._kube.list_custom(
            *self._resource, limit=limit, continue_token=continue_token, namespace=namespace
        )

    def watch_jobs(self, resource_version: str, *, timeout_s: int) -> WatchStream:
        return self._kube.watch_custom(*self._resource, resource_version, timeout_s=timeout_s)

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return self._kube.get_custom(*self._resource, namespace, name)

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._kube.patch_custom(*self._resource, namespace=namespace, name=name, patch=patch)

"""``greenlight release-all``: release every workload greenlight is holding (the uninstall hook).

A clean uninstall must leave no workload suspended: once the reconciler is gone, nothing would
ever release it. The chart runs this as a Helm ``pre-delete`` hook (and
``manifests/uninstall.yaml`` for kubectl users). With ``--disable-webhook`` it first deletes
greenlight's MutatingWebhookConfiguration, so nothing is deferred after the sweep; then, for each
kind in ``workloads.enabled`` (Jobs through the batch API, JobSets, PyTorchJobs, ... through the
custom-objects API; a kind whose CRD is not installed is skipped with a log line), every object
for which :func:`webhook.workloads.ownership.greenlight_owns` holds gets the reconciler's release
PATCH (resume at the kind's suspend path, ``released-at``, ``release-reason: uninstall``),
guarded by the resourceVersion it was read at, and a ``Released`` Event on it. An object changed
meanwhile is read again and released only if greenlight still owns it (the reconciler or its
user may have released it first). With signing keys configured (``provenance.keys_file``, as the
chart mounts them), only objects whose decision greenlight signed are released: a forged one is
left as its author made it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from webhook.config.settings import load_settings, load_signing_keys
from webhook.core import annotations as keys
from webhook.core.annotations import format_time
from webhook.core.provenance import KeyFileError, SigningKeys
from webhook.workloads.base import Workload, set_suspend
from webhook.workloads.job import JOB
from webhook.workloads.ownership import greenlight_owns

log = logging.getLogger(__name__)

UNINSTALL = "uninstall"
_MERGE_PATCH = "application/merge-patch+json"
_PAGE = 500
_ATTEMPTS = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "release-all",
        help="release every workload greenlight deferred (run on uninstall)",
        description=(
            "Release every workload (each kind in workloads.enabled) that greenlight deferred "
            "and still holds suspended, with release-reason REASON and a Released Event. Run "
            "before uninstalling greenlight (the Helm chart's pre-delete hook does), so that "
            "nothing stays suspended."
        ),
    )
    parser.add_argument("--reason", default=UNINSTALL, help=f"release reason ({UNINSTALL})")
    parser.add_argument(
        "--disable-webhook",
        metavar="NAME",
        help="first delete the MutatingWebhookConfiguration NAME (no deferrals after the sweep)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster)")
    parser.set_defaults(func=run)


def release_patch(
    job: Mapping[str, Any], reason: str, now: datetime, workload: Workload = JOB
) -> dict[str, Any]:
    """The reconciler's release PATCH (a JSON merge patch): resume the object at its kind's
    suspend path and record when and why, valid only for the version that was read (409
    Conflict otherwise)."""
    metadata = job.get("metadata") or {}
    return {
        "metadata": {
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {keys.RELEASED_AT: format_time(now), keys.RELEASE_REASON: reason},
        },
        **set_suspend(workload, False),
    }


def release_event(
    job: Mapping[str, Any], reason: str, now: datetime, workload: Workload = JOB
) -> dict[str, Any]:
    """The core/v1 ``Released`` Event on ``job`` (a ``workload``), named as the reconciler names
    its own (name, reason, uid prefix), so an object gets at most one Released Event whoever
    released it."""
    metadata = job.get("metadata") or {}
    name, namespace, uid = (str(metadata.get(k, "")) for k in ("name", "namespace", "uid"))
    tail = f".greenlight-released-{uid[:8]}"
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name[: 253 - len(tail)] + tail, "namespace": namespace},
        "involvedObject": {
            "apiVersion": workload.gvk.api_version,
            "kind": workload.gvk.kind,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": "Released",
        "message": f"Released at {stamp} (reason {reason}): greenlight is being removed",
        "type": "Normal",
        "source": {"component": "greenlight"},
        "reportingComponent": "greenlight.dev/release-all",
        "reportingInstance": "greenlight-release-all",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


@dataclass
class Summary:
    released: list[str] = field(default_factory=list)
    released_elsewhere: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_kinds: list[str] = field(default_factory=list)


class KindNotServedError(Exception):
    """The apiserver does not serve a workload kind (its CRD is not installed)."""

    def __init__(self, workload: Workload) -> None:
        gvk = workload.gvk
        super().__init__(f"{workload.plural}.{gvk.group}/{gvk.version} is not served")
        self.workload = workload


class _Cluster:
    """The few API calls release-all makes (``kubernetes`` client, plain dicts)."""

    def __init__(self, kubeconfig: str | None) -> None:
        import kubernetes

        self._k8s: Any = kubernetes
        config: Any = kubernetes.config
        if kubeconfig:
            self._api: Any = config.new_client_from_config(config_file=kubeconfig)
        else:
            config.load_incluster_config()
            self._api = kubernetes.client.ApiClient()
        self._batch: Any = kubernetes.client.BatchV1Api(self._api)
        self._core: Any = kubernetes.client.CoreV1Api(self._api)
        self._admission: Any = kubernetes.client.AdmissionregistrationV1Api(self._api)
        self._custom: Any = kubernetes.client.CustomObjectsApi(self._api)
        self.ApiException: type[Exception] = kubernetes.client.ApiException

    def close(self) -> None:
        self._api.close()

    def delete_mutating_configuration(self, name: str) -> bool:
        try:
            self._admission.delete_mutating_webhook_configuration(name)
        except self.ApiException as e:
            if getattr(e, "status", None) == 404:
                return False
            raise
        return True

    def items(self, workload: Workload) -> Iterator[dict[str, Any]]:
        """Every object of ``workload``'s kind, page by page; raises :class:`KindNotServedError`
        when the apiserver does not serve it (404: its CRD is not installed)."""
        token: str | None = None
        while True:
            try:
                response = self._list(workload, token)
            except self.ApiException as e:
                if getattr(e, "status", None) == 404:
                    raise KindNotServedError(workload) from e
                raise
            page = json.loads(response.data)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def _list(self, workload: Workload, token: str | None) -> Any:
        if workload is JOB:
            return self._batch.list_job_for_all_namespaces(
                limit=_PAGE, _continue=token, _preload_content=False
            )
        gvk = workload.gvk
        kwargs: dict[str, Any] = {"limit": _PAGE, "_preload_content": False}
        if token:
            kwargs["_continue"] = token
        return self._custom.list_cluster_custom_object(
            gvk.group, gvk.version, workload.plural, **kwargs
        )

    def read(self, workload: Workload, namespace: str, name: str) -> dict[str, Any] | None:
        gvk = workload.gvk
        try:
            if workload is JOB:
                response = self._batch.read_namespaced_job(name, namespace, _preload_content=False)
            else:
                response = self._custom.get_namespaced_custom_object(
                    gvk.group, gvk.version, namespace, workload.plural, name, _preload_content=False
                )
        except self.ApiException as e:
            if getattr(e, "status", None) == 404:
                return None
            raise
        obj: dict[str, Any] = json.loads(response.data)
        return obj

    def patch(
        self, workload: Workload, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> bool:
        """False on a conflict (the object changed since it was read)."""
        gvk = workload.gvk
        try:
            if workload is JOB:
                self._batch.patch_namespaced_job(name, namespace, patch, _content_type=_MERGE_PATCH)
            else:
                self._custom.patch_namespaced_custom_object(
                    gvk.group,
                    gvk.version,
                    namespace,
                    workload.plural,
                    name,
                    patch,
                    _content_type=_MERGE_PATCH,
                )
        except self.ApiException as e:
            if getattr(e, "status", None) == 409:
                return False
            raise
        return True

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        try:
            self._core.create_namespaced_event(namespace, event)
        except self.ApiException as e:
            if getattr(e, "status", None) != 409:  # 409: recorded before
                raise


def held(
    job: Mapping[str, Any], signing_keys: SigningKeys | None, workload: Workload = JOB
) -> bool:
    """greenlight holds ``job`` (a ``workload``): it owns it and (with keys) signed its
    decision."""
    if not greenlight_owns(job, workload):
        return False
    metadata = job.get("metadata")
    return signing_keys is None or (
        isinstance(metadata, Mapping) and signing_keys.problem(metadata) is None
    )


def _release_one(
    cluster: _Cluster,
    workload: Workload,
    job: dict[str, Any],
    reason: str,
    now: datetime,
    *,
    summary: Summary,
    signing_keys: SigningKeys | None,
) -> None:
    metadata = job.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    key = f"{workload.gvk.kind} {namespace}/{name}"
    current: dict[str, Any] | None = job
    for _attempt in range(_ATTEMPTS):
        if current is None or not held(current, signing_keys, workload):
            summary.released_elsewhere.append(key)
            log.info("release-all %s already released or gone", key)
            return
        if cluster.patch(workload, namespace, name, release_patch(current, reason, now, workload)):
            summary.released.append(key)
            log.info("release-all %s released reason=%s", key, reason)
            try:
                cluster.create_event(namespace, release_event(current, reason, now, workload))
            except cluster.ApiException as e:  # the release stands; the Event is a courtesy
                log.warning("release-all %s: no Event recorded: %s", key, e)
            return
        current = cluster.read(workload, namespace, name)
    summary.failed.append(key)
    log.error("release-all %s kept changing; not released", key)


def _release_kind(
    cluster: _Cluster,
    workload: Workload,
    reason: str,
    now: datetime,
    *,
    summary: Summary,
    signing_keys: SigningKeys | None,
) -> None:
    """Release every held object of one kind. A kind whose CRD is not installed holds none; a
    kind that cannot be listed is reported failed and the sweep goes on with the next."""
    kind = workload.gvk.kind
    try:
        for obj in cluster.items(workload):
            if held(obj, signing_keys, workload):
                try:
                    _release_one(
                        cluster,
                        workload,
                        obj,
                        reason,
                        now,
                        summary=summary,
                        signing_keys=signing_keys,
                    )
                except cluster.ApiException as e:
                    meta = obj.get("metadata") or {}
                    summary.failed.append(f"{kind} {meta.get('namespace')}/{meta.get('name')}")
                    log.error("release-all: %s", e)
    except KindNotServedError as e:
        summary.skipped_kinds.append(kind)
        log.info("release-all kind=%s skipped: %s (its CRD is not installed)", kind, e)
    except cluster.ApiException as e:
        summary.failed.append(f"{kind} (listing failed)")
        log.error("release-all kind=%s: cannot list: %s", kind, e)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC

    try:
        cluster = _Cluster(args.kubeconfig)
    except Exception as e:  # the client raises several unrelated types here
        print(f"greenlight release-all: no cluster: {e}", file=sys.stderr)
        return 1
    try:
        settings = load_settings()
        signing_keys = load_signing_keys(settings)
    except (KeyFileError, ValueError) as e:
        print(f"greenlight release-all: {e}", file=sys.stderr)
        return 1
    summary = Summary()
    try:
        if args.disable_webhook:
            deleted = cluster.delete_mutating_configuration(args.disable_webhook)
            state = "deleted" if deleted else "already absent"
            print(f"MutatingWebhookConfiguration {args.disable_webhook}: {state}")
        now = datetime.now(UTC)
        for workload in settings.workloads.workloads:
            _release_kind(
                cluster, workload, args.reason, now, summary=summary, signing_keys=signing_keys
            )
    except cluster.ApiException as e:
        print(f"greenlight release-all: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.close()
    skipped = f"; kinds not installed: {', '.join(summary.skipped_kinds)}"
    print(
        f"released {len(summary.released)} workload(s) (reason {args.reason}); "
        f"{len(summary.released_elsewhere)} released meanwhile by someone else; "
        f"{len(summary.failed)} failed" + (skipped if summary.skipped_kinds else "")
    )
    for key in summary.failed:
        print(f"not released: {key}", file=sys.stderr)
    return 1 if summary.failed else 0

"""``greenlight release-all``: release every Job greenlight is holding (the uninstall hook).

A clean uninstall must leave no Job suspended: once the reconciler is gone, nothing would ever
release them. The chart runs this as a Helm ``pre-delete`` hook (and ``manifests/uninstall.yaml``
for kubectl users). With ``--disable-webhook`` it first deletes greenlight's
MutatingWebhookConfiguration, so no Job is deferred after the sweep; then every Job for which
:func:`webhook.workloads.ownership.greenlight_owns` holds gets the reconciler's release PATCH
(resume, ``released-at``, ``release-reason: uninstall``), guarded by the resourceVersion it was
read at, and a ``Released`` Event. A Job changed meanwhile is read again and released only if
greenlight still owns it (the reconciler or its user may have released it first). With signing
keys configured (``provenance.keys_file``, as the chart mounts them), only Jobs whose decision
greenlight signed are released: a forged one is left as its author made it.
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
from webhook.workloads.base import set_suspend
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
        help="release every Job greenlight deferred (run on uninstall)",
        description=(
            "Release every Job that greenlight deferred and still holds suspended, with "
            "release-reason REASON and a Released Event. Run before uninstalling greenlight "
            "(the Helm chart's pre-delete hook does), so that no Job stays suspended."
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


def release_patch(job: Mapping[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    """The reconciler's release PATCH (a JSON merge patch): resume the Job and record when and
    why, valid only for the version of the Job that was read (409 Conflict otherwise)."""
    metadata = job.get("metadata") or {}
    return {
        "metadata": {
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {keys.RELEASED_AT: format_time(now), keys.RELEASE_REASON: reason},
        },
        **set_suspend(JOB, False),
    }


def release_event(job: Mapping[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    """The core/v1 ``Released`` Event on ``job``, named as the reconciler names its own (job
    name, reason, uid prefix), so a Job gets at most one Released Event whoever released it."""
    metadata = job.get("metadata") or {}
    name, namespace, uid = (str(metadata.get(k, "")) for k in ("name", "namespace", "uid"))
    tail = f".greenlight-released-{uid[:8]}"
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name[: 253 - len(tail)] + tail, "namespace": namespace},
        "involvedObject": {
            "apiVersion": JOB.gvk.api_version,
            "kind": JOB.gvk.kind,
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

    def jobs(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            response = self._batch.list_job_for_all_namespaces(
                limit=_PAGE, _continue=token, _preload_content=False
            )
            page = json.loads(response.data)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = self._batch.read_namespaced_job(name, namespace, _preload_content=False)
        except self.ApiException as e:
            if getattr(e, "status", None) == 404:
                return None
            raise
        job: dict[str, Any] = json.loads(response.data)
        return job

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> bool:
        """False on a conflict (the Job changed since it was read)."""
        try:
            self._batch.patch_namespaced_job(name, namespace, patch, _content_type=_MERGE_PATCH)
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


def held(job: Mapping[str, Any], signing_keys: SigningKeys | None) -> bool:
    """greenlight holds ``job``: it owns it and (with keys) signed its decision."""
    if not greenlight_owns(job):
        return False
    metadata = job.get("metadata")
    return signing_keys is None or (
        isinstance(metadata, Mapping) and signing_keys.problem(metadata) is None
    )


def _release_one(
    cluster: _Cluster,
    job: dict[str, Any],
    reason: str,
    now: datetime,
    summary: Summary,
    *,
    signing_keys: SigningKeys | None,
) -> None:
    metadata = job.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    key = f"{namespace}/{name}"
    current: dict[str, Any] | None = job
    for _attempt in range(_ATTEMPTS):
        if current is None or not held(current, signing_keys):
            summary.released_elsewhere.append(key)
            log.info("release-all job=%s already released or gone", key)
            return
        if cluster.patch_job(namespace, name, release_patch(current, reason, now)):
            summary.released.append(key)
            log.info("release-all job=%s released reason=%s", key, reason)
            try:
                cluster.create_event(namespace, release_event(current, reason, now))
            except cluster.ApiException as e:  # the release stands; the Event is a courtesy
                log.warning("release-all job=%s: no Event recorded: %s", key, e)
            return
        current = cluster.job(namespace, name)
    summary.failed.append(key)
    log.error("release-all job=%s kept changing; not released", key)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC

    try:
        cluster = _Cluster(args.kubeconfig)
    except Exception as e:  # the client raises several unrelated types here
        print(f"greenlight release-all: no cluster: {e}", file=sys.stderr)
        return 1
    try:
        signing_keys = load_signing_keys(load_settings())
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
        for job in cluster.jobs():
            if held(job, signing_keys):
                try:
                    _release_one(cluster, job, args.reason, now, summary, signing_keys=signing_keys)
                except cluster.ApiException as e:
                    meta = job.get("metadata") or {}
                    summary.failed.append(f"{meta.get('namespace')}/{meta.get('name')}")
                    log.error("release-all: %s", e)
    except cluster.ApiException as e:
        print(f"greenlight release-all: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.close()
    print(
        f"released {len(summary.released)} Job(s) (reason {args.reason}); "
        f"{len(summary.released_elsewhere)} released meanwhile by someone else; "
        f"{len(summary.failed)} failed"
    )
    for key in summary.failed:
        print(f"not released: {key}", file=sys.stderr)
    return 1 if summary.failed else 0

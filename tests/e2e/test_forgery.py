"""Forged greenlight annotations on the real apiserver (issue 17).

An ordinary user, ``mallory`` (impersonated; RBAC: create/get/list Jobs in two namespaces, one
opted in and one not), creates the poison Job from the issue and 200 Jobs with seeded random
greenlight annotations. Those in the opted-in namespace are created before the webhook is
registered (with it registered, the validating webhook refuses them at the door, which is
checked too), so every one of them reaches the reconciler. Beside them, honest Jobs go through
the webhook with a short max-delay. The webhook and ``greenlight reconcile`` share a signing key.

Asserted: the reconciler keeps running; every honest Job is released at its window and by its
deadline; no forged Job is ever patched (same resourceVersion and annotations, still
suspended) or counted; each forged Job marked deferred gets exactly one ForgedDecision Warning,
and the others none.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from e2e_jobs import plain_job
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_reconciler import (  # noqa: F401  (cluster is a fixture)
    FAST,
    NOWHERE,
    Cluster,
    annotations,
    cluster,
    time_of,
)

from webhook.core import annotations as keys
from webhook.devtools.localcluster import wait_until

pytestmark = pytest.mark.e2e

MALLORY = "mallory"
FUZZED = 200
HONEST = 3
SEED = 17

POISON = {keys.DECISION: "deferred", keys.ADMITTED_AT: "9999-12-31T23:59:59-14:00"}

_HOSTILE_VALUES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2025-06-02T18:00:00Z",
    "2025-06-02T18:00:00",
    "nan",
    "-inf",
    "1e400",
    "1" * 400,
    "-1",
    "0",
    "٣٠٠",
    "１２",
    "",
    "true",
    "deferred",
    "window",
    "DE",
    "v1:" + "0" * 64,
    "ü" * 40,
    "24h",
    "99999999999999h",
]
_KEYS = [k for k in (*keys.WEBHOOK_OUTPUT_KEYS, *keys.RECONCILER_OUTPUT_KEYS, *keys.INPUT_KEYS)]


def fuzzed_annotations(rng: random.Random) -> dict[str, str]:
    """Random greenlight annotations; nine in ten say ``decision: deferred``."""
    chosen = rng.sample(_KEYS, rng.randint(0, 10))
    fuzzed = {key: rng.choice(_HOSTILE_VALUES) for key in chosen}
    if rng.random() < 0.9:
        fuzzed[keys.DECISION] = "deferred"
    elif keys.DECISION in fuzzed:
        fuzzed[keys.DECISION] = rng.choice(["run-now", "skipped", "observed", "DEFERRED"])
    return fuzzed


def grant_jobs(api: client.ApiClient, namespace: str, user: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "job-creator"},
            "rules": [
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "job-creator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "job-creator",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def as_user(api: client.ApiClient, user: str) -> client.ApiClient:
    impersonated = client.ApiClient(api.configuration)
    impersonated.set_default_header("Impersonate-User", user)
    return impersonated


def greenlight_events(on: Cluster, namespace: str, uid: str) -> list[Any]:
    """The Events greenlight recorded on a Job (the Job controller records its own)."""
    return [e for e in on.events(namespace, uid) if e.source.component == "greenlight"]


def forged_job(name: str, fuzzed: dict[str, str], rng: random.Random) -> dict[str, Any]:
    job = plain_job(name, fuzzed, suspend=rng.random() < 0.9)
    job["spec"]["template"]["spec"]["nodeSelector"] = NOWHERE
    return job


def test_forged_jobs_never_stop_release_or_count_and_honest_ones_are_released(
    cluster: Cluster,  # noqa: F811  (the fixture imported above; it signs with its own key)
    make_namespace: Callable[..., str],
    register_webhook: Callable[..., Any],
) -> None:
    opted, plain = make_namespace(opted_in=True), make_namespace(opted_in=False)
    for namespace in (opted, plain):
        grant_jobs(cluster.api, namespace, MALLORY)
    mallory = client.BatchV1Api(as_user(cluster.api, MALLORY))
    with pytest.raises(ApiException) as denied:  # the RBAC is an ordinary user's
        mallory.patch_namespaced_job("x", plain, {"metadata": {"labels": {"a": "b"}}})
    assert denied.value.status == 403

    patches_before = cluster.successful_job_patches()
    reconciler = cluster.reconciler()

    # The forged Jobs, before the webhook is registered: all of them reach the reconciler.
    rng = random.Random(SEED)
    forged: dict[tuple[str, str], dict[str, str]] = {(plain, "poison"): POISON}
    mallory.create_namespaced_job(plain, forged_job("poison", POISON, rng))
    for index in range(FUZZED):
        namespace = opted if index % 2 else plain
        fuzzed = fuzzed_annotations(rng)
        mallory.create_namespaced_job(namespace, forged_job(f"forged-{index}", fuzzed, rng))
        forged[(namespace, f"forged-{index}")] = fuzzed
    stored = {where: cluster.job(*where) for where in forged}

    # Honest Jobs, through the webhook: the clean half of the next minute, within 2 minutes.
    webhook = cluster.webhook(register_webhook, zone=FAST)
    # E2E-FAST is dirty in the first half of every minute: admitted there, a Job waits for
    # the clean half (admitted in the clean half, it would rightly run now).
    wait_until(lambda: time.time() % 60 < 15, timeout_s=70, what="the dirty half of a minute")
    honest = [f"honest-{index}" for index in range(HONEST - 1)]
    for index in range(HONEST):
        job = plain_job(
            f"honest-{index}",
            {keys.ZONE: FAST, keys.MAX_DELAY: "2m", keys.EXPECTED_DURATION: "10s"},
        )
        job["spec"]["template"]["spec"]["nodeSelector"] = NOWHERE
        if index == HONEST - 1:  # named by the apiserver: signed over the prefix
            job["metadata"] = {
                "generateName": "honest-gen-",
                "annotations": job["metadata"]["annotations"],
            }
        created = mallory.create_namespaced_job(opted, job)
        assert annotations(created)[keys.DECISION] == "deferred", annotations(created)
        if index == HONEST - 1:
            honest.append(created.metadata.name)
    # What the mutating webhook saw of that one: no name yet, only the prefix (it logs the
    # request's name, or the object's generateName when there is none).
    assert f"decision job={opted}/honest-gen- kind=Job decision=deferred" in webhook.log()

    # With the webhook registered, a forged create in the opted-in namespace is refused.
    with pytest.raises(ApiException) as refused:
        mallory.create_namespaced_job(opted, forged_job("at-the-door", POISON, rng))
    assert f"{keys.ADMITTED_AT}: written by greenlight only, and not signed by it" in str(
        refused.value.body
    )

    for name in honest:
        job = cluster.wait_job(
            opted, name, lambda j: keys.RELEASED_AT in annotations(j), "released", 240
        )
        assert job.spec.suspend is False
        released_at = time_of(job, keys.RELEASED_AT)
        assert released_at >= time_of(job, keys.RELEASE_AT)
        assert released_at <= time_of(job, keys.RELEASE_BY) + timedelta(seconds=2)

    deferred = {
        where for where, fuzzed in forged.items() if fuzzed.get(keys.DECISION) == "deferred"
    }

    def warned() -> bool:
        return all(
            any(
                e.reason == "ForgedDecision"
                for e in cluster.events(ns, stored[(ns, n)].metadata.uid)
            )
            for ns, n in deferred
        )

    wait_until(warned, timeout_s=120, what="a ForgedDecision Warning on every forged Job")
    for (namespace, name), before in stored.items():
        after = cluster.job(namespace, name)
        # The Job controller writes status (resourceVersion moves); the spec and the
        # annotations are as mallory created them (a release would bump the generation).
        assert after.metadata.generation == before.metadata.generation, name
        assert annotations(after) == annotations(before), name
        assert after.spec.suspend == before.spec.suspend, name
        events = greenlight_events(cluster, namespace, after.metadata.uid)
        expected = ["ForgedDecision"] if (namespace, name) in deferred else []
        assert [e.reason for e in events] == expected, (name, [e.message for e in events])
        assert all(e.type == "Warning" for e in events)

    assert reconciler.process.poll() is None, reconciler.log()[-3000:]
    # The counters are cluster-wide (other tests' Jobs may share the plane): each of these
    # Jobs is logged, and counted, once.
    log = reconciler.log()
    for namespace, name in deferred:
        assert log.count(f"forged job={namespace}/{name} uid=") == 1, name
    assert (reconciler.metric("greenlight_forged_jobs_total") or 0.0) >= len(deferred)
    assert f"unreadable job={opted}/" not in log
    assert f"unreadable job={plain}/" not in log
    # mallory cannot patch: every Job PATCH the apiserver accepted is the reconciler's.
    ok_patches = reconciler.metric(
        "greenlight_reconciler_api_requests_total", verb="patch", resource="jobs", outcome="ok"
    )
    assert cluster.successful_job_patches() - patches_before == ok_patches

    # A restarted reconciler reads them all again on its first list: still untouched, still
    # one Warning each (the Event's name is fixed by the uid: a second one is AlreadyExists).
    reconciler.stop()
    again = cluster.reconciler("r2")
    wait_until(
        lambda: (again.metric("greenlight_forged_jobs_total") or 0.0) >= len(deferred),
        timeout_s=120,
        what="the restarted reconciler to list every forged Job",
    )
    for (namespace, name), before in stored.items():
        after = cluster.job(namespace, name)
        assert after.metadata.generation == before.metadata.generation, name
        assert annotations(after) == annotations(before), name
        expected = ["ForgedDecision"] if (namespace, name) in deferred else []
        events = greenlight_events(cluster, namespace, after.metadata.uid)
        assert [e.reason for e in events] == expected
    assert again.process.poll() is None, again.log()[-3000:]

"""The list + watch loop, with a scripted stand-in for the Kubernetes adapter (the edge)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from builders import deferred_job

from webhook.core import annotations as keys
from webhook.core.provenance import SigningKeys
from webhook.reconciler.feed import (
    Changed,
    FeedMessage,
    JobFeed,
    ListDone,
    Listed,
    NotDeferred,
    Unreadable,
    read_not_deferred,
)
from webhook.reconciler.kube import GoneError, KubeError, NotFoundError, Page
from webhook.workloads.jobset import JOBSET


class Stream:
    def __init__(self, events: list[Any]) -> None:
        self._events = events
        self.closed = False

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for event in self._events:
            if isinstance(event, Exception):
                raise event
            yield event

    def close(self) -> None:
        self.closed = True


class Script:
    """Lists and watches answered in order; ``feed`` is stopped when the script runs out."""

    def __init__(self, lists: list[list[Page]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.listed_tokens: list[str | None] = []
        self.feed: JobFeed | None = None
        self._pages: list[Page] = []

    def list_jobs(
        self, *, limit: int, continue_token: str | None = None, namespace: str | None = None
    ) -> Page:
        self.listed_tokens.append(continue_token)
        if continue_token is None:
            self._pages = list(self.lists.pop(0))
        return self._pages.pop(0)

    def watch_jobs(self, resource_version: str, *, timeout_s: int) -> Stream:
        self.watched_from.append(resource_version)
        if not self.watches:
            assert self.feed is not None
            self.feed.stop()
            return Stream([])
        return Stream(self.watches.pop(0))


def job(name: str, version: str) -> dict[str, Any]:
    return deferred_job(name, resource_version=version)


def run(script: Script) -> list[FeedMessage]:
    messages: list[FeedMessage] = []
    feed = JobFeed(script, messages.append, page_size=2, retry_s=0.0)
    script.feed = feed
    feed.run()
    return messages


def test_a_paged_list_then_a_watch_from_its_version_resumed_after_bookmarks() -> None:
    script = Script(
        lists=[
            [Page([job("a", "5"), job("b", "6")], "10", "more"), Page([job("c", "7")], "10", None)]
        ],
        watches=[
            [("BOOKMARK", {"metadata": {"resourceVersion": "12"}})],
            [("MODIFIED", job("a", "15")), ("DELETED", job("b", "16"))],
        ],
    )
    messages = run(script)
    assert script.listed_tokens == [None, "more"]
    assert script.watched_from == ["10", "12", "16"]
    listed = [m for m in messages if isinstance(m, Listed)]
    assert [j.name for page in listed for j in page.jobs] == ["a", "b", "c"]
    done = next(m for m in messages if isinstance(m, ListDone))
    assert done.uids == {"uid-ml-a", "uid-ml-b", "uid-ml-c"}
    assert done.cause == "start"
    changes = [m for m in messages if isinstance(m, Changed)]
    assert [(c.uid, c.job is not None) for c in changes] == [
        ("uid-ml-a", True),
        ("uid-ml-b", False),
    ]


def test_410_gone_relists_and_other_errors_relist_too() -> None:
    script = Script(
        lists=[
            [Page([job("a", "5")], "10", None)],
            [Page([job("a", "20")], "30", None)],
            [Page([], "40", None)],
        ],
        watches=[
            [("MODIFIED", job("a", "11")), GoneError("too old", 410)],
            [KubeError("connection reset")],
        ],
    )
    messages = run(script)
    causes = [m.cause for m in messages if isinstance(m, ListDone)]
    assert causes == ["start", "gone", "error"]
    assert script.watched_from == ["10", "30", "40"]
    last = [m for m in messages if isinstance(m, ListDone)][-1]
    assert last.uids == frozenset()  # everything tracked before is gone


def test_jobs_greenlight_did_not_defer_are_not_listed_but_their_events_pass() -> None:
    other = {"metadata": {"name": "x", "namespace": "ml", "uid": "u-x", "resourceVersion": "3"}}
    script = Script(lists=[[Page([other], "4", None)]], watches=[[("ADDED", other)]])
    messages = run(script)
    assert [m.jobs for m in messages if isinstance(m, Listed)] == [[]]
    assert [m for m in messages if isinstance(m, Changed)] == [Changed("u-x", None)]


def test_an_unreadable_job_is_set_aside_and_the_list_and_watch_go_on() -> None:
    nameless = deferred_job("x")
    nameless["metadata"]["name"] = ["not", "a", "name"]
    script = Script(
        lists=[[Page([job("a", "5"), nameless, job("c", "7")], "10", None)]],
        watches=[[("MODIFIED", nameless), ("MODIFIED", job("a", "15"))]],
    )
    messages = run(script)
    listed = [m for m in messages if isinstance(m, Listed)]
    assert [j.name for page in listed for j in page.jobs] == ["a", "c"]
    set_aside = [m for m in messages if isinstance(m, Unreadable)]
    assert len(set_aside) == 2  # once in the list, once from the watch
    assert all(m.uid == "uid-ml-x" and "metadata.name" in m.error for m in set_aside)
    assert [m.uid for m in messages if isinstance(m, Changed)] == ["uid-ml-a"]


class AbsentThenServed(Script):
    """A kind whose CRD is missing for the first ``absent`` lists (404), then installed."""

    def __init__(self, absent: int, lists: list[list[Page]]) -> None:
        super().__init__(lists, [])
        self.absent = absent

    def list_jobs(
        self, *, limit: int, continue_token: str | None = None, namespace: str | None = None
    ) -> Page:
        if self.absent:
            self.absent -= 1
            raise NotFoundError("list jobsets.jobset.x-k8s.io/v1alpha2: HTTP 404 NotFound", 404)
        return super().list_jobs(limit=limit, continue_token=continue_token)


def test_a_kind_not_served_counts_as_listed_empty_and_is_listed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gang = deferred_job("gang", resource_version="5")
    gang.update(apiVersion="jobset.x-k8s.io/v1alpha2", kind="JobSet")
    script = AbsentThenServed(2, [[Page([gang], "10", None)]])
    messages: list[FeedMessage] = []
    feed = JobFeed(script, messages.append, workload=JOBSET, absent_retry_s=0.0)
    script.feed = feed
    with caplog.at_level(logging.INFO, logger="webhook.reconciler.feed"):
        feed.run()
    done = [m for m in messages if isinstance(m, ListDone)]
    assert [(m.uids, m.cause, m.workload) for m in done] == [
        (frozenset(), "start", JOBSET),
        (frozenset(), "absent", JOBSET),
        (frozenset({"uid-ml-gang"}), "absent", JOBSET),
    ]
    listed = [job for m in messages if isinstance(m, Listed) for job in m.jobs]
    assert [(job.name, job.workload) for job in listed] == [("gang", JOBSET)]
    warnings = [r for r in caplog.records if "not served" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not on every retry
    assert "jobsets.jobset.x-k8s.io/v1alpha2" in warnings[0].getMessage()
    assert any("is served now" in r.getMessage() for r in caplog.records)


def _let_run(name: str, decision: str, code: str, reason: str, **extra: str) -> dict[str, Any]:
    """A Job the webhook let run: no plan, just its decision."""
    annotations = {keys.DECISION: decision, keys.REASON_CODE: code, keys.REASON: reason, **extra}
    return deferred_job(name, suspend=False, annotations=annotations)


def test_a_job_created_to_run_now_or_skipped_is_announced_once_from_the_watch() -> None:
    ran = _let_run(
        "ran",
        "run-now",
        "best-now",
        "no later window is cleaner",
        **{
            keys.INTENSITY_NOW: "300.0",
            keys.EMISSIONS_NOW_G: "150.5",
        },
    )
    hook = _let_run("hook", "skipped", "helm-hook", "Helm hook Jobs run at once")
    script = Script(
        lists=[[Page([_let_run("old", "run-now", "best-now", "listed")], "4", None)]],
        watches=[
            [
                ("ADDED", ran),
                ("MODIFIED", ran),  # its later versions say nothing new
                ("ADDED", hook),
                ("ADDED", job("deferred", "9")),  # deferred Jobs have their own Event
                ("DELETED", hook),
            ]
        ],
    )
    messages = run(script)
    announced = [m for m in messages if isinstance(m, NotDeferred)]
    assert [(m.job.name, m.decision, m.code) for m in announced] == [
        ("ran", "run-now", "best-now"),
        ("hook", "skipped", "helm-hook"),
    ]
    assert announced[0].job.uid == "uid-ml-ran"
    assert (announced[0].intensity_now_g_per_kwh, announced[0].emissions_now_g) == (300.0, 150.5)
    assert announced[0].reason == "no later window is cleaner"
    assert (announced[1].intensity_now_g_per_kwh, announced[1].emissions_now_g) == (None, None)


SIGNER = SigningKeys((b"s" * 32,))


def _signed(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    metadata["annotations"][keys.ADMISSION_UID] = f"req-{metadata['name']}"
    metadata["annotations"][keys.SIGNATURE] = SIGNER.signed(metadata, metadata["annotations"])
    return obj


def _edited(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["annotations"][keys.REASON] = "rewritten after signing"
    return obj


@pytest.mark.parametrize(
    ("obj", "announced"),
    [
        pytest.param(_signed(_let_run("a", "run-now", "best-now", "x")), True, id="signed"),
        pytest.param(_let_run("a", "run-now", "best-now", "x"), False, id="unsigned"),
        pytest.param(
            {**_let_run("a", "skipped", "kueue", "x"), "metadata": {"name": "a"}},
            False,
            id="no-identity",
        ),
        pytest.param(
            _edited(_signed(_let_run("a", "run-now", "best-now", "x"))), False, id="edited"
        ),
    ],
)
def test_with_signing_keys_only_a_decision_greenlight_signed_is_announced(
    obj: dict[str, Any], announced: bool
) -> None:
    assert (read_not_deferred(obj, SIGNER) is not None) is announced


def test_an_unreadable_number_is_left_out_not_fatal() -> None:
    obj = _let_run("a", "run-now", "best-now", "x", **{keys.INTENSITY_NOW: "lots"})
    read = read_not_deferred(obj)
    assert read is not None
    assert read.intensity_now_g_per_kwh is None


def test_a_gangs_child_gets_no_event_of_its_own_and_a_gang_its_own_kind() -> None:
    child = _let_run("leader-0", "skipped", "owned-by-workload", "part of JobSet gang")
    assert read_not_deferred(child) is None
    gang = _let_run("sweep", "run-now", "best-now", "no later window is cleaner")
    gang.update(apiVersion="jobset.x-k8s.io/v1alpha2", kind="JobSet")
    read = read_not_deferred(gang, None, JOBSET)
    assert read is not None
    assert read.job.workload is JOBSET

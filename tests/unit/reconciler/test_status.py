"""``greenlight status``'s pure part: which Jobs wait, their plan, the per-namespace sums."""

from __future__ import annotations

import json

from builders import T0, at, deferred_job

from webhook.core import annotations as keys
from webhook.reconciler.report import (
    WaitingRow,
    render_waiting,
    sort_waiting,
    waiting_row,
    waiting_summary,
)
from webhook.workloads.kubeflow import PYTORCHJOB

HOUR = 3600
NOW = at(2 * HOUR)


def waiting(jobs: list[dict[str, object]]) -> list[WaitingRow]:
    return sort_waiting(row for job in jobs if (row := waiting_row(job, NOW)) is not None)


def test_only_suspended_unreleased_deferrals_wait() -> None:
    jobs = [
        deferred_job("waits"),
        deferred_job("released", suspend=False, extra={keys.RELEASED_AT: "2025-06-02T13:00:00Z"}),
        deferred_job("resumed-by-hand", suspend=False),
        deferred_job("run-now", extra={keys.DECISION: "run-now"}),
        {"metadata": {"name": "unjudged", "namespace": "ml"}, "spec": {"suspend": True}},
    ]
    assert [r.name for r in waiting(jobs)] == ["waits"]


def test_a_row_carries_the_plan_and_a_deadline_input() -> None:
    job = deferred_job(
        "train",
        release_at=at(6 * HOUR),
        release_by=at(20 * HOUR),
        extra={
            keys.DEADLINE: "2025-06-03T09:00:00Z",
            keys.REASON: "a cleaner window 6h ahead",
            keys.REPLAN_COUNT: "2",
        },
    )
    (row,) = waiting([job])
    assert (row.namespace, row.name, row.reason_code, row.zone) == ("ml", "train", "window", "DE")
    assert (row.release_at, row.release_by) == (at(6 * HOUR), at(20 * HOUR))
    assert row.deadline == at(21 * HOUR)
    assert (row.expected_savings_g, row.expected_savings_pct) == (600.0, 75.0)
    assert (row.reason, row.replans, row.overdue) == ("a cleaner window 6h ahead", 2, False)


def test_a_release_at_in_the_past_is_overdue() -> None:
    (row,) = waiting([deferred_job("late", release_at=at(HOUR))])
    assert row.overdue
    assert "OVERDUE" in render_waiting([row], waiting_summary([row]), "table", NOW)


def test_rows_sort_by_namespace_then_soonest_release_and_namespaces_sum() -> None:
    jobs = [
        deferred_job("later", release_at=at(9 * HOUR)),
        deferred_job("sooner", release_at=at(3 * HOUR)),
        deferred_job("late", release_at=at(HOUR)),
        deferred_job("other", namespace="etl", release_at=at(5 * HOUR)),
    ]
    rows = waiting(jobs)
    assert [(r.namespace, r.name) for r in rows] == [
        ("etl", "other"),
        ("ml", "late"),
        ("ml", "sooner"),
        ("ml", "later"),
    ]
    etl, ml = waiting_summary(rows)
    assert (etl.namespace, etl.waiting, etl.overdue, etl.next_release_at) == (
        "etl",
        1,
        0,
        at(5 * HOUR),
    )
    assert (ml.waiting, ml.overdue, ml.next_release_at) == (3, 1, at(HOUR))
    assert ml.expected_savings_g == 1800.0


def test_json_output_names_every_field_with_times_in_rfc3339() -> None:
    rows = waiting([deferred_job("train", release_at=at(6 * HOUR))])
    document = json.loads(render_waiting(rows, waiting_summary(rows), "json", NOW))
    assert document["now"] == "2025-06-02T14:00:00Z"
    (job,) = document["jobs"]
    assert job["release_at"] == "2025-06-02T18:00:00Z"
    assert job["release_by"] == "2025-06-03T11:00:00Z"
    assert (job["deadline"], job["expected_savings_g"], job["overdue"]) == (None, 600.0, False)
    assert document["namespaces"] == [
        {
            "namespace": "ml",
            "waiting": 1,
            "overdue": 0,
            "next_release_at": "2025-06-02T18:00:00Z",
            "expected_savings_g": 600.0,
        }
    ]


def test_the_table_shows_release_times_relative_to_now() -> None:
    rows = waiting([deferred_job("train", release_at=at(6 * HOUR + 90))])
    table = render_waiting(rows, waiting_summary(rows), "table", NOW)
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAMESPACE", "JOB", "RELEASE", "AT"]
    assert "2025-06-02T18:01:30Z (in 4h01m)" in row
    assert "2025-06-03T11:00:00Z (in 21h00m)" in row
    assert render_waiting([], [], "table", NOW) == "No deferred Jobs are waiting.\n"


def test_t0_is_the_builders_admission() -> None:
    (row,) = waiting([deferred_job("train")])
    assert row.admitted_at == T0


def test_a_waiting_pytorchjob_is_read_at_its_own_suspend_flag_and_named_with_its_kind() -> None:
    ddp = deferred_job("ddp")
    ddp.update(apiVersion="kubeflow.org/v1", kind="PyTorchJob")
    ddp["spec"] = {"runPolicy": {"suspend": True}}
    (row,) = [r for r in [waiting_row(ddp, NOW, PYTORCHJOB)] if r is not None]
    assert (row.kind, row.label) == ("PyTorchJob", "PyTorchJob/ddp")
    assert "PyTorchJob/ddp" in render_waiting([row], waiting_summary([row]), "table", NOW)
    assert json.loads(render_waiting([row], [], "json", NOW))["jobs"][0]["kind"] == "PyTorchJob"
    ddp["spec"]["runPolicy"]["suspend"] = False  # resumed by its user: no longer waiting
    assert waiting_row(ddp, NOW, PYTORCHJOB) is None
    # A Job's spec.suspend means nothing on a PyTorchJob.
    assert waiting_row({**ddp, "spec": {"suspend": True}}, NOW, PYTORCHJOB) is None

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
from builders import T0, at, deferred_job

from webhook.core import annotations as keys
from webhook.reconciler.report import (
    JobRow,
    ReportError,
    job_row,
    parse_since,
    render,
    select,
    summarize,
)
from webhook.workloads.jobset import JOBSET

HOUR = 3600


def run_now_job(name: str, namespace: str = "ml") -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {
                keys.DECISION: "run-now",
                keys.REASON_CODE: "best-now",
                keys.ADMITTED_AT: "2025-06-02T13:00:00Z",
                keys.EMISSIONS_NOW_G: "120.0",
                keys.COST_NOW_USD: "0.5000",
            },
        }
    }


FINISHED = {
    keys.RELEASED_AT: "2025-06-02T18:00:00Z",
    keys.RELEASE_REASON: "window",
    keys.ACTUAL_EMISSIONS_G: "210.0",
    keys.ACTUAL_SAVINGS_G: "590.0",
    keys.COST_NOW_USD: "1.0000",
    keys.COST_PLANNED_USD: "0.7500",
}
JOBS = [
    deferred_job("a", extra=FINISHED),
    deferred_job("b"),
    run_now_job("c"),
    deferred_job("d", namespace="web", admitted=at(-48 * HOUR)),
    {"metadata": {"name": "unjudged", "namespace": "ml", "annotations": {}}},
]


def rows() -> list[JobRow]:
    return [row for job in JOBS if (row := job_row(job)) is not None]


def test_a_row_per_judged_job_with_its_delay_estimates_and_actuals() -> None:
    by_name = {r.name: r for r in rows()}
    assert set(by_name) == {"a", "b", "c", "d"}
    a = by_name["a"]
    assert a.delay_s == 6 * HOUR
    assert (a.estimated_emissions_g, a.estimated_savings_g) == (200.0, 600.0)
    assert (a.actual_emissions_g, a.actual_savings_g) == (210.0, 590.0)
    assert (a.cost_usd, a.cost_savings_usd) == (0.75, 0.25)
    b = by_name["b"]
    assert (b.released_at, b.delay_s, b.actual_emissions_g) == (None, None, None)
    c = by_name["c"]
    assert (c.estimated_emissions_g, c.estimated_savings_g, c.cost_usd) == (120.0, 0.0, 0.5)


def test_namespaces_sum_their_jobs() -> None:
    ml, web = summarize(rows())
    assert (ml.namespace, ml.jobs, ml.deferred, ml.released, ml.accounted) == ("ml", 3, 2, 1, 1)
    assert ml.estimated_emissions_g == 200.0 + 200.0 + 120.0
    assert ml.estimated_savings_g == 600.0 + 600.0
    assert (ml.actual_emissions_g, ml.actual_savings_g) == (210.0, 590.0)
    assert ml.mean_delay_s == 6 * HOUR
    assert web.jobs == 1


@pytest.mark.parametrize(
    ("namespace", "since", "names"),
    [
        pytest.param(None, None, ["a", "b", "c", "d"], id="all"),
        pytest.param("web", None, ["d"], id="one-namespace"),
        pytest.param(None, T0, ["a", "b", "c"], id="admitted-since"),
    ],
)
def test_select_by_namespace_and_admission_time(
    namespace: str | None, since: datetime | None, names: list[str]
) -> None:
    assert sorted(r.name for r in select(rows(), namespace=namespace, since=since)) == names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "2025-06-01T06:00:00+02:00",
            datetime.fromisoformat("2025-06-01T04:00:00+00:00"),
            id="rfc3339",
        ),
        pytest.param("2025-06-01", datetime.fromisoformat("2025-06-01T00:00:00+00:00"), id="date"),
        pytest.param("168h", at(-168 * HOUR), id="duration"),
    ],
)
def test_since_accepts_a_time_a_date_or_a_duration_back(value: str, expected: datetime) -> None:
    assert parse_since(value, T0) == expected


@pytest.mark.parametrize("value", ["yesterday", "7d", "2025-13-01", "2025-06-01T00:00:00"])
def test_a_bad_since_names_the_value_and_the_accepted_forms(value: str) -> None:
    with pytest.raises(ReportError, match="RFC 3339 time") as refused:
        parse_since(value, T0)
    assert repr(value) in str(refused.value)


def test_the_three_formats_carry_the_same_figures() -> None:
    chosen = select(rows())
    namespaces = summarize(chosen)
    document = json.loads(render(chosen, namespaces, "json"))
    assert [j["name"] for j in document["jobs"]] == ["a", "b", "c", "d"]
    assert document["namespaces"][0]["actual_savings_g"] == 590.0
    assert document["jobs"][0]["admitted_at"].endswith("Z")

    table = list(csv.DictReader(io.StringIO(render(chosen, namespaces, "csv"))))
    assert [r["level"] for r in table] == ["job"] * 4 + ["namespace"] * 2
    a = next(r for r in table if r["name"] == "a")
    assert (a["delay_s"], a["actual_emissions_g"], a["release_reason"]) == (
        "21600.0",
        "210.0",
        "window",
    )

    text = render(chosen, namespaces, "table")
    assert "ACTUAL SAVED g" in text
    assert "590.0" in text


def test_a_waiting_job_shows_its_planned_start_and_latest_start() -> None:
    by_name = {r.name: r for r in rows()}
    b = by_name["b"]
    annotations = deferred_job("b")["metadata"]["annotations"]
    assert b.release_at == datetime.fromisoformat(annotations[keys.RELEASE_AT])
    assert b.release_by == datetime.fromisoformat(annotations[keys.RELEASE_BY])
    assert (by_name["c"].release_at, by_name["c"].release_by) == (None, None)  # ran at once
    chosen = select(rows())
    text = render(chosen, summarize(chosen), "table")
    line = next(li for li in text.splitlines() if li.split()[:2] == ["ml", "b"])
    assert "waiting" in line
    assert annotations[keys.RELEASE_AT] in line
    assert annotations[keys.RELEASE_BY] in line


def test_table_columns_line_up_with_their_headers() -> None:
    """Text columns start under their header's first letter, numeric ones end under its last,
    whatever the longest cell (a long Job name here)."""
    jobs = [*JOBS, deferred_job("a-job-with-a-much-longer-name-than-its-header", extra=FINISHED)]
    chosen = select([row for job in jobs if (row := job_row(job)) is not None])
    job_table = render(chosen, summarize(chosen), "table").split("\n\n")[0].splitlines()
    header, body = job_table[0], job_table[1:]
    assert len(body) == 5
    for title in ("JOB", "DECISION", "RELEASE AT", "RELEASE BY"):
        start = header.index(title)
        for line in body:
            assert line[start - 2 : start] == "  ", (title, line)  # a cell starts here
            if title in ("JOB", "DECISION") or " deferred " in line:
                assert line[start] != " ", (title, line)  # ... left-aligned under its header
    for title in ("DELAY h", "EST g", "ACTUAL SAVED g", "COST $"):
        end = header.index(title) + len(title)
        for line in body:
            assert line[end : end + 2] in ("  ", ""), (title, line)  # a cell ends here
    a = next(li for li in body if li.split()[:2] == ["ml", "a"])
    assert a[: header.index("EST SAVED g") + len("EST SAVED g")].endswith("600.0")


def test_a_jobset_row_names_its_kind_in_every_format() -> None:
    row = job_row(deferred_job("sweep", extra=FINISHED), JOBSET)
    assert row is not None
    assert (row.kind, row.label) == ("JobSet", "JobSet/sweep")
    assert "JobSet/sweep" in render([row], summarize([row]), "table")
    assert json.loads(render([row], summarize([row]), "json"))["jobs"][0]["kind"] == "JobSet"
    assert "JobSet" in render([row], summarize([row]), "csv")

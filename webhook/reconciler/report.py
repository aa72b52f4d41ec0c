"""The sustainability report (pure): what greenlight decided per Job, and the sums per namespace.

Read from the Jobs' own annotations (all state lives there): the decision, when the Job was
admitted and released (the delay), the emissions and cost estimated at admission — running
now versus as planned — and, once a deferred Job has finished, its actual emissions and the
actual saving against running at admission. Jobs deleted from the cluster (e.g. by
``ttlSecondsAfterFinished``) are no longer in it; the per-namespace counters
``greenlight_actual_emissions_grams_total`` and ``greenlight_counterfactual_emissions_grams_total``
keep their totals.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from webhook.core import annotations as keys
from webhook.core.annotations import Decision, format_time
from webhook.core.durations import parse_duration
from webhook.workloads.base import Workload, is_suspended
from webhook.workloads.job import JOB
from webhook.workloads.ownership import job_annotations

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ReportFormat = Literal["table", "csv", "json"]
FORMATS: tuple[ReportFormat, ...] = ("table", "csv", "json")


class ReportError(ValueError):
    """A report option that cannot be used (the value and the accepted forms)."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


@dataclass(frozen=True)
class JobRow:
    """One judged Job. Emissions in g CO2eq, cost in USD; None where not known (yet).

    ``release_at`` and ``release_by`` are a deferred Job's plan (its planned start as last
    re-planned, and its latest start); None for Jobs that were not deferred."""

    namespace: str
    name: str
    decision: str
    reason_code: str
    admitted_at: datetime | None
    release_at: datetime | None
    release_by: datetime | None
    released_at: datetime | None
    release_reason: str | None
    delay_s: float | None
    estimated_emissions_g: float | None
    estimated_savings_g: float | None
    actual_emissions_g: float | None
    actual_savings_g: float | None
    cost_usd: float | None
    cost_savings_usd: float | None
    kind: str = "Job"

    @property
    def label(self) -> str:
        """The name, prefixed by the kind for anything but a Job (``JobSet/sweep``)."""
        return self.name if self.kind == "Job" else f"{self.kind}/{self.name}"


def job_row(job: Mapping[str, Any], workload: Workload = JOB) -> JobRow | None:
    """The report row of ``job`` (an object of kind ``workload``); None for one greenlight
    never judged."""
    annotations = job_annotations(job)
    decision = annotations.get(keys.DECISION)
    if not isinstance(decision, str):
        return None
    metadata = _mapping(job.get("metadata"))
    deferred = decision == Decision.DEFERRED
    admitted = _time(annotations.get(keys.ADMITTED_AT))
    released = _time(annotations.get(keys.RELEASED_AT))
    now_g = _number(annotations.get(keys.EMISSIONS_NOW_G))
    planned_g = _number(annotations.get(keys.EMISSIONS_PLANNED_G))
    cost_now = _number(annotations.get(keys.COST_NOW_USD))
    cost_planned = _number(annotations.get(keys.COST_PLANNED_USD))
    if deferred:
        emissions, savings = planned_g, _number(annotations.get(keys.SAVINGS_G))
        cost = cost_planned
        cost_savings = (
            cost_now - cost_planned if cost_now is not None and cost_planned is not None else None
        )
    else:
        emissions, savings = now_g, (0.0 if now_g is not None else None)
        cost, cost_savings = cost_now, (0.0 if cost_now is not None else None)
    return JobRow(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        decision=decision,
        reason_code=str(annotations.get(keys.REASON_CODE, "")),
        admitted_at=admitted,
        release_at=_time(annotations.get(keys.RELEASE_AT)) if deferred else None,
        release_by=_time(annotations.get(keys.RELEASE_BY)) if deferred else None,
        released_at=released,
        release_reason=annotations.get(keys.RELEASE_REASON),
        delay_s=(released - admitted).total_seconds() if released and admitted else None,
        estimated_emissions_g=emissions,
        estimated_savings_g=savings,
        actual_emissions_g=_number(annotations.get(keys.ACTUAL_EMISSIONS_G)),
        actual_savings_g=_number(annotations.get(keys.ACTUAL_SAVINGS_G)),
        cost_usd=cost,
        cost_savings_usd=cost_savings,
        kind=workload.gvk.kind,
    )


@dataclass(frozen=True)
class NamespaceRow:
    """Sums over one namespace's Jobs (None-valued figures are left out of the sums)."""

    namespace: str
    jobs: int
    deferred: int
    released: int
    accounted: int
    mean_delay_s: float | None
    estimated_emissions_g: float
    estimated_savings_g: float
    actual_emissions_g: float
    actual_savings_g: float
    cost_usd: float
    cost_savings_usd: float


def _sum(values: Iterable[float | None]) -> float:
    return float(sum(v for v in values if v is not None))


def summarize(rows: Iterable[JobRow]) -> list[NamespaceRow]:
    """Per-namespace sums, by namespace name."""
    by_namespace: dict[str, list[JobRow]] = {}
    for row in rows:
        by_namespace.setdefault(row.namespace, []).append(row)
    summaries = []
    for namespace, group in sorted(by_namespace.items()):
        delays = [r.delay_s for r in group if r.delay_s is not None]
        summaries.append(
            NamespaceRow(
                namespace=namespace,
                jobs=len(group),
                deferred=sum(r.decision == Decision.DEFERRED for r in group),
                released=sum(r.released_at is not None for r in group),
                accounted=sum(r.actual_emissions_g is not None for r in group),
                mean_delay_s=sum(delays) / len(delays) if delays else None,
                estimated_emissions_g=_sum(r.estimated_emissions_g for r in group),
                estimated_savings_g=_sum(r.estimated_savings_g for r in group),
                actual_emissions_g=_sum(r.actual_emissions_g for r in group),
                actual_savings_g=_sum(r.actual_savings_g for r in group),
                cost_usd=_sum(r.cost_usd for r in group),
                cost_savings_usd=_sum(r.cost_savings_usd for r in group),
            )
        )
    return summaries


def parse_since(value: str, now: datetime) -> datetime:
    """``--since``: an RFC 3339 time, a date (midnight UTC), or a Go duration before ``now``."""
    text = value.strip()
    moment = _time(text)
    if moment is not None:
        return moment
    if _DATE.fullmatch(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    raise ReportError(
        f"--since {value!r}: expected an RFC 3339 time ('2025-06-01T00:00:00Z'), a date "
        "('2025-06-01') or a duration back from now ('168h', '30m')"
    )


def select(
    rows: Iterable[JobRow], *, namespace: str | None = None, since: datetime | None = None
) -> list[JobRow]:
    """Rows of ``namespace`` admitted at or after ``since``, by namespace, admission, name."""
    chosen = [
        r
        for r in rows
        if (namespace is None or r.namespace == namespace)
        and (since is None or (r.admitted_at is not None and r.admitted_at >= since))
    ]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(chosen, key=lambda r: (r.namespace, r.admitted_at or oldest, r.name))


# --- rendering -------------------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.4f}"
    return str(value)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


def render_json(rows: list[JobRow], namespaces: list[NamespaceRow]) -> str:
    document = {
        "jobs": [{k: _plain(v) for k, v in asdict(r).items()} for r in rows],
        "namespaces": [{k: _plain(v) for k, v in asdict(n).items()} for n in namespaces],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def render_csv(rows: list[JobRow], namespaces: list[NamespaceRow]) -> str:
    """One CSV: a row per Job (``level=job``), then one per namespace (``level=namespace``)."""
    job_fields = [f.name for f in fields(JobRow)]
    namespace_fields = [f.name for f in fields(NamespaceRow)]
    columns = ["level", *job_fields, *[f for f in namespace_fields if f not in job_fields]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"level": "job", **{k: _cell(v) for k, v in asdict(row).items()}})
    for summary in namespaces:
        writer.writerow({"level": "namespace", **{k: _cell(v) for k, v in asdict(summary).items()}})
    return out.getvalue()


def _table(headers: list[str], body: list[list[str]], numeric: frozenset[int] | None = None) -> str:
    """Columns padded to their widest cell (header included): the ``numeric`` ones (every one
    when None) right-aligned, header and cells alike, the others left-aligned."""
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]

    def cell(index: int, text: str) -> str:
        right = numeric is None or index in numeric
        return text.rjust(widths[index]) if right else text.ljust(widths[index])

    lines = ["  ".join(cell(i, h) for i, h in enumerate(headers)).rstrip()]
    lines += ["  ".join(cell(i, c) for i, c in enumerate(r)).rstrip() for r in body]
    return "\n".join(lines)


def render_table(rows: list[JobRow], namespaces: list[NamespaceRow]) -> str:
    job_table = _table(
        [
            "NAMESPACE",
            "JOB",
            "DECISION",
            "RELEASE",
            "RELEASE AT",
            "RELEASE BY",
            "DELAY h",
            "EST g",
            "EST SAVED g",
            "ACTUAL g",
            "ACTUAL SAVED g",
            "COST $",
        ],
        [
            [
                r.namespace,
                r.label,
                r.decision,
                r.release_reason or ("waiting" if r.decision == Decision.DEFERRED else ""),
                _cell(r.release_at),
                _cell(r.release_by),
                "" if r.delay_s is None else f"{r.delay_s / 3600:.1f}",
                _cell(r.estimated_emissions_g),
                _cell(r.estimated_savings_g),
                _cell(r.actual_emissions_g),
                _cell(r.actual_savings_g),
                "" if r.cost_usd is None else f"{r.cost_usd:.2f}",
            ]
            for r in rows
        ],
        numeric=frozenset(range(6, 12)),
    )
    namespace_table = _table(
        [
            "NAMESPACE",
            "JOBS",
            "DEFERRED",
            "RELEASED",
            "ACCOUNTED",
            "MEAN DELAY h",
            "EST g",
            "EST SAVED g",
            "ACTUAL g",
            "ACTUAL SAVED g",
            "COST $",
            "COST SAVED $",
        ],
        [
            [
                n.namespace,
                str(n.jobs),
                str(n.deferred),
                str(n.released),
                str(n.accounted),
                "" if n.mean_delay_s is None else f"{n.mean_delay_s / 3600:.1f}",
                _cell(n.estimated_emissions_g),
                _cell(n.estimated_savings_g),
                _cell(n.actual_emissions_g),
                _cell(n.actual_savings_g),
                f"{n.cost_usd:.2f}",
                f"{n.cost_savings_usd:.2f}",
            ]
            for n in namespaces
        ],
        numeric=frozenset(range(1, 12)),
    )
    return f"{job_table}\n\n{namespace_table}\n"


def render(rows: list[JobRow], namespaces: list[NamespaceRow], form: ReportFormat) -> str:
    if form == "json":
        return render_json(rows, namespaces) + "\n"
    if form == "csv":
        return render_csv(rows, namespaces)
    return render_table(rows, namespaces)


# --- what is waiting (``greenlight status``) ---------------------------------------------------


@dataclass(frozen=True)
class WaitingRow:
    """One deferred Job not released yet: its plan as the webhook (or a re-plan) wrote it.

    ``release_by`` is the latest start that still meets the Job's max-delay or deadline;
    ``deadline`` is the Job's own ``greenlight.dev/deadline`` input where it set one."""

    namespace: str
    name: str
    reason_code: str
    reason: str
    admitted_at: datetime | None
    release_at: datetime | None
    release_by: datetime | None
    deadline: datetime | None
    zone: str
    expected_savings_g: float | None
    expected_savings_pct: float | None
    replans: int
    overdue: bool  # release-at has passed and the Job is still suspended
    kind: str = "Job"

    @property
    def label(self) -> str:
        """The name, prefixed by the kind for anything but a Job (``JobSet/sweep``)."""
        return self.name if self.kind == "Job" else f"{self.kind}/{self.name}"


def waiting_row(
    job: Mapping[str, Any], now: datetime, workload: Workload = JOB
) -> WaitingRow | None:
    """The row of ``job`` (of kind ``workload``) if it is deferred and still waiting
    (suspended, not released)."""
    annotations = job_annotations(job)
    if annotations.get(keys.DECISION) != Decision.DEFERRED or keys.RELEASED_AT in annotations:
        return None
    if not is_suspended(workload, job):
        return None
    metadata = _mapping(job.get("metadata"))
    release_at = _time(annotations.get(keys.RELEASE_AT))
    replans = _number(annotations.get(keys.REPLAN_COUNT))
    return WaitingRow(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        reason_code=str(annotations.get(keys.REASON_CODE, "")),
        reason=str(annotations.get(keys.REASON, "")),
        admitted_at=_time(annotations.get(keys.ADMITTED_AT)),
        release_at=release_at,
        release_by=_time(annotations.get(keys.RELEASE_BY)),
        deadline=_time(annotations.get(keys.DEADLINE)),
        zone=str(annotations.get(keys.PLANNED_ZONE, "")),
        expected_savings_g=_number(annotations.get(keys.SAVINGS_G)),
        expected_savings_pct=_number(annotations.get(keys.SAVINGS_PCT)),
        replans=int(replans) if replans is not None else 0,
        overdue=release_at is not None and release_at <= now,
        kind=workload.gvk.kind,
    )


@dataclass(frozen=True)
class WaitingNamespace:
    namespace: str
    waiting: int
    overdue: int
    next_release_at: datetime | None
    expected_savings_g: float


def waiting_summary(rows: Iterable[WaitingRow]) -> list[WaitingNamespace]:
    """Per namespace (by name): how many wait, how many are overdue, the next release."""
    by_namespace: dict[str, list[WaitingRow]] = {}
    for row in rows:
        by_namespace.setdefault(row.namespace, []).append(row)
    return [
        WaitingNamespace(
            namespace=namespace,
            waiting=len(group),
            overdue=sum(r.overdue for r in group),
            next_release_at=min(
                (r.release_at for r in group if r.release_at is not None), default=None
            ),
            expected_savings_g=_sum(r.expected_savings_g for r in group),
        )
        for namespace, group in sorted(by_namespace.items())
    ]


def sort_waiting(rows: Iterable[WaitingRow]) -> list[WaitingRow]:
    """By namespace, then soonest release first (unknown release times last), then name."""
    latest = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r.namespace, r.release_at or latest, r.name))


def _relative(moment: datetime | None, now: datetime) -> str:
    """``2025-06-01T05:00:00Z (in 3h10m)`` — the time and how far it is from now."""
    if moment is None:
        return ""
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    hours, minutes = divmod(span // 60, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{span % 60:02d}s"
    return f"{format_time(moment)} ({'in ' + text if seconds >= 0 else text + ' ago'})"


def render_waiting(
    rows: list[WaitingRow],
    namespaces: list[WaitingNamespace],
    form: Literal["table", "json"],
    now: datetime,
) -> str:
    if form == "json":
        document = {
            "now": format_time(now),
            "jobs": [{k: _plain(v) for k, v in asdict(r).items()} for r in rows],
            "namespaces": [{k: _plain(v) for k, v in asdict(n).items()} for n in namespaces],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    if not rows:
        return "No deferred Jobs are waiting.\n"
    job_table = _table(
        [
            "NAMESPACE",
            "JOB",
            "RELEASE AT",
            "REASON",
            "SAVING g",
            "SAVING %",
            "RELEASE BY",
            "DEADLINE",
            "ZONE",
        ],
        [
            [
                r.namespace,
                r.label,
                _relative(r.release_at, now) + (" OVERDUE" if r.overdue else ""),
                r.reason_code,
                _cell(r.expected_savings_g),
                _cell(r.expected_savings_pct),
                _relative(r.release_by, now),
                "" if r.deadline is None else format_time(r.deadline),
                r.zone,
            ]
            for r in rows
        ],
        numeric=frozenset({4, 5}),
    )
    namespace_table = _table(
        ["NAMESPACE", "WAITING", "OVERDUE", "NEXT RELEASE", "SAVING g"],
        [
            [
                n.namespace,
                str(n.waiting),
                str(n.overdue),
                _relative(n.next_release_at, now),
                _cell(n.expected_savings_g),
            ]
            for n in namespaces
        ],
        numeric=frozenset({1, 2, 4}),
    )
    return f"{job_table}\n\n{namespace_table}\n"

"""Presenting a simulation: the JSON document, the table and the progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from webhook.sim.run import SimulationResult

ATTRIBUTION = "Carbon-intensity data: Electricity Maps (ODbL) where the file comes from it."


def to_json(result: SimulationResult) -> dict[str, Any]:
    return {
        "zone": result.zone,
        "trace": result.config.trace,
        "jobs": len(result.jobs),
        "carbon": str(result.config.carbon),
        "column": result.data.column,
        "time_zone": str(result.time_zone),
        "max_delay_h": result.config.max_delay_s / 3600,
        "threshold_g_per_kwh": result.config.threshold_g_per_kwh,
        "forecast": result.forecast,
        "vintages": str(result.config.vintages) if result.config.vintages is not None else None,
        "min_saving_pct": result.config.planner.min_saving_pct,
        "replan_moves": result.replan_moves,
        "policies": {name: metrics.as_dict() for name, metrics in result.metrics.items()},
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(result: SimulationResult) -> Table:
    table = Table(
        title=f"{result.zone} · trace {result.config.trace} · {len(result.jobs)} jobs · "
        f"greenlight forecast {result.forecast}",
        caption=ATTRIBUTION,
    )
    for header in (
        "policy",
        "reduction %",
        "of oracle %",
        "worse jobs %",
        "worse by % (mean)",
        "mean delay h",
        "p95 delay h",
        "max delay h",
        "deadline misses",
        "max releases/5min",
        "weekly reduction % (min/median/max)",
    ):
        table.add_column(header, justify="right" if header != "policy" else "left")
    for name, m in result.metrics.items():
        weekly = m.weekly_reduction_pct
        table.add_row(
            name,
            _pct(m.reduction_pct),
            _pct(m.oracle_capture_pct),
            _pct(m.worse_jobs_pct),
            _pct(m.worse_jobs_mean_extra_pct),
            f"{m.mean_delay_h:.2f}",
            f"{m.p95_delay_h:.2f}",
            f"{m.max_delay_h:.2f}",
            str(m.deadline_misses),
            str(m.max_releases_per_5min),
            f"{weekly.min:.1f} / {weekly.median:.1f} / {weekly.max:.1f}",
        )
    return table


@contextmanager
def progress_bar(console: Console) -> Iterator[Callable[[int, int], Callable[[int], None]]]:
    """A factory of progress callbacks, drawn on ``console`` only when it is a terminal."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:

        def factory(total: int, _completed: int) -> Callable[[int], None]:
            task = progress.add_task("replaying greenlight", total=total)
            return lambda advance: progress.advance(task, advance)

        yield factory

"""The simulation plot: intensity with arrivals and starts per policy, and the weekly spread."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from webhook.sim.metrics import emissions_g, reduction_pct
from webhook.sim.run import SimulationResult

SHOWN_DAYS = 7
COLORS = {
    "immediate": "#7f7f7f",
    "threshold": "#d62728",
    "greenlight": "#2ca02c",
    "oracle": "#1f77b4",
}


def _weekly(result: SimulationResult, name: str) -> list[float]:
    actual = result.data.actual
    immediate_g = emissions_g(
        result.jobs,
        result.starts.get("immediate", np.array([j.arrival for j in result.jobs])),
        actual,
    )
    policy_g = emissions_g(result.jobs, result.starts[name], actual)
    weeks = np.array(
        [
            datetime.fromtimestamp(job.arrival, tz=UTC)
            .astimezone(result.time_zone)
            .isocalendar()[1]
            for job in result.jobs
        ]
    )
    return [reduction_pct(policy_g[weeks == w], immediate_g[weeks == w]) for w in np.unique(weeks)]


def plot_result(result: SimulationResult, path: Path) -> None:
    """Write a two-panel PNG: one week of intensity with each policy's starts, and the
    distribution of weekly reductions per policy."""
    actual = result.data.actual
    first = result.jobs[len(result.jobs) // 2].arrival  # a week from the middle of the data
    last = first + SHOWN_DAYS * 86400
    longest_wait = max(job.max_delay_s + job.duration_s for job in result.jobs)
    window = actual.window(first, last + longest_wait)
    # The object-oriented API: no pyplot state, no GUI backend, safe in any thread.
    figure = Figure(figsize=(13, 8))
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 2])
    times = [datetime.fromtimestamp(t, tz=UTC) for t in window.times]
    top.step(
        times, window.values, where="post", color="black", linewidth=1.0, label="actual intensity"
    )
    arrivals = [job.arrival for job in result.jobs if first <= job.arrival < last]
    for arrival in arrivals:
        top.axvline(
            datetime.fromtimestamp(arrival, tz=UTC), color="#bbbbbb", linewidth=0.8, linestyle=":"
        )
    offsets = np.linspace(0.97, 0.85, num=max(len(result.starts), 1))
    top_value = float(np.max(window.values))
    for offset, (name, starts) in zip(offsets, result.starts.items(), strict=False):
        shown = [
            s for s, job in zip(starts, result.jobs, strict=True) if first <= job.arrival < last
        ]
        top.scatter(
            [datetime.fromtimestamp(int(s), tz=UTC) for s in shown],
            [top_value * offset] * len(shown),
            marker="v",
            color=COLORS.get(name, "purple"),
            label=f"{name} starts",
        )
    top.set_ylabel("gCO2eq/kWh")
    top.set_title(
        f"{result.zone}: one week of the replay (dotted: arrivals) — data: Electricity Maps"
        if result.data.format == "electricitymaps"
        else f"{result.zone}: one week of the replay (dotted: arrivals) — data: DACF"
    )
    top.legend(loc="lower left", fontsize=8, ncols=3)
    names = [name for name in result.starts if name != "immediate"]
    data = [_weekly(result, name) for name in names]
    if data:
        bottom.boxplot(data, tick_labels=names, orientation="horizontal")
    bottom.set_xlabel("weekly reduction vs immediate (%)")
    bottom.set_title(
        f"weekly spread over {len(result.jobs)} jobs, forecast source: {result.forecast}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)

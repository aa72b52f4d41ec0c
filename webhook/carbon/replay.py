"""Replay of recorded carbon-intensity files: the offline default, no key and no network.

Files are Electricity Maps data-portal exports or DACF files, loaded (and strictly validated) by
``webhook.core.datafiles``. The embedded default is a slice of real Electricity Maps data for eight
zones shipped in ``webhook/data/carbon/electricitymaps/`` (ODbL, see the ATTRIBUTION there).

Time shift, precisely: a file's usable span starts at ``S``, the first Monday 00:00 UTC at or
after its first row, and lasts ``L``, the largest whole number of weeks the file covers from
``S``. A wall-clock instant ``t`` replays the data at ``S + ((t - S) mod L)``: the same weekday
and UTC time of day (hour-of-week), looping every ``L``. Every answer is shifted back to wall
time, so a "latest" at 14:20 on a Tuesday is the recorded value of a Tuesday 14:00-15:00 step.
Where a window crosses the loop's end the data continues from ``S`` (one discontinuity per loop).

What each call returns: ``latest`` the step containing now; ``history`` the recorded values over
the window (up to now); ``forecast`` the steps from the current one to ``now + horizon`` — the
file's own day-ahead forecast for DACF files, and for Electricity Maps exports, which hold no
forecast, the recorded values themselves (perfect foresight: decisions are as good as a perfect
forecast would make them; use a DACF file for realistic forecast error). A zone with a
forecast-vintages file (``replay.vintages``; format in ``webhook.core.datafiles``) instead
serves the vintage that was current at the replayed instant, as issued — the newest issued at or
before it, ending where that vintage ends — so a re-plan sees the forecast a provider that
updates during the day would have given then.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from webhook.carbon.base import (
    IntensityData,
    ProviderConfigError,
    ProviderError,
    UnknownZoneError,
)
from webhook.core.datafiles import (
    CarbonFile,
    DataFileError,
    ForecastVintages,
    load_carbon_file,
    load_vintage_file,
)
from webhook.core.series import StepSeries, from_epoch

NAME = "replay"
WEEK_S = 7 * 24 * 3600
MONDAY_OFFSET_S = 4 * 24 * 3600
"""The epoch (1970-01-01) was a Thursday: Mondays 00:00 UTC are at 4 days + k weeks."""

EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "data" / "carbon" / "electricitymaps"


class ReplaySettings(BaseModel):
    """Replay of recorded data files (the default provider)."""

    model_config = ConfigDict(frozen=True)

    files: dict[str, Path] = Field(
        default_factory=dict,
        description="Zone -> data file (Electricity Maps export or DACF CSV); these take "
        "precedence over the embedded data. DACF files need their zone named here.",
    )
    vintages: dict[str, Path] = Field(
        default_factory=dict,
        description="Zone -> forecast-vintages file (issued_at,target_time,value): the zone's "
        "forecast is then the vintage current at the replayed instant, as issued, instead of "
        "the data file's own. The zone needs a data file (its actuals).",
    )
    embedded: bool = Field(
        True, description="Also serve the embedded slice of Electricity Maps data (8 zones)."
    )
    column: Literal["lca", "direct"] = Field(
        "lca",
        description="Life-cycle or direct intensity from Electricity Maps exports (DACF files "
        "only have direct).",
    )
    forecast_error_pct: float = Field(
        8.0,
        ge=0,
        le=100,
        description="Electricity Maps exports carry no forecast, so the replay forecasts the "
        "recorded future with an error that grows with the lead time like a real forecast's "
        "(AR(1), lag-1 0.85, this marginal standard deviation in percent; the same for every "
        "fetch within one data step). 0 = perfect foresight. DACF files replay their own "
        "recorded forecast.",
    )


FORECAST_ERROR_LAG1 = 0.85
"""Hour-to-hour autocorrelation of a real day-ahead forecast's error (0.8-0.9 measured)."""


def with_forecast_error(series: StepSeries, sigma: float, seed_key: str) -> StepSeries:
    """``series`` x (1 + e): e starts at 0 for the current step and follows an AR(1) process
    whose standard deviation grows toward ``sigma`` with the lead, seeded by ``seed_key`` so one
    issue time always gives the same forecast."""
    rng = np.random.default_rng(zlib.crc32(seed_key.encode()))
    shocks = rng.normal(0.0, sigma * np.sqrt(1 - FORECAST_ERROR_LAG1**2), size=len(series))
    errors = np.zeros(len(series))
    for index in range(1, len(series)):
        errors[index] = FORECAST_ERROR_LAG1 * errors[index - 1] + shocks[index]
    return StepSeries(series.times, series.values * (1 + errors), series.end)


def first_monday_at_or_after(moment: int) -> int:
    """The first Monday 00:00 UTC at or after ``moment`` (epoch seconds)."""
    return MONDAY_OFFSET_S + -(-(moment - MONDAY_OFFSET_S) // WEEK_S) * WEEK_S


@dataclass(frozen=True)
class ReplayTrack:
    """One zone's recorded data and its hour-of-week loop."""

    zone: str
    actual: StepSeries
    forecast: StepSeries | None
    origin: int
    loop_s: int
    source: str
    vintages: ForecastVintages | None = None

    @classmethod
    def from_file(cls, zone: str, data: CarbonFile) -> ReplayTrack:
        origin = first_monday_at_or_after(data.actual.start)
        loop_s = (data.actual.end - origin) // WEEK_S * WEEK_S
        if loop_s < WEEK_S:
            raise ProviderConfigError(
                NAME,
                f"{data.path}: needs at least one whole week from a Monday 00:00 UTC to replay "
                f"(it covers {from_epoch(data.actual.start).isoformat()} to "
                f"{from_epoch(data.actual.end).isoformat()})",
                zone=zone,
            )
        return cls(zone, data.actual, data.forecast, origin, int(loop_s), str(data.path))

    def data_time(self, wall: float) -> int:
        """The recorded instant replayed at wall-clock ``wall``."""
        return int(self.origin + (int(wall) - self.origin) % self.loop_s)

    def step_at(self, wall: float) -> tuple[int, int]:
        """Wall-clock ``[start, end)`` of the recorded step in force at ``wall``."""
        data_now = self.data_time(wall)
        times = self.actual.times
        index = int(np.searchsorted(times, data_now, side="right")) - 1
        step_start = max(int(times[index]), self.origin)
        step_end = int(times[index + 1]) if index + 1 < times.size else self.actual.end
        step_end = min(step_end, self.origin + self.loop_s)
        shift = int(wall) - data_now
        return step_start + shift, step_end + shift

    def window(self, series: StepSeries, start: int, end: int) -> StepSeries:
        """``series`` replayed over wall-clock ``[start, end)``, in wall-clock times."""
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        wall = start
        loop_end = self.origin + self.loop_s
        while wall < end:
            data_start = self.data_time(wall)
            length = min(end - wall, loop_end - data_start)
            part = series.window(data_start, data_start + length)
            part_times = part.times.copy()
            part_times[0] = max(int(part_times[0]), data_start)
            times.append(part_times + (wall - data_start))
            values.append(part.values)
            wall += length
        return StepSeries(np.concatenate(times), np.concatenate(values), end)


def load_tracks(settings: ReplaySettings) -> dict[str, ReplayTrack]:
    """Tracks from the configured files and (unless disabled) the embedded data; a bad file is
    a ``ProviderConfigError`` naming it and the problem."""
    sources: dict[str, Path] = {}
    if settings.embedded and EMBEDDED_DIR.is_dir():
        for path in sorted(EMBEDDED_DIR.glob("*.csv")):
            sources[path.stem] = path
    sources.update(settings.files)
    unmatched = sorted(set(settings.vintages) - set(sources))
    if unmatched:
        raise ProviderConfigError(
            NAME,
            f"forecast vintages for {unmatched} but no data file for them (their actuals): add "
            f"them to replay.files; zones with data: {', '.join(sorted(sources)) or 'none'}",
            zone=unmatched[0],
        )
    tracks: dict[str, ReplayTrack] = {}
    for key, path in sources.items():
        try:
            data = load_carbon_file(path, column=settings.column)
            vintage_path = settings.vintages.get(key)
            vintages = load_vintage_file(vintage_path) if vintage_path is not None else None
        except DataFileError as error:
            raise ProviderConfigError(NAME, str(error), zone=key) from error
        track = ReplayTrack.from_file(key, data)
        tracks[key] = replace(track, vintages=vintages) if vintages is not None else track
    return tracks


class ReplayProvider:
    """``Provider`` replaying recorded files, time-shifted to hour-of-week (see module doc)."""

    name = NAME

    def __init__(
        self,
        tracks: Mapping[str, ReplayTrack],
        *,
        clock: Callable[[], float] = time.time,
        forecast_error_pct: float = 0.0,
    ) -> None:
        self._tracks = {key.casefold(): track for key, track in tracks.items()}
        self._clock = clock
        self._forecast_error_pct = forecast_error_pct

    @classmethod
    def from_settings(
        cls, settings: ReplaySettings, *, clock: Callable[[], float] = time.time
    ) -> ReplayProvider:
        return cls(
            load_tracks(settings), clock=clock, forecast_error_pct=settings.forecast_error_pct
        )

    @property
    def zones(self) -> list[str]:
        return sorted(track.zone for track in self._tracks.values())

    def track(self, zone: str) -> ReplayTrack:
        track = self._tracks.get(zone.casefold())
        if track is None:
            raise UnknownZoneError(
                NAME,
                f"no replay data for zone {zone!r}; available: {', '.join(self.zones) or 'none'} "
                "(add a file with the replay.files setting or --replay-file)",
                zone=zone,
            )
        return track

    async def aclose(self) -> None:
        return None

    async def latest(self, zone: str) -> IntensityData:
        track = self.track(zone)
        now = self._clock()
        start, end = track.step_at(now)
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="latest",
            series=track.window(track.actual, start, end),
            fetched_at=int(now),
            estimated=False,
        )

    async def forecast(self, zone: str, horizon_s: int) -> IntensityData:
        track = self.track(zone)
        now = self._clock()
        if track.vintages is not None:
            return self._vintage(track, zone, now, horizon_s, track.vintages)
        start, _ = track.step_at(now)
        source = track.forecast if track.forecast is not None else track.actual
        series = track.window(source, start, max(int(now) + horizon_s, start + 1))
        simulated = track.forecast is None and self._forecast_error_pct > 0
        if simulated:
            series = with_forecast_error(series, self._forecast_error_pct / 100, f"{zone}:{start}")
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="forecast",
            series=series,
            fetched_at=int(now),
            estimated=track.forecast is not None or simulated,
            issued_at=int(now),
        )

    def _vintage(
        self,
        track: ReplayTrack,
        zone: str,
        now: float,
        horizon_s: int,
        vintages: ForecastVintages,
    ) -> IntensityData:
        data_now = track.data_time(now)
        current = vintages.current(data_now)
        if current is None or current[1].end <= data_now:
            at = from_epoch(data_now).isoformat()
            raise ProviderError(
                NAME,
                f"{vintages.path}: no forecast vintage covers {at} (replayed instant): "
                + ("none issued by then" if current is None else "the newest ended before it"),
                endpoint="forecast",
                zone=zone,
            )
        issued, vintage = current
        shift = int(now) - data_now
        series = vintage.window(data_now, data_now + max(horizon_s, 1))
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="forecast",
            series=StepSeries(series.times + shift, series.values, series.end + shift),
            fetched_at=int(now),
            estimated=True,
            issued_at=issued + shift,
        )

    async def history(self, zone: str, start: int, end: int) -> IntensityData:
        track = self.track(zone)
        now = self._clock()
        _, current_end = track.step_at(now)
        stop = min(end, current_end)
        if stop <= start:
            raise ProviderError(
                NAME,
                f"history window {from_epoch(start).isoformat()} to {from_epoch(end).isoformat()} "
                "lies in the future",
                endpoint="history",
                zone=zone,
            )
        return IntensityData(
            zone=zone,
            provider=NAME,
            kind="history",
            series=track.window(track.actual, start, stop),
            fetched_at=int(now),
            estimated=False,
        )

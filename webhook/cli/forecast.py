"""``greenlight forecast``: the latest carbon intensity and the forecast of a zone, from any
provider (default: the offline replay), as a table or as JSON for scripts.

Settings come from the same ``GREENLIGHT_*`` variables the server reads (for example
``GREENLIGHT_ELECTRICITYMAPS_API_KEY``); flags override them for one call. Every failure is
one line on stderr and exit status 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.carbon.base import IntensityData, Provider, ProviderName
    from webhook.carbon.config import ProviderSettings

# The same names as webhook.carbon.base.PROVIDER_NAMES (a test keeps them equal); spelled out
# here so that `greenlight --help` does not import the provider layer.
PROVIDER_CHOICES = ("replay", "electricitymaps", "watttime", "ukci", "carbonaware")
BASE_URL_SECTIONS = {
    "electricitymaps": "electricitymaps",
    "watttime": "watttime",
    "ukci": "ukci",
    "carbonaware": "carbonaware",
}
ATTRIBUTION = "Carbon-intensity data: Electricity Maps (electricitymaps.com), ODbL"


def _horizon(text: str) -> int:
    from webhook.core.durations import parse_duration

    try:
        return parse_duration(text, allow_zero=False)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="show the latest carbon intensity and the forecast of a grid zone",
        description=(
            "Print the latest carbon intensity (gCO2eq/kWh) and the forecast of a grid zone. "
            "The provider's settings come from GREENLIGHT_* variables (e.g. "
            "GREENLIGHT_ELECTRICITYMAPS_API_KEY); the default provider replays the embedded "
            "Electricity Maps data offline."
        ),
    )
    parser.add_argument(
        "--provider",
        choices=PROVIDER_CHOICES,
        help="carbon-intensity provider (default: GREENLIGHT_PROVIDER, else replay)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--zone", help="grid zone (e.g. DE; WattTime: a region such as CAISO_NORTH)")
    where.add_argument(
        "--region", help="cloud region mapped to a zone (e.g. eu-central-1; see GREENLIGHT_ZONES)"
    )
    parser.add_argument(
        "--base-url", metavar="URL", help="API root including its version (proxies, mirrors, tests)"
    )
    parser.add_argument(
        "--horizon",
        type=_horizon,
        default=24 * 3600,
        metavar="DURATION",
        help="forecast horizon, e.g. 6h or 48h (default 24h)",
    )
    parser.add_argument(
        "--emission-factor",
        choices=["lifecycle", "direct"],
        help="Electricity Maps emission factors, replay column (default lifecycle)",
    )
    parser.add_argument(
        "--replay-file", metavar="CSV", help="replay this Electricity Maps export or DACF file"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def _override(
    settings: ProviderSettings, args: argparse.Namespace, name: ProviderName
) -> ProviderSettings:
    """``settings`` with this call's flags applied."""
    update: dict[str, Any] = {}
    if args.base_url:
        section = BASE_URL_SECTIONS.get(name)
        if section is None:
            raise ValueError(f"--base-url does not apply to the {name} provider")
        update[section] = getattr(settings, section).model_copy(update={"base_url": args.base_url})
    replay = settings.replay
    if args.emission_factor:
        update["electricitymaps"] = settings.electricitymaps.model_copy(
            update={"emission_factor_type": args.emission_factor}
        )
        replay = replay.model_copy(update={"column": args.emission_factor})
    if args.replay_file:
        if name != "replay":
            raise ValueError("--replay-file needs --provider replay")
        if not args.zone:
            raise ValueError("--replay-file needs --zone (the zone the file is replayed as)")
        replay = replay.model_copy(
            update={"files": {**replay.files, args.zone: Path(args.replay_file)}}
        )
    update["replay"] = replay
    return settings.model_copy(update=update)


def _zone(args: argparse.Namespace, settings: ProviderSettings) -> str:
    if args.zone:
        return str(args.zone)
    zone = settings.zone_map().resolve(args.region)
    if zone is None:
        raise ValueError(
            f"no grid zone known for region {args.region!r}: use --zone, or map it with "
            "GREENLIGHT_ZONES='{\"" + args.region + '": "ZONE"}\''
        )
    return zone


def rfc3339(epoch_s: float) -> str:
    from webhook.core.series import from_epoch

    return from_epoch(epoch_s).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(
    zone: str,
    provider: str,
    latest: IntensityData,
    forecast: IntensityData,
    *,
    now: float,
    until: float,
) -> dict[str, Any]:
    """The ``--json`` document: the latest value, and the forecast steps that have not ended
    by ``now`` and start before ``until``."""
    series = forecast.series
    ends = [*series.times[1:].tolist(), series.end]
    return {
        "zone": zone,
        "provider": provider,
        "latest": {
            "time": rfc3339(float(latest.series.times[-1])),
            "intensity_g_per_kwh": round(latest.latest_value_g_per_kwh, 3),
        },
        "forecast": [
            {"time": rfc3339(float(t)), "intensity_g_per_kwh": round(float(v), 3)}
            for t, v, end in zip(series.times.tolist(), series.values.tolist(), ends, strict=True)
            if end > now and t < until
        ],
    }


def _print_table(document: dict[str, Any], *, estimated: bool, attribution: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = document["forecast"]
    values = [row["intensity_g_per_kwh"] for row in rows]
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    latest = document["latest"]
    table = Table(
        title=f"{document['zone']} carbon intensity — {document['provider']}",
        caption=(
            f"latest {latest['intensity_g_per_kwh']:g} gCO₂eq/kWh at {latest['time']}"
            + (" · forecast estimated by the provider" if estimated else "")
            + (f"\n{ATTRIBUTION}" if attribution else "")
        ),
    )
    table.add_column("time (UTC)")
    table.add_column("gCO₂eq/kWh", justify="right")
    table.add_column("", no_wrap=True)
    for row in rows:
        value = row["intensity_g_per_kwh"]
        share = (value - low) / (high - low) if high > low else 0.0
        colour = "green" if share < 1 / 3 else "yellow" if share < 2 / 3 else "red"
        table.add_row(row["time"], f"{value:.0f}", f"[{colour}]{'█' * (1 + round(share * 19))}")
    Console(file=sys.stdout).print(table)


def _uses_em_data(provider: Provider, zone: str) -> bool:
    from webhook.carbon.replay import EMBEDDED_DIR, ReplayProvider

    if provider.name == "electricitymaps":
        return True
    if isinstance(provider, ReplayProvider):
        return provider.track(zone).source.startswith(str(EMBEDDED_DIR))
    return False


async def _fetch(
    provider: Provider, zone: str, horizon_s: int
) -> tuple[IntensityData, IntensityData]:
    try:
        return await provider.latest(zone), await provider.forecast(zone, horizon_s)
    finally:
        await provider.aclose()


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import time

    from pydantic import ValidationError

    from webhook.carbon.base import ProviderError
    from webhook.carbon.config import load_provider_settings
    from webhook.carbon.registry import build_provider

    try:
        settings = load_provider_settings()
        name: ProviderName = args.provider or settings.provider
        settings = _override(settings, args, name)
        zone = _zone(args, settings)
        provider = build_provider(settings, name)
        attribution = _uses_em_data(provider, zone)
        now = time.time()
        latest, forecast = asyncio.run(_fetch(provider, zone, args.horizon))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        print(f"greenlight forecast: invalid setting {where}: {first['msg']}", file=sys.stderr)
        return 1
    except (ProviderError, ValueError) as error:
        print(f"greenlight forecast: {error}", file=sys.stderr)
        return 1
    document = report(zone, provider.name, latest, forecast, now=now, until=now + args.horizon)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print_table(document, estimated=forecast.estimated, attribution=attribution)
    return 0

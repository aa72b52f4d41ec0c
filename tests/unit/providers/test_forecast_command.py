"""``greenlight forecast`` end to end against a real local Electricity Maps-shaped server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from provider_fakes import fixture

from webhook.carbon.base import PROVIDER_NAMES
from webhook.cli.forecast import PROVIDER_CHOICES
from webhook.cli.main import main
from webhook.core.series import from_epoch

KEY = "cli-secret-key-555"


def stamp(epoch_s: int) -> str:
    return from_epoch(epoch_s).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class EmServer:
    """Answers like Electricity Maps v3; the first forecast request can be a 429."""

    port: int = 0
    first_forecast_429: bool = False
    forecast_status: int = 200
    seen: list[tuple[str, dict[str, list[str]], str | None]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def answer(
        self, path: str, query: dict[str, list[str]], key: str | None
    ) -> tuple[int, dict[str, str], Any]:
        self.seen.append((path, query, key))
        if key != KEY:
            return 401, {}, {"message": "Invalid auth-token"}
        zone = query["zone"][0]
        now = int(time.time()) // 3600 * 3600
        if path == "/v3/carbon-intensity/latest":
            return (
                200,
                {},
                {
                    "zone": zone,
                    "carbonIntensity": 321,
                    "datetime": stamp(now),
                    "updatedAt": stamp(now),
                    "isEstimated": True,
                },
            )
        if path == "/v3/carbon-intensity/forecast":
            forecasts = [p for p, _, _ in self.seen if p == path]
            if self.first_forecast_429 and len(forecasts) == 1:
                return 429, {"Retry-After": "1"}, {"message": "Too many requests"}
            if self.forecast_status == 401:
                return 401, {}, fixture("electricitymaps_401_unauthorized_endpoint_for_zone.json")
            hours = int(query["horizonHours"][0])
            return (
                200,
                {},
                {
                    "zone": zone,
                    "forecast": [
                        {"carbonIntensity": 300 + h, "datetime": stamp(now + h * 3600)}
                        for h in range(hours + 1)
                    ],
                    "updatedAt": stamp(now),
                },
            )
        return 404, {}, {"message": "not found"}


@pytest.fixture
def em_server() -> Iterator[EmServer]:
    state = EmServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, headers, body = state.answer(
                url.path, parse_qs(url.query), self.headers.get("auth-token")
            )
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_cli(*args: str) -> int:
    return main(["forecast", *args])


def test_json_against_an_electricity_maps_server_that_rate_limits_the_first_forecast(
    em_server: EmServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    em_server.first_forecast_429 = True
    monkeypatch.setenv("GREENLIGHT_ELECTRICITYMAPS_API_KEY", KEY)
    code = run_cli(
        "--provider",
        "electricitymaps",
        "--zone",
        "DE",
        "--base-url",
        em_server.base_url,
        "--horizon",
        "6h",
        "--json",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    assert list(document) == ["zone", "provider", "latest", "forecast"]
    assert document["zone"] == "DE"
    assert document["provider"] == "electricitymaps"
    assert document["latest"]["intensity_g_per_kwh"] == 321
    assert document["latest"]["time"].endswith(":00:00Z")
    values = [row["intensity_g_per_kwh"] for row in document["forecast"]]
    assert values[:6] == [300, 301, 302, 303, 304, 305]
    assert all(set(row) == {"time", "intensity_g_per_kwh"} for row in document["forecast"])
    forecasts = [query for path, query, _ in em_server.seen if path.endswith("/forecast")]
    assert len(forecasts) == 2  # the 429, then the retry after Retry-After
    assert forecasts[0]["horizonHours"] == ["6"]
    assert forecasts[0]["disableCallerLookup"] == ["true"]
    assert KEY not in out + err


def test_the_table_names_the_zone_values_and_attribution(
    em_server: EmServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GREENLIGHT_ELECTRICITYMAPS_API_KEY", KEY)
    code = run_cli(
        "--provider",
        "electricitymaps",
        "--zone",
        "DE",
        "--base-url",
        em_server.base_url,
        "--horizon",
        "2h",
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "DE carbon intensity — electricitymaps" in out
    assert "latest 321 gCO₂eq/kWh" in out
    assert "300" in out
    assert "Electricity Maps" in out


def test_the_offline_default_replays_embedded_data(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GREENLIGHT_PROVIDER", raising=False)
    assert run_cli("--region", "eu-central-1", "--horizon", "3h", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["zone"], document["provider"]) == ("DE", "replay")
    assert 3 <= len(document["forecast"]) <= 4
    assert document["forecast"][0]["time"] == document["latest"]["time"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--zone", "FR"], "no replay data for zone 'FR'", id="unknown-zone"),
        pytest.param(
            ["--region", "mars-1"], "no grid zone known for region 'mars-1'", id="unknown-region"
        ),
        pytest.param(
            ["--zone", "DE", "--base-url", "http://x/v3"],
            "--base-url does not apply to the replay provider",
            id="base-url-replay",
        ),
        pytest.param(
            ["--provider", "electricitymaps", "--zone", "DE"],
            "GREENLIGHT_ELECTRICITYMAPS_API_KEY",
            id="missing-key",
        ),
    ],
)
def test_errors_are_one_line_on_stderr_and_exit_1(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GREENLIGHT_ELECTRICITYMAPS_API_KEY", raising=False)
    monkeypatch.delenv("GREENLIGHT_PROVIDER", raising=False)
    assert run_cli(*args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("greenlight forecast: ")
    assert message in err


def cli_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    return subprocess.run(
        [sys.executable, "-m", "webhook", "--log-level", "ERROR", "forecast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **env},
        check=False,
    )


def test_a_plan_refusal_is_one_clear_line_without_a_traceback(em_server: EmServer) -> None:
    em_server.forecast_status = 401
    result = cli_process(
        "--provider",
        "electricitymaps",
        "--zone",
        "DK-DK2",
        "--base-url",
        em_server.base_url,
        GREENLIGHT_ELECTRICITYMAPS_API_KEY=KEY,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "greenlight forecast: electricitymaps: carbon-intensity/forecast for zone DK-DK2: not "
        "authorized (HTTP 401; a wrong key, or an endpoint or zone outside the key's plan): "
        "You do not have access to this specific endpoint for this specific zone. Request "
        "unauthorized for zoneKey=DK-DK2,requestType=past,dataType=carbon-intensity."
    ]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_one_clear_line() -> None:
    result = cli_process(
        "--provider",
        "electricitymaps",
        "--zone",
        "DE",
        "--base-url",
        f"http://127.0.0.1:{free_port()}/v3",
        GREENLIGHT_ELECTRICITYMAPS_API_KEY=KEY,
        GREENLIGHT_HTTP_MAX_ATTEMPTS="1",
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "cannot reach 127.0.0.1: ConnectError" in lines[0]
    assert "Traceback" not in result.stderr
    assert KEY not in result.stderr


def test_the_provider_choices_are_the_provider_names() -> None:
    assert PROVIDER_CHOICES == PROVIDER_NAMES


def test_an_invalid_setting_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GREENLIGHT_CACHE_TTL_S", "soon")
    assert run_cli("--zone", "DE") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("greenlight forecast: invalid setting cache.ttl_s:")

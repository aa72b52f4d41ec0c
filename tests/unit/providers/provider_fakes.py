"""Builders for provider tests: wire fixtures, a fake clock and sleep, a scripted HTTP edge."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_700_000_000  # 2023-11-14T22:13:20Z


def fixture(name: str) -> Any:
    """A provider wire example from fixtures/ (copied from ../shared/data/api-examples/)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass
class FakeClock:
    now: float = float(NOW)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordingSleep:
    """Records each delay and returns at once (advancing a clock when given one)."""

    clock: FakeClock | None = None
    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock.advance(delay)


Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def reply(
    payload: Any = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    text: str | None = None,
) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=payload, headers=headers)


@dataclass
class ScriptedApi:
    """An HTTP edge answering each path (matched by suffix) from a script: each request takes
    the next reply; the last one repeats. Every request is recorded."""

    script: dict[str, list[Reply]]
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        for suffix, replies in self.script.items():
            if path.endswith(suffix):
                item = replies.pop(0) if len(replies) > 1 else replies[0]
                if isinstance(item, Exception):
                    raise item
                if callable(item) and not isinstance(item, httpx.Response):
                    return item(request)
                return item
        return httpx.Response(404, json={"message": f"no route for {path}"})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def calls(self, suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(suffix)]

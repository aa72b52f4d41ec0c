"""The resilient HTTP client every network provider uses; the only module that imports httpx.

One request = bounded attempts. Between attempts: jittered exponential backoff, or exactly the
server's ``Retry-After`` on a 429 (seconds or an HTTP date). A ``Retry-After`` longer than
``max_retry_after_s`` is not waited for: the request fails at once with ``RateLimitedError`` (its
``retry_after_s`` says when to come back), so a refresh never hangs for an hour. Retried:
timeouts, connection failures, 5xx, 429. Not retried: 401/403 (``UnauthorizedError``), other 4xx
(``RejectedError``), malformed JSON (``BadResponseError``). Every httpx error is wrapped here, once.

Credentials travel only in headers or httpx's basic auth, and no message built here contains a
URL's query, a header or a body beyond the provider's own short error text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from webhook.carbon.base import (
    BadResponseError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RejectedError,
    UnauthorizedError,
    UnavailableError,
)

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_ERROR_TEXT_LIMIT = 300


class HttpSettings(BaseModel):
    """Timeouts and retries of every provider request."""

    model_config = ConfigDict(frozen=True)

    connect_timeout_s: float = Field(3.0, gt=0, description="TCP/TLS connect timeout.")
    read_timeout_s: float = Field(10.0, gt=0, description="Timeout for each read of the answer.")
    max_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per request, the first included."
    )
    backoff_initial_s: float = Field(
        0.5, ge=0, description="Backoff before the 2nd attempt; doubles per attempt, jittered."
    )
    backoff_max_s: float = Field(8.0, ge=0, description="Upper bound of one backoff.")
    max_retry_after_s: float = Field(
        60.0,
        ge=0,
        description="Longest 429 Retry-After honoured by waiting; a longer one fails the "
        "request at once with RateLimitedError.",
    )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), ``None``
    when absent or unparseable; a date in the past means 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, float(moment.timestamp()) - now)


def backoff_s(attempt: int, settings: HttpSettings, rng: Callable[[], float]) -> float:
    """Equal-jitter exponential backoff after failed attempt ``attempt`` (1-based)."""
    ceiling = min(settings.backoff_max_s, settings.backoff_initial_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def error_text(response: httpx.Response) -> str:
    """The provider's own short error message from a JSON or text body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    parts: list[str] = []
    if isinstance(payload, Mapping):
        for key in ("message", "error", "detail", "title"):
            item = payload.get(key)
            if isinstance(item, Mapping):
                item = item.get("message") or item.get("code")
            if isinstance(item, str) and item and item not in parts:
                parts.append(item)
    text = " ".join(parts) if parts else response.text.strip()
    text = " ".join(text.split())
    if len(text) > _ERROR_TEXT_LIMIT:
        text = text[:_ERROR_TEXT_LIMIT] + "..."
    return text or "(empty body)"


class ResilientClient:
    """An httpx.AsyncClient with timeouts, retries and error wrapping for one provider."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        settings: HttpSettings,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.provider = provider
        self._settings = settings
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=dict(headers or {}),
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_json(
        self,
        path: str,
        *,
        endpoint: str,
        zone: str | None = None,
        params: Mapping[str, str | int | float | bool] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """GET ``path`` (relative to the base URL, or absolute) and decode its JSON, retrying
        per the settings. ``endpoint`` is the name used in logs and errors."""
        query = {
            key: ("true" if value is True else "false" if value is False else value)
            for key, value in (params or {}).items()
        }
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            outcome, delay = await self._attempt(
                path,
                endpoint=endpoint,
                zone=zone,
                params=query,
                headers=headers,
                auth=auth,
                attempt=attempt,
            )
            if isinstance(outcome, _Success):
                return outcome.payload
            if attempt == attempts or delay is None:
                raise outcome
            logger.warning(
                "%s %s zone=%s attempt %d/%d failed (%s); retrying in %.1f s",
                self.provider,
                endpoint,
                zone,
                attempt,
                attempts,
                outcome.detail,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        path: str,
        *,
        endpoint: str,
        zone: str | None,
        params: Mapping[str, Any],
        headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
        attempt: int,
    ) -> tuple[_Success | ProviderError, float | None]:
        """One try: the decoded payload, or the error and the delay before the next try
        (``None``: do not retry)."""
        retry_in = backoff_s(attempt, self._settings, self._rng)
        try:
            response = await self._client.get(
                path,
                params=params,
                headers=headers,
                auth=auth if auth else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            limit = (
                self._settings.connect_timeout_s
                if kind == "connect"
                else self._settings.read_timeout_s
            )
            return ProviderTimeoutError(
                self.provider, f"{kind} timeout after {limit:g} s", endpoint=endpoint, zone=zone
            ), retry_in
        except httpx.TransportError as exc:
            return UnavailableError(
                self.provider,
                f"cannot reach {self._client.base_url.host}: {type(exc).__name__}: {exc}",
                endpoint=endpoint,
                zone=zone,
            ), retry_in
        status = response.status_code
        if 200 <= status < 300:
            try:
                return _Success(json.loads(response.content)), None
            except ValueError as exc:
                return BadResponseError(
                    self.provider, f"malformed JSON ({exc})", endpoint=endpoint, zone=zone
                ), None
        text = error_text(response)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
            limited = RateLimitedError(
                self.provider,
                f"rate limited (HTTP 429, Retry-After "
                f"{'absent' if retry_after is None else f'{retry_after:g} s'}): {text}",
                endpoint=endpoint,
                zone=zone,
                retry_after_s=retry_after,
            )
            if retry_after is None:
                return limited, retry_in
            if retry_after > self._settings.max_retry_after_s:
                return limited, None
            return limited, retry_after
        if status >= 500:
            return UnavailableError(
                self.provider, f"server error (HTTP {status}): {text}", endpoint=endpoint, zone=zone
            ), retry_in
        if status in (401, 403):
            return UnauthorizedError(
                self.provider,
                f"not authorized (HTTP {status}; a wrong key, or an endpoint or zone outside the "
                f"key's plan): {text}",
                endpoint=endpoint,
                zone=zone,
                status=status,
            ), None
        return RejectedError(
            self.provider,
            f"request rejected (HTTP {status}): {text}",
            endpoint=endpoint,
            zone=zone,
            status=status,
        ), None


class _HasBaseUrl(Protocol):
    @property
    def base_url(self) -> str: ...


class HttpProvider:
    """What every HTTP provider shares: a :class:`ResilientClient` on its settings' base URL,
    the clock and ``aclose``. Subclasses set ``name`` and add their endpoints."""

    name: str

    def __init__(
        self,
        settings: _HasBaseUrl,
        http: HttpSettings,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
    ) -> None:
        self._clock = clock
        self._client = ResilientClient(
            provider=self.name,
            base_url=settings.base_url,
            settings=http,
            headers=headers,
            transport=transport,
            sleep=sleep,
            clock=clock,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


class _Success:
    """A decoded answer (distinguished from an error without catching)."""

    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload

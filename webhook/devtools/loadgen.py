"""A small asyncio HTTP/1.1 load generator over keep-alive TLS connections, for benchmarks.

Leaner than an HTTP client library on purpose: the request bytes are built once and the client
does little per request, so on a small machine the measurement says more about the server than
about the client. Loopback targets only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

LOOPBACK_NAMES = frozenset({"localhost"})


class LoadError(RuntimeError):
    """A target that cannot be benchmarked, or a request that failed."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: ssl.SSLContext | None
    server_hostname: str | None

    @classmethod
    def from_url(cls, url: str, tls: ssl.SSLContext | None) -> Target:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host not in LOOPBACK_NAMES:
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise LoadError(f"{url}: only loopback targets are benchmarked")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        return cls(host, port, tls if secure else None, host if secure else None)


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    latencies_s: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000.0) if self.requests else 0.0


def post_request(host: str, path: str, body: bytes) -> bytes:
    """The bytes of one keep-alive ``POST path`` with a JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, target: Target) -> _Connection:
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=target.tls, server_hostname=target.server_hostname
        )
        return cls(reader, writer)

    async def roundtrip(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def _check(status: int) -> None:
    if status != 200:
        raise LoadError(f"the server answered HTTP {status}")


async def closed_loop(
    target: Target, request: bytes, *, connections: int, seconds: float, max_requests: int
) -> Result:
    """As fast as ``connections`` clients can go, each waiting for its answer."""
    opened = [await _Connection.open(target) for _ in range(connections)]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(connection: _Connection) -> None:
        while time.perf_counter() < deadline and len(latencies) < max_requests:
            sent = time.perf_counter()
            _check(await connection.roundtrip(request))
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in opened))
    finally:
        elapsed = time.perf_counter() - started
        for connection in opened:
            await connection.close()
    return Result(len(latencies), elapsed, np.array(latencies))


async def open_loop(
    target: Target, request: bytes, *, rate: float, seconds: float, connections: int
) -> Result:
    """Requests sent on a fixed schedule of ``rate`` per second whatever the answers do;
    latency counts from the scheduled send time (no coordinated omission)."""
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await _Connection.open(target))
    count = int(rate * seconds)
    latencies = np.zeros(count)
    started = time.perf_counter()

    async def one(index: int, scheduled: float) -> None:
        connection = await idle.get()
        try:
            _check(await connection.roundtrip(request))
        finally:
            idle.put_nowait(connection)
        latencies[index] = time.perf_counter() - scheduled

    tasks = []
    for index in range(count):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the schedule, not waiting for an event
        tasks.append(asyncio.create_task(one(index, scheduled)))
    try:
        await asyncio.gather(*tasks)
    finally:
        elapsed = time.perf_counter() - started
        while not idle.empty():
            await idle.get_nowait().close()
    return Result(count, elapsed, latencies)


async def get_status(target: Target, path: str) -> int:
    """The HTTP status of ``GET path`` (for readiness polls and probing routes)."""
    connection = await _Connection.open(target)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {target.host}\r\n\r\n".encode("ascii")
        return await connection.roundtrip(request)
    finally:
        await connection.close()

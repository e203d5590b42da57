"""A load generator for WebTransport servers (``pywebtransport bench URL``), in the spirit of h2load.

Scenarios (any WebTransport echo server works for all but ``download``):

* ``connect``: new QUIC connection + CONNECT + 200, then close; latency = time to ready.
* ``echo``: each worker opens a bidirectional stream per request, writes ``size`` bytes, ends
  its side and reads the whole reply.
* ``datagram``: each worker sends a datagram and waits for the echo (a sequence number in the
  last 8 bytes pairs replies with requests; one missing after a second counts as lost).
* ``upload``: each worker sends ``size`` bytes on a bidirectional stream and waits for the
  server to end its reply; throughput counts the bytes sent.
* ``download``: each worker asks for ``size`` bytes (``PWT-DOWNLOAD <size>\\n`` on a
  bidirectional stream: ``pywebtransport serve`` answers it) and reads them.

``--sessions`` sessions run ``--streams`` workers each, for ``--duration`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .client import WebTransportClient
from .config import ClientConfig
from .exceptions import TimeoutError as WTTimeoutError
from .session import WebTransportSession

__all__ = ["DOWNLOAD_REQUEST", "SCENARIOS", "BenchResult", "run_bench"]

SCENARIOS = ("connect", "echo", "datagram", "upload", "download")
DOWNLOAD_REQUEST = b"PWT-DOWNLOAD "
_CHUNK = 64 * 1024


@dataclass
class BenchResult:
    """What one ``run_bench`` measured."""

    scenario: str
    url: str
    sessions: int
    streams: int
    size: int
    duration: float
    operations: int = 0
    errors: int = 0
    lost: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        """Completed operations per second."""
        return self.operations / self.duration if self.duration else 0.0

    @property
    def throughput_mib(self) -> float:
        """Payload MiB per second (upload: sent, download: received, echo: both ways)."""
        return self.bytes / 2**20 / self.duration if self.duration else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (0 when nothing completed)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def to_dict(self) -> dict[str, Any]:
        """Summary for ``--json`` (latencies in milliseconds)."""
        data = {k: v for k, v in asdict(self).items() if k != "latencies"}
        data.update(
            rate_per_s=round(self.rate, 1),
            throughput_mib_s=round(self.throughput_mib, 2),
            latency_ms={f"p{p}": round(self.percentile(p) * 1000, 3) for p in (50, 90, 99)},
            latency_mean_ms=round(statistics.fmean(self.latencies) * 1000, 3) if self.latencies else 0.0,
        )
        return data

    def summary(self) -> str:
        """Human-readable lines."""
        lat = ", ".join(f"p{p} {self.percentile(p) * 1000:.3f} ms" for p in (50, 90, 99))
        lines = [
            f"{self.scenario} against {self.url}: {self.sessions} session(s) x {self.streams} worker(s), "
            f"{self.duration:.1f} s",
            f"  operations: {self.operations} ({self.rate:,.1f}/s), errors: {self.errors}, lost: {self.lost}",
            f"  latency:    {lat}",
        ]
        if self.bytes:
            lines.append(f"  payload:    {self.bytes:,} bytes ({self.throughput_mib:,.2f} MiB/s)")
        return "\n".join(lines)


async def run_bench(
    url: str,
    scenario: str = "echo",
    *,
    sessions: int = 1,
    streams: int = 1,
    duration: float = 5.0,
    size: int = 64,
    config: ClientConfig | None = None,
    progress: Callable[[BenchResult, float], None] | None = None,
) -> BenchResult:
    """Load `url` with `scenario` and return what was measured."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if sessions < 1 or streams < 1 or duration <= 0 or size < 0:
        raise ValueError("sessions and streams must be >= 1, duration > 0 and size >= 0")
    config = config or ClientConfig.create(verify_mode=ssl.CERT_NONE)
    result = BenchResult(scenario, url, sessions, streams, size, duration)
    started = time.monotonic()
    deadline = started + duration
    clients: list[WebTransportClient] = []
    ticker: asyncio.Task[None] | None = None
    try:
        if progress is not None:
            ticker = asyncio.ensure_future(_tick(result, started, progress))
        if scenario == "connect":
            await asyncio.gather(*(_connect_loop(url, config, deadline, result) for _ in range(sessions * streams)))
        else:
            client = WebTransportClient(config)
            await client.__aenter__()
            clients.append(client)
            opened = await asyncio.gather(*(client.connect(url) for _ in range(sessions)))
            deadline = time.monotonic() + duration
            started = deadline - duration
            await asyncio.gather(*(_session_load(s, scenario, streams, size, deadline, result) for s in opened))
    finally:
        if ticker is not None:
            ticker.cancel()
        for client in clients:
            await client.close()
    result.duration = max(1e-9, min(time.monotonic(), deadline + 1.0) - started)
    return result


async def _tick(result: BenchResult, started: float, progress: Callable[[BenchResult, float], None]) -> None:
    while True:
        await asyncio.sleep(0.5)
        progress(result, time.monotonic() - started)


async def _connect_loop(url: str, config: ClientConfig, deadline: float, result: BenchResult) -> None:
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            async with WebTransportClient(config) as client:
                session = await client.connect(url)
                result.latencies.append(time.perf_counter() - t0)
                result.operations += 1
                await session.close()
        except Exception:
            result.errors += 1
            await asyncio.sleep(0.05)


async def _session_load(session: WebTransportSession, scenario: str, streams: int, size: int, deadline: float,
                        result: BenchResult) -> None:
    if scenario == "datagram":
        await _datagrams(session, streams, size, deadline, result)
        return
    work = {"echo": _echo_once, "upload": _upload_once, "download": _download_once}[scenario]
    payload = os.urandom(size) if scenario != "download" else b""

    async def worker() -> None:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                moved = await work(session, payload, size)
            except Exception:
                result.errors += 1
                if session.is_closed:
                    return
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.operations += 1
            result.bytes += moved

    await asyncio.gather(*(worker() for _ in range(streams)))
    await session.close()


async def _echo_once(session: WebTransportSession, payload: bytes, size: int) -> int:
    stream = await session.create_bidirectional_stream()
    await stream.write_all(payload)
    reply = await stream.read_all()
    if len(reply) < len(payload):
        raise ValueError(f"short echo: {len(reply)} of {len(payload)} bytes")
    return len(payload) + len(reply)


async def _upload_once(session: WebTransportSession, payload: bytes, size: int) -> int:
    stream = await session.create_bidirectional_stream()
    for offset in range(0, len(payload), _CHUNK):
        await stream.write(payload[offset:offset + _CHUNK])
    await stream.write_all(b"")
    while await stream.read(_CHUNK):
        pass
    return len(payload)


async def _download_once(session: WebTransportSession, payload: bytes, size: int) -> int:
    stream = await session.create_bidirectional_stream()
    await stream.write_all(DOWNLOAD_REQUEST + str(size).encode() + b"\n")
    received = 0
    while chunk := await stream.read(_CHUNK):
        received += len(chunk)
    if received != size:
        raise ValueError(f"asked for {size} bytes, got {received}")
    return received


async def _datagrams(session: WebTransportSession, workers: int, size: int, deadline: float,
                     result: BenchResult) -> None:
    pending: dict[int, asyncio.Future[float]] = {}
    seq = 0
    body = os.urandom(max(0, size - 8))

    async def receiver() -> None:
        while True:
            data = await session.datagrams.receive()
            fut = pending.pop(int.from_bytes(data[-8:], "big"), None) if len(data) >= 8 else None
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())

    async def worker() -> None:
        nonlocal seq
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:
            seq += 1
            fut: asyncio.Future[float] = loop.create_future()
            pending[seq] = fut
            t0 = time.perf_counter()
            try:
                await session.datagrams.send(body + seq.to_bytes(8, "big"))
                t1 = await asyncio.wait_for(fut, 1.0)
            except (asyncio.TimeoutError, WTTimeoutError):
                pending.pop(seq, None)
                result.lost += 1
                continue
            except Exception:
                result.errors += 1
                if session.is_closed:
                    return
                continue
            result.latencies.append(t1 - t0)
            result.operations += 1
            result.bytes += len(body) + 8

    recv = asyncio.ensure_future(receiver())
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        recv.cancel()
    await session.close()


def progress_line(result: BenchResult, elapsed: float) -> None:
    """Write a one-line live status to stderr (terminals only)."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write(
        f"\r{result.scenario}: {elapsed:5.1f}/{result.duration:.0f} s  ops {result.operations}  "
        f"errors {result.errors}  lost {result.lost}  p50 {result.percentile(50) * 1000:.3f} ms   "
    )
    sys.stderr.flush()

"""0.1.x client extras: `WebTransportProxy`, `WebTransportBrowser` and two client utilities."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ..client import WebTransportClient
from ..config import ClientConfig
from ..exceptions import ClientError, TimeoutError
from ..session import WebTransportSession
from ..stream import WebTransportStream

__all__ = [
    "WebTransportBrowser",
    "WebTransportProxy",
    "benchmark_client_performance",
    "test_client_connectivity",
]

_MAX_PROXY_RESPONSE = 16384


class WebTransportProxy:
    """Tunnels connections through a WebTransport proxy with HTTP ``CONNECT``.

    `connect_through_proxy` opens (or reuses) a session to `proxy_url`, opens a
    bidirectional stream, writes ``CONNECT <target> HTTP/1.1`` with a ``Host`` header and
    the given headers, and reads the proxy's response head. On a 2xx status the stream
    is returned and carries the tunnelled bytes both ways; any other answer raises
    `ClientError`.
    """

    def __init__(self, *, proxy_url: str, config: ClientConfig | None = None) -> None:
        self._proxy_url = proxy_url
        self._client = WebTransportClient(config=config)
        self._session: WebTransportSession | None = None
        self._lock = asyncio.Lock()

    @property
    def proxy_url(self) -> str:
        """The proxy this object tunnels through."""
        return self._proxy_url

    async def _proxy_session(self, timeout: float) -> WebTransportSession:
        async with self._lock:
            if self._session is None or self._session.is_closed:
                self._session = await self._client.connect(self._proxy_url, timeout=timeout)
            return self._session

    async def connect_through_proxy(
        self, target_url: str, *, proxy_headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> WebTransportStream:
        """Open a tunnel to `target_url`; returns the stream that carries it."""
        deadline = time.monotonic() + timeout
        session = await self._proxy_session(timeout)
        stream = await session.create_bidirectional_stream()
        host = target_url.split("://", 1)[-1].split("/", 1)[0]
        lines = [f"CONNECT {target_url} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in (proxy_headers or {}).items()]
        await stream.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(self._read_head(stream), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            stream.abort()
            raise TimeoutError(
                f"proxy did not answer CONNECT {target_url} within {timeout}s",
                timeout_duration=timeout,
                operation="proxy_connect",
            ) from None
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            stream.abort()
            raise ClientError(f"malformed proxy response {status_line!r}", target_url=target_url)
        if not 200 <= int(parts[1]) < 300:
            stream.abort()
            raise ClientError(f"proxy refused CONNECT {target_url}: {status_line}", target_url=target_url)
        return stream

    @staticmethod
    async def _read_head(stream: WebTransportStream) -> bytes:
        head = b""
        while b"\r\n\r\n" not in head:
            if len(head) > _MAX_PROXY_RESPONSE:
                raise ClientError("proxy response head too large")
            byte = await stream.read(1)  # byte-wise: tunnelled bytes after the head stay unread
            if not byte:
                raise ClientError("proxy closed the stream before answering")
            head += byte
        return head

    async def close(self) -> None:
        """Close the proxy session and the underlying client."""
        await self._client.close()
        self._session = None

    async def __aenter__(self) -> WebTransportProxy:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class WebTransportBrowser:
    """Browser-like navigation: one current session, a history, back and forward.

    `navigate` closes the current session, opens one to the new URL and drops the
    forward history, as a browser does.
    """

    def __init__(self, *, config: ClientConfig | None = None) -> None:
        self._client = WebTransportClient(config=config)
        self._history: list[str] = []
        self._index = -1
        self._current: WebTransportSession | None = None

    @property
    def current_session(self) -> WebTransportSession | None:
        """The session of the current page, or None."""
        return self._current

    @property
    def current_url(self) -> str | None:
        """The URL of the current page, or None."""
        return self._history[self._index] if self._index >= 0 else None

    async def _open(self, url: str) -> WebTransportSession:
        if self._current is not None and not self._current.is_closed:
            await self._current.close()
        self._current = None
        self._current = await self._client.connect(url)
        return self._current

    async def navigate(self, url: str) -> WebTransportSession:
        """Open `url` and make it the newest history entry."""
        session = await self._open(url)
        del self._history[self._index + 1 :]
        self._history.append(url)
        self._index = len(self._history) - 1
        return session

    async def back(self) -> WebTransportSession | None:
        """Go to the previous URL; None when there is none."""
        if self._index <= 0:
            return None
        session = await self._open(self._history[self._index - 1])
        self._index -= 1
        return session

    async def forward(self) -> WebTransportSession | None:
        """Go to the next URL; None when there is none."""
        if self._index >= len(self._history) - 1:
            return None
        session = await self._open(self._history[self._index + 1])
        self._index += 1
        return session

    async def refresh(self) -> WebTransportSession | None:
        """Reconnect to the current URL; None before the first navigation."""
        url = self.current_url
        return None if url is None else await self._open(url)

    def get_history(self) -> list[str]:
        """Every visited URL, oldest first."""
        return list(self._history)

    async def close(self) -> None:
        """Close the current session and the client."""
        if self._current is not None:
            await self._current.close()
        self._current = None
        await self._client.close()

    async def __aenter__(self) -> WebTransportBrowser:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def benchmark_client_performance(
    url: str,
    *,
    config: ClientConfig | None = None,
    num_requests: int = 100,
    concurrent_requests: int = 10,
) -> dict[str, Any]:
    """Measure request latency: each request opens a session, sends a ping on a stream
    and waits for the first bytes back (`concurrent_requests` at a time).

    Returns ``total_requests``, ``successful_requests``, ``failed_requests``,
    ``latencies`` and, when any succeeded, ``avg_latency``/``min_latency``/``max_latency``.
    """
    gate = asyncio.Semaphore(concurrent_requests)
    latencies: list[float] = []
    failed = 0

    async def one(client: WebTransportClient) -> None:
        nonlocal failed
        async with gate:
            start = time.perf_counter()
            try:
                session = await client.connect(url)
                try:
                    stream = await session.create_bidirectional_stream()
                    await stream.write(b"benchmark_ping")
                    await stream.read(1024)
                finally:
                    await session.close()
            except Exception:
                failed += 1
                return
            latencies.append(time.perf_counter() - start)

    async with WebTransportClient(config=config) as client:
        await asyncio.gather(*(one(client) for _ in range(num_requests)))
    result: dict[str, Any] = {
        "total_requests": num_requests,
        "successful_requests": len(latencies),
        "failed_requests": failed,
        "latencies": latencies,
    }
    if latencies:
        result.update(
            avg_latency=sum(latencies) / len(latencies), min_latency=min(latencies), max_latency=max(latencies)
        )
    return result


async def test_client_connectivity(
    url: str, *, config: ClientConfig | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """Try to open one session to `url`.

    Returns ``success``, ``connect_time`` (None on failure), ``client_stats`` and, on
    failure, ``error``.
    """
    async with WebTransportClient(config=config) as client:
        start = time.perf_counter()
        try:
            session = await client.connect(url, timeout=timeout)
        except Exception as exc:
            return {"success": False, "error": str(exc), "connect_time": None, "client_stats": client.stats}
        connect_time = time.perf_counter() - start
        await session.close()
        return {"success": True, "connect_time": connect_time, "client_stats": client.stats}


test_client_connectivity.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

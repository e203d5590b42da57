"""0.1.x stream extras: `StreamBuffer` and `StreamManager`."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from ..exceptions import SessionError, StreamError, TimeoutError
from ..quic.buffer import ChunkBuffer
from ..quic.waiters import Waiters
from ._registry import Registry

if TYPE_CHECKING:
    from ..session import WebTransportSession
    from ..stream import WebTransportReceiveStream, WebTransportSendStream, WebTransportStream

    AnyStream: TypeAlias = WebTransportReceiveStream | WebTransportSendStream

__all__ = ["StreamBuffer", "StreamManager", "StreamPool"]

log = logging.getLogger("pywebtransport.pool")


class StreamBuffer:
    """An in-memory byte buffer with async reads, bounded by `max_size` bytes.

    `feed_data` raises `StreamError` rather than grow past `max_size`.
    """

    def __init__(self, max_size: int = 65536) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self._max_size = max_size
        self._chunks = ChunkBuffer()
        self._eof = False
        self._waiters = Waiters()

    @property
    def size(self) -> int:
        """Bytes buffered."""
        return self._chunks.size

    @property
    def max_size(self) -> int:
        """Bytes the buffer may hold."""
        return self._max_size

    @property
    def at_eof(self) -> bool:
        """True once `feed_eof` was called and every byte was read."""
        return self._eof and not self._chunks

    async def feed_data(self, data: bytes, eof: bool = False) -> None:
        """Append `data` (and mark the end when `eof`)."""
        if self._eof and data:
            raise StreamError("data fed after the end of the buffer")
        if self._chunks.size + len(data) > self._max_size:
            raise StreamError(f"stream buffer full ({self._max_size} bytes)")
        if data:
            self._chunks.append(bytes(data))
        if eof:
            self._eof = True
        self._waiters.wake_all()

    def feed_eof(self) -> None:
        """Mark the end of the data."""
        self._eof = True
        self._waiters.wake_all()

    async def read(self, size: int = -1, timeout: float | None = None) -> bytes:
        """Up to `size` bytes (all when negative); ``b""`` at the end.

        Waits for data; raises the library's `TimeoutError` after `timeout` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                while not self._chunks and not self._eof:
                    await self._waiters.wait()
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no data within {timeout}s", timeout_duration=timeout, operation="buffer_read"
            ) from None
        return self._chunks.take(size)

    def clear(self) -> int:
        """Drop the buffered bytes; returns how many."""
        return len(self._chunks.take())


class StreamManager:
    """Opens and tracks a session's streams, at most `max_streams` at a time.

    Closed streams are forgotten by `cleanup_closed_streams` and, while the manager is
    entered (``async with``), every `cleanup_interval` seconds.
    """

    def __init__(
        self, session: WebTransportSession, *, max_streams: int = 100, cleanup_interval: float = 60.0
    ) -> None:
        self._session = session
        self._registry: Registry[int, AnyStream] = Registry(
            limit=max_streams,
            cleanup_interval=cleanup_interval,
            is_closed=lambda s: s.is_closed,
            close=_close_stream,
            kind="stream",
        )

    @property
    def session(self) -> WebTransportSession:
        """The session whose streams are managed."""
        return self._session

    def __len__(self) -> int:
        return len(self._registry)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._registry

    def _check_room(self) -> None:
        if self._registry.is_full():
            self._registry.cleanup()
        if self._registry.is_full():
            raise StreamError(f"stream limit reached ({self._registry.limit})")

    async def create_bidirectional_stream(self) -> WebTransportStream:
        """Open a bidirectional stream on the session and track it."""
        self._check_room()
        stream = await self._session.create_bidirectional_stream()
        self._registry.add(stream.stream_id, stream)
        return stream

    async def create_unidirectional_stream(self) -> WebTransportSendStream:
        """Open a unidirectional stream on the session and track it."""
        self._check_room()
        stream = await self._session.create_unidirectional_stream()
        self._registry.add(stream.stream_id, stream)
        return stream

    async def add_stream(self, stream: AnyStream) -> None:
        """Track a stream opened elsewhere (for example by the peer)."""
        self._check_room()
        self._registry.add(stream.stream_id, stream)

    async def remove_stream(self, stream_id: int) -> AnyStream | None:
        """Stop tracking a stream; returns it (None if unknown)."""
        return self._registry.remove(stream_id)

    async def get_stream(self, stream_id: int) -> AnyStream | None:
        """The tracked stream with this id, or None."""
        return self._registry.get(stream_id)

    async def get_all_streams(self) -> list[AnyStream]:
        """Every tracked stream."""
        return self._registry.values()

    async def cleanup_closed_streams(self) -> int:
        """Forget closed streams now; returns how many."""
        return self._registry.cleanup()

    async def close_all_streams(self) -> int:
        """Finish (send side) or abort (receive side) every tracked stream."""
        return await self._registry.close_all()

    def get_stats(self) -> dict[str, Any]:
        """Counters: active, maximum, totals and the peak."""
        stats = self._registry.stats()
        return {
            "active_streams": stats["active_streams"],
            "max_streams": stats["max_streams"],
            "total_created": stats["total_added"],
            "total_closed": stats["total_removed"],
            "peak": stats["peak"],
        }

    async def shutdown(self) -> None:
        """Stop the sweep and close every tracked stream."""
        await self._registry.stop()
        await self._registry.close_all()

    async def __aenter__(self) -> StreamManager:
        self._registry.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()


async def _close_stream(stream: AnyStream) -> None:
    from ..stream import WebTransportSendStream  # the stream module imports this one

    if isinstance(stream, WebTransportSendStream):
        await stream.close()
    else:
        stream.abort()


class StreamPool:
    """Bidirectional streams of ``session`` opened ahead of time.

    Up to ``pool_size`` streams are kept ready; `get_stream` takes one (or
    opens one if the pool is empty) and the pool is topped up in the
    background.  `return_stream` keeps a still-writable stream for reuse.
    Note that the peer sees a pooled stream as soon as it is opened.
    """

    def __init__(self, session: WebTransportSession, pool_size: int = 10) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._session = session
        self._pool_size = pool_size
        self._available: deque[WebTransportStream] = deque()
        self._refill_task: asyncio.Task[None] | None = None
        self._closed = False
        self._stats = {"created": 0, "hits": 0, "misses": 0, "returned": 0}

    @property
    def available(self) -> int:
        """Streams ready to be handed out right now."""
        return len(self._available)

    @property
    def session(self) -> WebTransportSession:
        """The session the pooled streams belong to."""
        return self._session

    async def initialize(self) -> None:
        """Open streams until the pool is full."""
        await self._fill()

    async def _fill(self) -> None:
        while not self._closed and len(self._available) < self._pool_size and not self._session.is_closed:
            stream = await self._session.create_bidirectional_stream()
            self._stats["created"] += 1
            if self._closed:
                stream.abort()
                return
            self._available.append(stream)

    def _schedule_refill(self) -> None:
        if self._closed or (self._refill_task is not None and not self._refill_task.done()):
            return
        self._refill_task = asyncio.get_running_loop().create_task(self._refill())

    async def _refill(self) -> None:
        try:
            await self._fill()
        except Exception as exc:  # the session may be going away; next get_stream opens directly
            log.debug("stream pool refill stopped: %s", exc)

    @staticmethod
    def _usable(stream: WebTransportStream) -> bool:
        return stream.is_writable and stream.is_readable and not stream.is_closed

    async def get_stream(self, timeout: float | None = None) -> WebTransportStream:
        """A ready bidirectional stream (pooled if possible)."""
        if self._closed:
            raise SessionError("stream pool is closed", session_id=self._session.session_id)
        while self._available:
            stream = self._available.popleft()
            if self._usable(stream):
                self._stats["hits"] += 1
                self._schedule_refill()
                return stream
        self._stats["misses"] += 1
        stream = await self._session.create_bidirectional_stream(timeout=timeout)
        self._stats["created"] += 1
        self._schedule_refill()
        return stream

    async def return_stream(self, stream: WebTransportStream) -> None:
        """Put a stream back; it is finished instead if unusable or the pool is full."""
        if not self._closed and self._usable(stream) and len(self._available) < self._pool_size:
            self._available.append(stream)
            self._stats["returned"] += 1
            return
        if stream.is_writable:
            await stream.close()

    def get_stats(self) -> dict[str, Any]:
        """Pool counters plus the ``available`` stream count and the ``pool_size``."""
        return {**self._stats, "available": len(self._available), "pool_size": self._pool_size}

    async def close(self) -> None:
        """Stop refilling and finish every pooled stream."""
        self._closed = True
        if self._refill_task is not None:
            self._refill_task.cancel()
            await asyncio.gather(self._refill_task, return_exceptions=True)
        while self._available:
            stream = self._available.popleft()
            if stream.is_writable:
                await stream.close()

    async def __aenter__(self) -> "StreamPool":
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

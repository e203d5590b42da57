"""Datagrams of a WebTransport session (unreliable, unordered, size-limited)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any, NoReturn

from ._raising import fresh
from .compat.datagram import DatagramCompat, DatagramMessage, DatagramQueue, DatagramStats
from .datagram_extras import DatagramBroadcaster, DatagramReliabilityLayer
from .events import EventEmitter
from .exceptions import DatagramError, SessionError, TimeoutError
from .monitor import DatagramMonitor
from .quic import DatagramTooLarge, QuicError
from .quic.waiters import Waiters
from .types import EventType, SessionState

if TYPE_CHECKING:
    from .session import WebTransportSession

__all__ = [
    "DatagramBroadcaster",
    "DatagramMessage",
    "DatagramMonitor",
    "DatagramQueue",
    "DatagramReliabilityLayer",
    "DatagramStats",
    "WebTransportDatagramDuplexStream",
]


_USABLE = (SessionState.CONNECTED, SessionState.DRAINING)


def _varint_len(value: int) -> int:
    return 1 if value < 64 else 2 if value < 16384 else 4 if value < 1 << 30 else 8


class WebTransportDatagramDuplexStream(EventEmitter, DatagramCompat):
    """Send and receive a session's datagrams.

    Events: DATAGRAM_RECEIVED (``data``, ``size``, ``sequence``, ``age``), DATAGRAM_SENT
    (``size``, ``sequence``, ``send_time``), DATAGRAM_ERROR (``size``, ``error``).

    Incoming datagrams queue up to ``high_water_mark``; beyond that the oldest
    is dropped (and counted), as datagrams are unreliable anyway.
    """

    def __init__(self, session: "WebTransportSession", high_water_mark: int = 100) -> None:
        # Dropped when the session closes: session and channel point at each other, and
        # that cycle kept every closed session's connection alive until a GC pass.
        self._session: "WebTransportSession | None" = session
        self._queue: deque[bytes] | None = None  # made on the first datagram
        self._waiters = Waiters()
        self._error: Exception | None = None
        self.high_water_mark = high_water_mark
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.datagrams_dropped = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def max_datagram_size(self) -> int:
        """Largest payload that fits one QUIC datagram on the current path (0 once the session closed)."""
        session = self._session
        if session is None:  # closed
            return 0
        quic_max = session.connection.max_datagram_size
        room = max(0, quic_max - _varint_len(session.id >> 2))
        return min(room, session.connection.max_datagram_payload)  # config: max_datagram_size

    @property
    def is_closed(self) -> bool:
        """True once the session's datagram channel is closed."""
        return self._error is not None

    def _feed(self, data: bytes) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self.high_water_mark:
            queue.popleft()
            self.datagrams_dropped += 1
        queue.append(data)
        self.datagrams_received += 1
        self.bytes_received += len(data)
        self._waiters.wake_all()
        if self._ee_listened and EventType.DATAGRAM_RECEIVED in self._ee_listening:  # event hook
            self._ee_fire(EventType.DATAGRAM_RECEIVED, {"data": data, "size": len(data), "sequence": self.datagrams_received, "age": 0.0})
        session = self._session
        if session is not None and session._ee_listened and EventType.DATAGRAM_RECEIVED in session._ee_listening:  # event hook (session)
            session._ee_fire(EventType.DATAGRAM_RECEIVED, {"session_id": session.session_id, "data": data})

    def _close(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._session = None
        self._waiters.wake_all()

    def _check(self) -> "WebTransportSession":
        """The session, if datagrams can be sent; else raises why not."""
        if self._error is not None:
            raise fresh(self._error)
        session = self._session
        assert session is not None  # only _close drops it, and it sets _error first
        if session._state not in _USABLE:
            session._check_usable()
        return session

    def try_send(self, data: bytes | str) -> None:
        """Send one datagram now; raises DatagramError if it cannot be sent."""
        if type(data) is not bytes:
            if isinstance(data, str):
                data = data.encode()
            elif isinstance(data, (bytes, bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(f"datagram must be bytes or str, not {type(data).__name__}")
        session = self._check()
        cap = session.connection.max_datagram_payload  # config: max_datagram_size
        if len(data) > cap:
            self._too_large(len(data), cap)
        try:
            # The QUIC layer checks the size against the path's current limit.
            session.connection.send_datagram(session.id, data)
        except DatagramTooLarge as exc:
            self._too_large(len(data), max(0, exc.max_size - _varint_len(session.id >> 2)))
        except QuicError as exc:
            if self._ee_listened and EventType.DATAGRAM_ERROR in self._ee_listening:  # event hook
                self._ee_fire(EventType.DATAGRAM_ERROR, {"size": len(data), "error": str(exc)})
            raise DatagramError(f"datagram not sent: {exc}", datagram_size=len(data)) from None
        self.datagrams_sent += 1
        self.bytes_sent += len(data)
        session._stats["datagrams_sent"] += 1
        if self._ee_listened and EventType.DATAGRAM_SENT in self._ee_listening:  # event hook
            self._ee_fire(EventType.DATAGRAM_SENT, {"size": len(data), "sequence": self.datagrams_sent, "send_time": time.time()})

    def _too_large(self, size: int, limit: int) -> NoReturn:
        error = f"datagram of {size} bytes exceeds the maximum of {limit} bytes"
        if self._ee_listened and EventType.DATAGRAM_ERROR in self._ee_listening:  # event hook
            self._ee_fire(EventType.DATAGRAM_ERROR, {"size": size, "error": error})
        raise DatagramError(error, datagram_size=size, max_size=limit)

    async def send(self, data: bytes | str, priority: int = 0, ttl: float | None = None) -> None:
        """Send one datagram (``priority`` and ``ttl`` are accepted for compatibility)."""
        self.try_send(data)

    async def send_multiple(self, datagrams: list[bytes]) -> int:
        """Send several datagrams now; returns how many were sent."""
        for d in datagrams:
            self.try_send(d)
        return len(datagrams)

    def try_receive(self) -> bytes | None:
        """The next queued datagram, or None without waiting."""
        return self._queue.popleft() if self._queue else None

    async def receive(self, timeout: float | None = None) -> bytes:
        """Next datagram; raises the session's error once it is closed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._queue:
            if self._error is not None:
                raise fresh(self._error)
            try:
                if deadline is None:
                    await self._waiters.wait()
                else:
                    await asyncio.wait_for(self._waiters.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"no datagram within {timeout}s", timeout_duration=timeout, operation="receive_datagram"
                ) from None
        return self._queue.popleft()

    async def receive_multiple(self, max_count: int = 10) -> list[bytes]:
        """Wait for one datagram, then return it with up to `max_count` - 1 more that are queued."""
        first = await self.receive()
        out = [first]
        while self._queue and len(out) < max_count:
            out.append(self._queue.popleft())
        return out

    async def receive_with_metadata(self, timeout: float | None = None) -> dict[str, Any]:
        """The next datagram with its size and arrival time, as a dict."""
        data = await self.receive(timeout)
        return {"data": data, "timestamp": time.time(), "size": len(data)}

    async def send_json(self, obj: Any) -> None:
        """Send `obj` encoded as compact JSON in one datagram."""
        await self.send(json.dumps(obj, separators=(",", ":")).encode())

    async def receive_json(self, timeout: float | None = None) -> Any:
        """Receive one datagram and decode it as JSON."""
        return json.loads(await self.receive(timeout))

    def get_receive_buffer_size(self) -> int:
        """Number of received datagrams waiting to be read."""
        return len(self._queue or ())

    def clear_receive_buffer(self) -> int:
        """Drop every queued datagram; returns how many were dropped."""
        queue = self._queue
        if not queue:
            return 0
        n = len(queue)
        queue.clear()
        return n

    @property
    def stats(self) -> dict[str, int]:
        """Datagram counters (sent, received, dropped, bytes) as a dict."""
        return {
            "datagrams_sent": self.datagrams_sent,
            "datagrams_received": self.datagrams_received,
            "datagrams_dropped": self.datagrams_dropped,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
        }

    async def close(self) -> None:
        """Close the datagram channel (the session stays open)."""
        self._close(SessionError("datagram stream closed"))

from .structured import StructuredDatagramTransport as StructuredDatagramTransport  # noqa: E402

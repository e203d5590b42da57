"""0.1.x datagram extras: `DatagramMessage`, `DatagramQueue`, `DatagramStats`."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import DatagramError, TimeoutError

if TYPE_CHECKING:
    from ..datagram import WebTransportDatagramDuplexStream

__all__ = ["DatagramCompat", "DatagramMessage", "DatagramQueue", "DatagramStats"]


class DatagramCompat:
    """0.1.x conveniences of `WebTransportDatagramDuplexStream` (a mixin; the core never calls these).

    Structured datagrams are framed ``[u8 type length][type, UTF-8][payload]``; heartbeats
    are ``b"HEARTBEAT:<unix time>"``.
    """

    async def send_structured(self: WebTransportDatagramDuplexStream, message_type: str, payload: bytes) -> None:  # type: ignore[misc]
        """Send one datagram tagged with `message_type` (at most 255 bytes of UTF-8)."""
        tag = message_type.encode()
        if not 0 < len(tag) <= 255:
            raise DatagramError(f"message type must be 1..255 bytes, got {len(tag)}")
        await self.send(bytes([len(tag)]) + tag + bytes(payload))

    async def receive_structured(self: WebTransportDatagramDuplexStream, timeout: float | None = None) -> tuple[str, bytes]:  # type: ignore[misc]
        """Receive one structured datagram: ``(message_type, payload)``."""
        data = await self.receive(timeout)
        if not data or len(data) < 1 + data[0] or data[0] == 0:
            raise DatagramError("malformed structured datagram", datagram_size=len(data))
        end = 1 + data[0]
        try:
            tag = data[1:end].decode()
        except UnicodeDecodeError:
            raise DatagramError("structured datagram type is not UTF-8", datagram_size=len(data)) from None
        return tag, data[end:]

    def start_heartbeat(self: WebTransportDatagramDuplexStream, interval: float = 30.0) -> asyncio.Task[None]:  # type: ignore[misc]
        """Send ``HEARTBEAT:<time>`` every `interval` seconds until the channel closes; returns the task."""
        if interval <= 0:
            raise ValueError("interval must be positive")

        async def beat() -> None:
            while not self.is_closed:
                try:
                    await self.send(f"HEARTBEAT:{time.time():.3f}".encode())
                except DatagramError:
                    pass
                except Exception:
                    return  # the session is gone
                await asyncio.sleep(interval)

        return asyncio.get_running_loop().create_task(beat())

    @property
    def send_sequence(self: WebTransportDatagramDuplexStream) -> int:  # type: ignore[misc]
        """Number of datagrams sent so far (the sequence of the last one)."""
        return self.datagrams_sent

    @property
    def receive_sequence(self: WebTransportDatagramDuplexStream) -> int:  # type: ignore[misc]
        """Number of datagrams received so far."""
        return self.datagrams_received

    def get_send_buffer_size(self) -> int:
        """Datagrams waiting to be sent: always 0, sends go to QUIC at once."""
        return 0

    def clear_send_buffer(self) -> int:
        """Nothing is buffered for sending; returns 0."""
        return 0

    def get_queue_stats(self: WebTransportDatagramDuplexStream) -> dict[str, Any]:  # type: ignore[misc]
        """Sizes of the send and receive queues and the receive limit."""
        return {
            "outgoing": {"size": 0},
            "incoming": {
                "size": self.get_receive_buffer_size(),
                "max_size": self.high_water_mark,
                "dropped": self.datagrams_dropped,
            },
        }


@dataclass
class DatagramMessage:
    """One datagram with its metadata: priority (higher first), time to live, sequence."""

    data: bytes
    timestamp: float = field(default_factory=time.time)
    size: int = 0
    sequence: int | None = None
    priority: int = 0
    ttl: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = self.data.encode()
        self.size = len(self.data)

    @property
    def age(self) -> float:
        """Seconds since the message was created."""
        return time.time() - self.timestamp

    @property
    def is_expired(self) -> bool:
        """Whether the message outlived its `ttl`."""
        return self.ttl is not None and self.age > self.ttl

    def to_dict(self) -> dict[str, Any]:
        """The metadata (not the payload) as a dict."""
        return {
            "size": self.size,
            "timestamp": self.timestamp,
            "sequence": self.sequence,
            "priority": self.priority,
            "ttl": self.ttl,
            "age": self.age,
            "is_expired": self.is_expired,
        }


@dataclass
class DatagramStats:
    """Counters of a datagram channel."""

    session_id: str = ""
    created_at: float = field(default_factory=time.time)
    datagrams_sent: int = 0
    bytes_sent: int = 0
    send_failures: int = 0
    send_drops: int = 0
    datagrams_received: int = 0
    bytes_received: int = 0
    receive_drops: int = 0
    receive_errors: int = 0
    total_send_time: float = 0.0
    max_send_time: float = 0.0
    min_send_time: float = float("inf")

    def record_send(self, size: int, send_time: float = 0.0) -> None:
        """Count one sent datagram of `size` bytes that took `send_time` seconds."""
        self.datagrams_sent += 1
        self.bytes_sent += size
        self.total_send_time += send_time
        self.max_send_time = max(self.max_send_time, send_time)
        self.min_send_time = min(self.min_send_time, send_time)

    def record_receive(self, size: int) -> None:
        """Count one received datagram of `size` bytes."""
        self.datagrams_received += 1
        self.bytes_received += size

    @property
    def avg_send_time(self) -> float:
        """Mean send time in seconds."""
        return self.total_send_time / self.datagrams_sent if self.datagrams_sent else 0.0

    @property
    def avg_datagram_size(self) -> float:
        """Mean size of sent and received datagrams."""
        count = self.datagrams_sent + self.datagrams_received
        return (self.bytes_sent + self.bytes_received) / count if count else 0.0

    @property
    def send_success_rate(self) -> float:
        """Share of send attempts that succeeded."""
        attempts = self.datagrams_sent + self.send_failures
        return self.datagrams_sent / attempts if attempts else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Every counter and derived value as a dict."""
        return {
            "session_id": self.session_id,
            "created_at": self.created_at,
            "datagrams_sent": self.datagrams_sent,
            "bytes_sent": self.bytes_sent,
            "send_failures": self.send_failures,
            "send_drops": self.send_drops,
            "datagrams_received": self.datagrams_received,
            "bytes_received": self.bytes_received,
            "receive_drops": self.receive_drops,
            "receive_errors": self.receive_errors,
            "avg_send_time": self.avg_send_time,
            "max_send_time": self.max_send_time,
            "min_send_time": self.min_send_time if self.datagrams_sent else 0.0,
            "avg_datagram_size": self.avg_datagram_size,
            "send_success_rate": self.send_success_rate,
        }


class DatagramQueue:
    """A bounded priority queue of `DatagramMessage` (higher priority first, then FIFO).

    Messages older than `max_age` seconds (or their own ttl) are dropped when taken.
    `put` returns False when the queue is full.
    """

    def __init__(self, max_size: int = 1000, max_age: float | None = None) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self._max_size = max_size
        self._max_age = max_age
        self._heap: list[tuple[int, int, DatagramMessage]] = []
        self._order = itertools.count()
        self._event: asyncio.Event | None = None
        self.dropped = 0

    def _signal(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def _expired(self, message: DatagramMessage) -> bool:
        return message.is_expired or (self._max_age is not None and message.age > self._max_age)

    async def put(self, message: DatagramMessage) -> bool:
        """Queue `message`; False (and counted as dropped) when the queue is full."""
        if len(self._heap) >= self._max_size:
            self.cleanup_expired()
        if len(self._heap) >= self._max_size:
            self.dropped += 1
            return False
        heapq.heappush(self._heap, (-message.priority, next(self._order), message))
        self._signal().set()
        return True

    def put_nowait(self, message: DatagramMessage) -> bool:
        """`put` without awaiting."""
        if len(self._heap) >= self._max_size:
            self.cleanup_expired()
        if len(self._heap) >= self._max_size:
            self.dropped += 1
            return False
        heapq.heappush(self._heap, (-message.priority, next(self._order), message))
        self._signal().set()
        return True

    def get_nowait(self) -> DatagramMessage | None:
        """The next unexpired message, or None."""
        while self._heap:
            message = heapq.heappop(self._heap)[2]
            if not self._expired(message):
                return message
            self.dropped += 1
        if self._event is not None:
            self._event.clear()
        return None

    async def get(self, timeout: float | None = None) -> DatagramMessage:
        """The next unexpired message, waiting up to `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = self.get_nowait()
                    if message is not None:
                        return message
                    await self._signal().wait()
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no datagram queued within {timeout}s", timeout_duration=timeout, operation="queue_get"
            ) from None

    def cleanup_expired(self) -> int:
        """Drop expired messages now; returns how many."""
        kept = [entry for entry in self._heap if not self._expired(entry[2])]
        removed = len(self._heap) - len(kept)
        if removed:
            heapq.heapify(kept)
            self._heap = kept
            self.dropped += removed
        return removed

    def qsize(self) -> int:
        """Messages queued (expired ones included until taken)."""
        return len(self._heap)

    def empty(self) -> bool:
        """Whether nothing is queued."""
        return not self._heap

    def clear(self) -> int:
        """Drop everything; returns how many."""
        n = len(self._heap)
        self._heap.clear()
        return n

    def get_stats(self) -> dict[str, Any]:
        """Size, capacity and drops."""
        return {"size": len(self._heap), "max_size": self._max_size, "max_age": self._max_age, "dropped": self.dropped}

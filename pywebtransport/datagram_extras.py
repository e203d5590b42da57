"""Datagram helpers: fan-out to many sessions and an ACK/retransmit layer.

`DatagramReliabilityLayer` frames every datagram it sends as::

    DATA: 0x01 | seq (u32, big endian) | payload
    ACK:  0x02 | seq (u32, big endian)

A DATA frame is sent again every ``ack_timeout`` seconds until its ACK
arrives or ``max_retries`` retransmissions were made.  Received DATA frames
are always acknowledged, but each sequence number is delivered only once.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._raising import fresh
from .exceptions import DatagramError, SessionError, TimeoutError

if TYPE_CHECKING:
    from .datagram import WebTransportDatagramDuplexStream

__all__ = ["DatagramBroadcaster", "DatagramChannel", "DatagramReliabilityLayer"]

log = logging.getLogger("pywebtransport.datagram")


class DatagramChannel(Protocol):
    """What the helpers need from a datagram stream (duck-typed for wrappers)."""

    async def send(self, data: bytes | str, priority: int = 0, ttl: float | None = None) -> None:
        """Send one datagram."""

    async def receive(self, timeout: float | None = None) -> bytes:
        """Wait for the next datagram (at most ``timeout`` seconds)."""


class DatagramBroadcaster:
    """Sends one datagram to many datagram streams (e.g. every connected session)."""

    def __init__(self, streams: Iterable[WebTransportDatagramDuplexStream] = ()) -> None:
        self._streams: list[WebTransportDatagramDuplexStream] = []
        for s in streams:
            self.add_stream(s)
        self.broadcasts = 0
        self.failures = 0

    @property
    def streams(self) -> list[WebTransportDatagramDuplexStream]:
        """The streams datagrams are broadcast to (a copy of the list)."""
        return list(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def add_stream(self, stream: WebTransportDatagramDuplexStream) -> None:
        """Add ``stream`` to the broadcast set (no-op if already present)."""
        if stream not in self._streams:
            self._streams.append(stream)

    def remove_stream(self, stream: WebTransportDatagramDuplexStream) -> None:
        """Remove ``stream`` from the broadcast set (no-op if absent)."""
        if stream in self._streams:
            self._streams.remove(stream)

    async def broadcast(self, data: bytes | str, priority: int = 0, ttl: float | None = None) -> int:
        """Send ``data`` to every stream; returns how many sends succeeded.

        Streams that are closed are removed; other per-stream errors (e.g. a
        datagram too large for one path) are counted and skipped.
        """
        self.broadcasts += 1
        sent = 0
        for stream in list(self._streams):
            if stream.is_closed:
                self.remove_stream(stream)
                continue
            try:
                await stream.send(data, priority=priority, ttl=ttl)
            except (DatagramError, SessionError) as exc:
                self.failures += 1
                if stream.is_closed or isinstance(exc, SessionError):
                    self.remove_stream(stream)
                continue
            sent += 1
        return sent


_DATA = 0x01
_ACK = 0x02
_HEADER = struct.Struct("!BI")
_SEQ_MOD = 1 << 32


@dataclass
class _Pending:
    frame: bytes
    sent_at: float
    done: asyncio.Future[None]
    retries: int = 0


@dataclass
class _Stats:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    retransmissions: int = 0
    received: int = 0
    duplicates: int = 0
    acks_sent: int = 0
    invalid: int = 0


class DatagramReliabilityLayer:
    """Acknowledged, retransmitted, de-duplicated messages over datagrams.

    Delivery is at-most-once per message and in arrival order (not send
    order).  The layer must be the only reader of ``datagram_stream``.  Use it
    as an async context manager or call `close()` when done.
    """

    def __init__(
        self,
        datagram_stream: DatagramChannel,
        ack_timeout: float = 2.0,
        max_retries: int = 5,
        *,
        dedup_window: int = 4096,
        max_pending: int = 1024,
    ) -> None:
        if ack_timeout <= 0:
            raise ValueError("ack_timeout must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._stream = datagram_stream
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self._dedup_window = dedup_window
        self._max_pending = max_pending
        self._next_seq = 0
        self._pending: dict[int, _Pending] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._inbox: deque[bytes] = deque()
        self._inbox_waiter: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._retransmitter: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._stats = _Stats()

    @property
    def pending_count(self) -> int:
        """Messages sent but not yet acknowledged."""
        return len(self._pending)

    @property
    def is_closed(self) -> bool:
        """Whether the layer has been closed."""
        return self._closed

    @property
    def stats(self) -> dict[str, int]:
        """Counters: sent, acked, failed, retransmissions, received, duplicates, acks_sent and invalid."""
        s = self._stats
        return {
            "sent": s.sent,
            "acked": s.acked,
            "failed": s.failed,
            "retransmissions": s.retransmissions,
            "received": s.received,
            "duplicates": s.duplicates,
            "acks_sent": s.acks_sent,
            "invalid": s.invalid,
            "pending": len(self._pending),
        }

    def start(self) -> None:
        """Start reading and retransmitting (done implicitly by send/receive)."""
        if self._closed:
            raise DatagramError("reliability layer is closed")
        loop = asyncio.get_running_loop()
        if self._reader is None:
            self._reader = loop.create_task(self._read_loop())
        if self._retransmitter is None:
            self._retransmitter = loop.create_task(self._retransmit_loop())

    # -- sending -----------------------------------------------------------------
    async def send(self, data: bytes | str, wait_for_ack: bool = False) -> int:
        """Send one message; returns its sequence number.

        With ``wait_for_ack`` the call returns only once the peer acknowledged
        it, raising `DatagramError` if all retransmissions went unanswered.
        """
        self.start()
        self._check()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if len(self._pending) >= self._max_pending:
            raise DatagramError(f"too many unacknowledged messages ({self._max_pending})")
        seq = self._next_seq
        self._next_seq = (seq + 1) % _SEQ_MOD
        frame = _HEADER.pack(_DATA, seq) + payload
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[seq] = _Pending(frame, time.monotonic(), done)
        try:
            await self._stream.send(frame)
        except BaseException:
            self._pending.pop(seq, None)
            raise
        self._stats.sent += 1
        if wait_for_ack:
            await asyncio.shield(done)
        return seq

    async def wait_all_acked(self, timeout: float | None = None) -> None:
        """Wait until every message sent so far is acknowledged (or failed)."""
        futures = [p.done for p in self._pending.values()]
        if not futures:
            return
        done, not_done = await asyncio.wait(futures, timeout=timeout)
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} message(s) unacknowledged after {timeout}s",
                timeout_duration=timeout,
                operation="wait_all_acked",
            )
        for fut in done:
            if fut.exception() is not None:
                raise DatagramError(f"message not acknowledged: {fut.exception()}")

    async def _retransmit_loop(self) -> None:
        tick = self.ack_timeout / 4
        while not self._closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for seq, entry in list(self._pending.items()):
                if now - entry.sent_at < self.ack_timeout:
                    continue
                if entry.retries >= self.max_retries:
                    del self._pending[seq]
                    self._stats.failed += 1
                    if not entry.done.done():
                        entry.done.set_exception(
                            DatagramError(f"message {seq} not acknowledged after {entry.retries} retransmissions")
                        )
                        entry.done.exception()  # retrieved: nobody may be waiting
                    continue
                entry.retries += 1
                entry.sent_at = now
                self._stats.retransmissions += 1
                try:
                    await self._stream.send(entry.frame)
                except Exception as exc:
                    self._fail(exc)
                    return

    # -- receiving ---------------------------------------------------------------
    async def receive(self, timeout: float | None = None) -> bytes:
        """Next message from the peer (each delivered once)."""
        self.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._inbox:
            self._check()
            fut = loop.create_future()
            self._inbox_waiter = fut
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"no message within {timeout}s", timeout_duration=timeout, operation="reliable_receive"
                ) from None
        return self._inbox.popleft()

    async def _read_loop(self) -> None:
        while not self._closed:
            try:
                datagram = await self._stream.receive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                return
            try:
                await self._handle(datagram)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                return

    async def _handle(self, datagram: bytes) -> None:
        if len(datagram) < _HEADER.size:
            self._stats.invalid += 1
            return
        kind, seq = _HEADER.unpack_from(datagram)
        if kind == _ACK:
            entry = self._pending.pop(seq, None)
            if entry is not None:
                self._stats.acked += 1
                if not entry.done.done():
                    entry.done.set_result(None)
            return
        if kind != _DATA:
            self._stats.invalid += 1
            return
        await self._stream.send(_HEADER.pack(_ACK, seq))
        self._stats.acks_sent += 1
        if seq in self._seen:
            self._stats.duplicates += 1
            return
        self._seen[seq] = None
        while len(self._seen) > self._dedup_window:
            self._seen.popitem(last=False)
        self._stats.received += 1
        self._inbox.append(datagram[_HEADER.size :])
        self._wake()

    def _wake(self) -> None:
        w = self._inbox_waiter
        if w is not None:
            self._inbox_waiter = None
            if not w.done():
                w.set_result(None)

    def _check(self) -> None:
        if self._error is not None:
            raise fresh(self._error)
        if self._closed:
            raise DatagramError("reliability layer is closed")

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        for entry in self._pending.values():
            if not entry.done.done():
                entry.done.set_exception(DatagramError(f"datagram stream failed: {exc}"))
                entry.done.exception()
        self._pending.clear()
        self._wake()

    async def close(self) -> None:
        """Stop the layer; unacknowledged messages fail."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._reader, self._retransmitter) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail(DatagramError("reliability layer is closed"))

    async def __aenter__(self) -> "DatagramReliabilityLayer":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""An in-memory QUIC transport implementing :mod:`pywebtransport.quic.interface`.

Two :class:`FakeQuicConnection` objects made by :func:`fake_pair` exchange
stream bytes, resets, STOP_SENDING and datagrams through ``loop.call_soon``
(like msquic's hand-off to the loop: never re-entrantly).  Streams count the
bytes they delivered and the bytes reported consumed, so tests can check that
every delivered byte is consumed exactly once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from pywebtransport.quic.connection import ConnectionStats
from pywebtransport.quic.errors import (
    CloseReason,
    ConnectionClosed,
    DatagramError,
    DatagramTooLarge,
    QuicError,
    StreamClosedError,
    StreamStopped,
)
from pywebtransport.quic.interface import DataReceiver, ErrorReceiver, QuicStreamTransport
from pywebtransport.quic.tls import PeerCertificate

MAX_DATAGRAM = 1200


class FakeQuicStream:
    """One side of an in-memory QUIC stream."""

    def __init__(self, conn: "FakeQuicConnection", stream_id: int, *, unidirectional: bool, local: bool) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.is_unidirectional = unidirectional
        self.is_local = local
        self.bytes_sent = 0
        self.bytes_received = 0
        self.write_timeout: float | None = None
        self.reliable_size = 0
        self.release_when_done = False  # the fake releases when both sides are done anyway
        self.peer: FakeQuicStream | None = None
        self.announced = False
        self._receiver: DataReceiver | None = None
        self._on_reset: ErrorReceiver | None = None
        self._on_stop: ErrorReceiver | None = None
        self._on_closed: Callable[[], None] | None = None
        self._pending: list[tuple[bytes, bool]] = []
        self._write_error: QuicError | None = None
        self._closed = False
        self._closed_waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.fin_sent = False
        self.send_aborted: int | None = None
        self.recv_done = not self.readable
        self.send_done = not self.writable
        self.stop_sent: int | None = None
        # Accounting: bytes handed to the receiver / reported consumed.
        self.delivered = 0
        self.consumed_total = 0
        self.receivers_called = 0

    @property
    def readable(self) -> bool:
        return not (self.is_unidirectional and self.is_local)

    @property
    def writable(self) -> bool:
        return not (self.is_unidirectional and not self.is_local)

    # -- QuicStreamTransport -------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def write_error(self) -> QuicError | None:
        return self._write_error

    @property
    def buffered_bytes(self) -> int:
        return sum(len(d) for d, _ in self._pending)

    def diagnostics(self) -> dict[str, int]:
        return {}

    def set_receiver(
        self,
        on_data: DataReceiver,
        on_reset: ErrorReceiver | None = None,
        on_stop: ErrorReceiver | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self._receiver = on_data
        self._on_reset = on_reset
        self._on_stop = on_stop
        self._on_closed = on_closed
        pending, self._pending = self._pending, []
        for data, fin in pending:
            self._deliver(data, fin)

    def set_data_receiver(self, on_data: DataReceiver) -> None:
        assert self._receiver is not None
        self._receiver = on_data

    def consumed(self, n: int) -> None:
        assert n >= 0
        self.consumed_total += n
        assert self.consumed_total <= self.delivered, "more bytes consumed than delivered"

    def write_with_first(self, data: bytes) -> None:
        self._first = data
        asyncio.get_running_loop().call_soon(self._flush_first)

    def _flush_first(self) -> None:
        first, self._first = getattr(self, "_first", None), None
        if first is not None and not (self.fin_sent or self.send_aborted is not None or self._closed):
            self.write_nowait(first)

    def write_nowait(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        first, self._first = getattr(self, "_first", None), None
        if first is not None:
            data = first + bytes(data)
        if not self.writable:
            raise StreamClosedError("cannot write to a peer's unidirectional stream")
        if self._write_error is not None:
            raise self._write_error
        if self.fin_sent or self.send_aborted is not None or self._closed:
            raise StreamClosedError(f"stream {self.stream_id} is closed for writing")
        payload = bytes(data)
        self.bytes_sent += len(payload)
        if fin:
            self.fin_sent = True
            self.send_done = True
        self.conn._transmit(self, payload, fin)
        self._maybe_close()

    async def write(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        self.write_nowait(data, fin)
        await asyncio.sleep(0)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def finish(self) -> None:
        if self.fin_sent or self.send_aborted is not None or self._closed or not self.writable:
            return
        self.write_nowait(b"", fin=True)

    def reset(self, error_code: int = 0) -> None:
        if self._closed or self.send_aborted is not None or not self.writable:
            return
        self._flush_first()
        self.send_aborted = error_code
        self.send_done = True
        self.conn._call(self._peer_reset, error_code)
        self._maybe_close()

    def stop_sending(self, error_code: int = 0) -> None:
        if self._closed or self.stop_sent is not None or not self.readable:
            return
        self.stop_sent = error_code
        self.recv_done = True
        self.conn._call(self._peer_stop, error_code)
        self._maybe_close()

    def abort(self, error_code: int = 0) -> None:
        self.reset(error_code)
        self.stop_sending(error_code)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_waiter)

    # -- in-memory wire -------------------------------------------------------
    def _deliver(self, data: bytes, fin: bool) -> None:
        if self.recv_done and self.stop_sent is not None:
            return  # STOP_SENDING: the peer's later bytes are dropped
        if self._receiver is None:
            self._pending.append((data, fin))
            return
        self.bytes_received += len(data)
        self.delivered += len(data)
        self.receivers_called += 1
        if fin:
            self.recv_done = True
        self._receiver(data, fin)
        self._maybe_close()

    def _peer_reset(self, code: int) -> None:
        peer = self.peer
        if peer is None or peer._closed or peer.recv_done:
            return
        peer.recv_done = True
        if peer._on_reset is not None:
            peer._on_reset(code)
        peer._maybe_close()

    def _peer_stop(self, code: int) -> None:
        peer = self.peer
        if peer is None or peer._closed:
            return
        peer._write_error = StreamStopped(peer.stream_id, code)
        if peer.send_aborted is None and not peer.fin_sent:
            peer.reset(code)  # answer STOP_SENDING with RESET_STREAM, like msquic
        if peer._on_stop is not None:
            peer._on_stop(code)
        peer._maybe_close()

    def _maybe_close(self) -> None:
        if not self._closed and self.recv_done and self.send_done:
            self.conn._call(self._finalize, None)

    def _finalize(self, reason: CloseReason | None) -> None:
        if self._closed:
            return
        self._closed = True
        if reason is not None and self._write_error is None:
            self._write_error = ConnectionClosed(reason)
        if self._write_error is None:
            self._write_error = StreamClosedError(f"stream {self.stream_id} closed")
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        self.conn._streams.pop(self.stream_id, None)
        if self._on_closed is not None:
            self._on_closed()


class FakeQuicConnection:
    """One endpoint of an in-memory QUIC connection (implements QuicTransport)."""

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        self.close_reason: CloseReason | None = None
        self.peer: FakeQuicConnection | None = None
        self.on_closed: Callable[[CloseReason], None] | None = None
        self._on_stream: Callable[[QuicStreamTransport], None] | None = None
        self._on_datagram: Callable[[bytes], None] | None = None
        self._incoming: deque[FakeQuicStream] = deque()
        self._datagrams: deque[bytes] = deque()
        self._streams: dict[int, FakeQuicStream] = {}
        self._next = {False: 0, True: 2}  # bidi / uni counters (in units of 4)
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[CloseReason] = self._loop.create_future()
        self.datagrams_sent: list[bytes] = []
        self.datagrams_lost = 0
        self.peer_certificate: PeerCertificate | None = None
        self.rtt = 0.001

    @property
    def closed(self) -> "asyncio.Future[CloseReason]":
        return self._closed

    # -- callbacks -------------------------------------------------------------
    @property
    def on_stream(self) -> Callable[[QuicStreamTransport], None] | None:
        return self._on_stream

    @on_stream.setter
    def on_stream(self, callback: Callable[[QuicStreamTransport], None] | None) -> None:
        self._on_stream = callback
        while callback is not None and self._incoming:
            callback(self._incoming.popleft())

    @property
    def on_datagram(self) -> Callable[[bytes], None] | None:
        return self._on_datagram

    @on_datagram.setter
    def on_datagram(self, callback: Callable[[bytes], None] | None) -> None:
        self._on_datagram = callback
        while callback is not None and self._datagrams:
            callback(self._datagrams.popleft())

    # -- QuicTransport -----------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def remote_address(self) -> tuple[str, int] | None:
        return ("127.0.0.1", 4433 if self.is_client else 50000)

    @property
    def local_address(self) -> tuple[str, int] | None:
        return ("127.0.0.1", 50000 if self.is_client else 4433)

    @property
    def max_datagram_size(self) -> int:
        return 0 if self.is_closed else MAX_DATAGRAM

    async def open_stream(self, *, unidirectional: bool = False) -> FakeQuicStream:
        if self.close_reason is not None:
            raise ConnectionClosed(self.close_reason)
        await asyncio.sleep(0)  # an await point, as a real transport may have
        return self.open_stream_nowait(unidirectional=unidirectional)

    def open_stream_nowait(self, *, unidirectional: bool = False) -> FakeQuicStream:
        if self.close_reason is not None:
            raise ConnectionClosed(self.close_reason)
        base = self._next[unidirectional]
        self._next[unidirectional] = base + 4
        stream_id = base + (0 if self.is_client else 1)
        stream = FakeQuicStream(self, stream_id, unidirectional=unidirectional, local=True)
        self._streams[stream_id] = stream
        return stream

    def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        if self.close_reason is not None:
            raise ConnectionClosed(self.close_reason)
        payload = bytes(data)
        if len(payload) > MAX_DATAGRAM:
            raise DatagramTooLarge(len(payload), MAX_DATAGRAM)
        if self.peer is None:
            raise DatagramError("no peer")
        self.datagrams_sent.append(payload)
        self._call(self.peer._datagram_received, payload)

    def close(self, error_code: int = 0) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = CloseReason("local", error_code)
        self._call(self._finalize, None)
        peer = self.peer
        if peer is not None and peer.close_reason is None:
            peer.close_reason = CloseReason("peer", error_code)
            self._call(peer._finalize, None)

    async def wait_closed(self) -> CloseReason:
        return await asyncio.shield(self._closed)

    async def closing_reason(self, timeout: float = 1.0) -> CloseReason | None:
        await asyncio.sleep(0)
        return self.close_reason

    def stats(self) -> ConnectionStats:
        return ConnectionStats(
            rtt=self.rtt, min_rtt=self.rtt, max_rtt=self.rtt, rtt_variance=0.0, cwnd=12000, path_mtu=1500,
            packets_sent=0, packets_lost=0, packets_received=0, bytes_sent=0, bytes_received=0,
            stream_bytes_sent=0, stream_bytes_received=0, congestion_events=0,
        )

    # -- in-memory wire -------------------------------------------------------
    def _call(self, fn: Callable[..., None], *args: object) -> None:
        self._loop.call_soon(fn, *args)

    def _transmit(self, stream: FakeQuicStream, data: bytes, fin: bool) -> None:
        peer_conn = self.peer
        if peer_conn is None:
            return
        self._call(peer_conn._stream_bytes, stream, data, fin)

    def _stream_bytes(self, sender: FakeQuicStream, data: bytes, fin: bool) -> None:
        if self.close_reason is not None:
            return
        remote = sender.peer
        if remote is None:
            remote = FakeQuicStream(self, sender.stream_id, unidirectional=sender.is_unidirectional, local=False)
            remote.peer, sender.peer = sender, remote
            self._streams[sender.stream_id] = remote
        if not remote.announced and not remote.is_local:
            remote.announced = True
            if self._on_stream is not None:
                self._on_stream(remote)
            else:
                self._incoming.append(remote)
        if data or fin:
            remote._deliver(data, fin)

    def _datagram_received(self, data: bytes) -> None:
        if self.close_reason is not None and self.is_closed:
            return
        if self._on_datagram is not None:
            self._on_datagram(data)
        else:
            self._datagrams.append(data)

    def _finalize(self, _unused: object) -> None:
        if self._closed.done():
            return
        reason = self.close_reason or CloseReason("local")
        for stream in list(self._streams.values()):
            stream._finalize(reason)
        self._closed.set_result(reason)
        if self.on_closed is not None:
            self.on_closed(reason)


def fake_pair() -> tuple[FakeQuicConnection, FakeQuicConnection]:
    """A connected client/server pair."""
    client, server = FakeQuicConnection(True), FakeQuicConnection(False)
    client.peer, server.peer = server, client
    return client, server


async def settle(rounds: int = 20) -> None:
    """Let every queued hand-off run (bounded)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
